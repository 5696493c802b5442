/**
 * Turns the zig-zag block schedule (schedule/zigzag.ts, walked in the strategy's task-graph order) into
 * simulator tasks with dependencies, one token at a time. The strategy's steps say what waits for
 * what (a load into a double buffer waits for the occupant two back, or a barrier closes each step);
 * this builder knows what each step costs and which tasks carry it out.
 *
 * Indices: g = token * L + layer is the global layer, q = g * nb + batch the global step.
 */

import type { Resource } from "../core/resources.js";
import type { ScheduleName } from "../core/schedule-name.js";
import { type ScheduleStep, waitsFor } from "../schedule/steps.js";
import { scheduleStrategy } from "../schedule/strategies.js";
import type { ScheduleStrategy } from "../schedule/strategy.js";
import { zigzag } from "../schedule/zigzag.js";
import type { Engine, TaskFactory } from "./engine.js";
import type { BatchCosts, ScheduleCostSource, Transfer } from "./schedule-costs.js";
import type { MemoryEffect, Task, TaskKind } from "./task.js";

interface LayerWeights {
  /** The tasks a compute of this layer waits on. */
  readonly ready: Task[];
  /** Buffers freed when the layer's last batch is done. */
  readonly buffers: MemoryEffect[];
  readonly dequantized?: boolean;
}

interface StepState {
  compute?: Task;
  loadCache?: Task;
  readCache?: Task;
  loadHidden?: Task;
  /** After this task the step's KV is where it lives. */
  cacheStored?: Task;
  /** After this task the step's hidden state is where the next layer loads it from. */
  hiddenStored?: Task;
  costs?: BatchCosts;
  stagingFrees: MemoryEffect[];
  /** After this task the step's CPU staging for disk KV is free again. */
  cacheConsumed?: Task;
  cpuStagingFree?: MemoryEffect;
}

export class ScheduleBuilder {
  private readonly L: number;
  private readonly nb: number;
  private readonly stepStates = new Map<number, StepState>();
  private readonly layers = new Map<number, LayerWeights>();
  private readonly lastCompute = new Map<number, Task>();
  private readonly heads = new Map<number, Task>();
  private readonly headLoads = new Map<number, Task>();
  private barrier: Task | undefined;
  /** Without overlap every task waits for the one issued before it. */
  private previousTask: Task | undefined;
  /** Loads of disk-resident layer weights, latest last: a disk read waits for the load two before it (two staging buffers). */
  private readonly diskLoads: Task[] = [];
  /** Tasks issued since the last barrier (when the strategy has barriers). */
  private stepTasks: Task[] = [];
  private generatedTokens = 0;
  private readonly strategy: ScheduleStrategy;
  private readonly steps: Iterator<ScheduleStep>;
  /** The step whose tasks are being issued. */
  private current: ScheduleStep | undefined;

  constructor(
    private readonly costs: ScheduleCostSource,
    schedule: ScheduleName | ScheduleStrategy,
    private readonly factory: TaskFactory,
    private readonly engine: Engine,
  ) {
    this.L = costs.numLayers;
    this.nb = costs.numGpuBatches;
    this.strategy = typeof schedule === "string" ? scheduleStrategy(schedule) : schedule;
    this.steps = zigzag(
      { numLayers: this.L, numGpuBatches: this.nb, genLen: costs.genLen },
      this.strategy,
      "task-graph",
    );
  }

  get tokensGenerated(): number {
    return this.generatedTokens;
  }

  /** The LM-head tasks of a token (one per batch), once generated. */
  headTasks(token: number): Task[] {
    const out: Task[] = [];
    for (let k = 0; k < this.nb; k++) {
      const t = this.heads.get(token * this.nb + k);
      if (t) out.push(t);
    }
    return out;
  }

  private task(
    kind: TaskKind,
    resource: Resource | "none",
    seconds: number,
    bytes: number,
    where: { token: number; layer: number; batch: number },
    deps: (Task | undefined)[],
    allocate: MemoryEffect[] = [],
    free: MemoryEffect[] = [],
  ): Task {
    const all = deps.filter((d): d is Task => d !== undefined);
    if (this.barrier && this.waits("barrier")) all.push(this.barrier);
    if (this.costs.overlap === false && this.previousTask) all.push(this.previousTask);
    const task = this.factory.make({ kind, resource, seconds, bytes, ...where, deps: all, allocate, free });
    this.previousTask = task;
    this.engine.add(task);
    if (this.strategy.barrierAfterEachStep) this.stepTasks.push(task);
    return task;
  }

  private transfer(
    kind: TaskKind,
    resource: Resource,
    cost: Transfer,
    where: { token: number; layer: number; batch: number },
    deps: (Task | undefined)[],
    allocate: MemoryEffect[] = [],
    free: MemoryEffect[] = [],
  ): Task | undefined {
    if (cost.bytes <= 0) {
      // Nothing to move: hand the memory effects to whoever comes next by returning nothing.
      return undefined;
    }
    return this.task(kind, resource, cost.seconds, cost.bytes, where, deps, allocate, free);
  }

  /**
   * A host-to-GPU copy of layer weights, in pieces of at most the strategy's weightCopyChunkBytes, each
   * after the one before: another stream's copy issued earlier waits for one piece, not the whole layer.
   * Memory is taken by the first piece and handed back by the last; the last piece stands for the copy.
   * Each piece takes its share of the copy's seconds (the copy's per-tensor latencies included).
   */
  private weightCopy(
    cost: Transfer,
    where: { token: number; layer: number; batch: number },
    deps: (Task | undefined)[],
    allocate: MemoryEffect[],
    free: MemoryEffect[],
  ): Task | undefined {
    const chunk = this.strategy.weightCopyChunkBytes;
    const pieces = chunk === undefined ? 1 : Math.max(1, Math.ceil(cost.bytes / chunk));
    if (pieces === 1 || cost.bytes <= 0) return this.transfer("load-weights", "h2d", cost, where, deps, allocate, free);
    let last: Task | undefined;
    for (let i = 0; i < pieces; i++) {
      const bytes = i < pieces - 1 ? chunk! : cost.bytes - chunk! * (pieces - 1);
      const seconds = (cost.seconds * bytes) / cost.bytes;
      last = this.task(
        "load-weights",
        "h2d",
        seconds,
        bytes,
        where,
        i === 0 ? deps : [last],
        i === 0 ? allocate : [],
        i === pieces - 1 ? free : [],
      );
    }
    return last;
  }

  /** Where step q sits (global layer, batch, token, layer), its bookkeeping and its costs. */
  private step(q: number) {
    const g = Math.floor(q / this.nb);
    const k = q % this.nb;
    const token = Math.floor(g / this.L);
    const layer = g % this.L;
    const s = this.state(q);
    return { g, k, token, layer, where: { token, layer, batch: k }, s, c: s.costs ?? this.costs.batch(token, layer) };
  }

  private state(q: number): StepState {
    let s = this.stepStates.get(q);
    if (!s) this.stepStates.set(q, (s = { stagingFrees: [] }));
    return s;
  }

  /** Whether the step being issued waits for `wait`. */
  private waits(wait: Parameters<typeof waitsFor>[1]): boolean {
    return this.current !== undefined && waitsFor(this.current, wait);
  }

  private closeStep(where: { token: number; layer: number; batch: number }): void {
    const deps = this.stepTasks;
    this.stepTasks = [];
    const barrier = this.factory.make({
      kind: "barrier",
      resource: "none",
      seconds: 0,
      bytes: 0,
      ...where,
      deps,
      allocate: [],
      free: [],
    });
    this.engine.add(barrier);
    this.barrier = barrier;
  }

  // ---------------------------------------------------------------------------------------------
  // Pieces

  private weights(g: number): void {
    const w = this.costs.weights(g % this.L);
    const where = { token: Math.floor(g / this.L), layer: g % this.L, batch: -1 };
    const gpuBuffer: MemoryEffect = {
      tier: "gpu",
      bytes: w.gpuBufferBytes,
      what: `layer ${where.layer} weight buffer`,
    };
    const staging: MemoryEffect = {
      tier: "cpu",
      bytes: w.cpuStagingBytes,
      what: `layer ${where.layer} pinned staging for disk weights`,
    };
    const bufferFree = this.waits("weight-buffer-free") ? this.lastCompute.get(g - 2) : undefined;
    const stagingFree = this.waits("weight-staging-free") ? this.diskLoads[this.diskLoads.length - 2] : undefined;
    const read = this.transfer("read-weights", "diskRead", w.readDisk, where, [stagingFree], [staging]);
    const fromCpu = this.weightCopy(w.loadFromCpu, where, [bufferFree], [gpuBuffer], []);
    const fromDisk = this.weightCopy(
      w.loadFromDisk,
      where,
      [bufferFree, read],
      fromCpu ? [] : [gpuBuffer],
      read ? [staging] : [],
    );
    if (fromDisk && read) {
      this.diskLoads.push(fromDisk);
      if (this.diskLoads.length > 2) this.diskLoads.shift();
    }
    const ready = [fromCpu, fromDisk].filter((t): t is Task => t !== undefined);
    const buffers: MemoryEffect[] = ready.length ? [gpuBuffer] : [];
    this.layers.set(g, { ready, buffers });
    this.layers.delete(g - 3);
  }

  private dequantize(g: number): void {
    const w = this.costs.weights(g % this.L);
    const layer = this.layers.get(g)!;
    if (w.dequantizeSeconds <= 0 || layer.dequantized) return;
    const where = { token: Math.floor(g / this.L), layer: g % this.L, batch: -1 };
    const fp16: MemoryEffect = {
      tier: "gpu",
      bytes: w.dequantBufferBytes,
      what: `layer ${where.layer} dequantised weights`,
    };
    const previous = this.waits("dequant-buffer-free") ? this.lastCompute.get(g - 1) : undefined;
    const dequant = this.task(
      "dequantize-weights",
      "gpu",
      w.dequantizeSeconds,
      0,
      where,
      [...layer.ready, previous],
      [fp16],
    );
    this.layers.set(g, { ready: [dequant], buffers: [...layer.buffers, fp16], dequantized: true });
  }

  /** Loads a step's off-GPU KV into GPU buffers (or, with CPU attention, disk KV into CPU staging). */
  private loadCache(q: number): void {
    const { k, token, layer, where, s } = this.step(q);
    const c = this.costs.batch(token, layer);
    s.costs = c;
    const previousToken = this.waits("kv-stored") ? this.stepStates.get(q - this.L * this.nb) : undefined;
    const bufferFree = this.waits("step-buffer-free") ? this.stepStates.get(q - 2)?.compute : undefined;
    if (c.loadCache.bytes > 0 || c.readCache.bytes > 0) {
      const cpuStaging: MemoryEffect = {
        tier: "cpu",
        bytes: c.cacheStagingCpuBytes,
        what: `KV staging for disk sequences (layer ${layer}, batch ${k})`,
      };
      const gpuStaging: MemoryEffect = {
        tier: "gpu",
        bytes: c.cacheStagingGpuBytes,
        what: `KV of off-GPU sequences (layer ${layer}, batch ${k})`,
      };
      // The CPU staging buffer of step q - 2 is free once its KV went up to the GPU (or, with CPU
      // attention, once that step is computed).
      const stagingFree = this.waits("kv-staging-free") ? this.stepStates.get(q - 2)?.cacheConsumed : undefined;
      s.readCache = this.transfer(
        "read-cache",
        "diskRead",
        c.readCache,
        where,
        [previousToken?.cacheStored, stagingFree],
        [cpuStaging],
      );
      s.loadCache = this.transfer(
        "load-cache",
        "h2d",
        c.loadCache,
        where,
        [previousToken?.cacheStored, s.readCache, bufferFree],
        [gpuStaging],
        s.readCache ? [cpuStaging] : [],
      );
      if (s.loadCache) {
        s.stagingFrees.push(gpuStaging);
        s.cacheConsumed = s.loadCache;
      } else if (s.readCache) s.cpuStagingFree = cpuStaging; // freed by the CPU attention that reads it
    }
  }

  /** Loads a step's off-GPU hidden state into a GPU buffer. */
  private loadHidden(q: number): void {
    const { k, token, layer, where, s, c } = this.step(q);
    if (c.loadHidden.bytes <= 0) return;
    const bufferFree = this.waits("step-buffer-free") ? this.stepStates.get(q - 2)?.compute : undefined;
    const previous = this.stepStates.get(q - this.nb);
    const stored = this.waits("input-stored");
    const source = !stored ? undefined : layer > 0 ? previous?.hiddenStored : this.heads.get((token - 1) * this.nb + k);
    // The first layer's input comes from the LM head, but it takes over (and frees) the host copy the
    // previous token's last layer stored: it waits until that copy is written, so it is never freed first.
    const overwritten = layer === 0 ? previous?.hiddenStored : undefined;
    const stagingCpu: MemoryEffect = { tier: "cpu", bytes: c.hiddenBytes, what: "hidden staging" };
    const read = this.transfer(
      "read-hidden",
      "diskRead",
      c.readHidden,
      where,
      [source, overwritten, bufferFree],
      [stagingCpu],
    );
    const hidden: MemoryEffect = {
      tier: "gpu",
      bytes: c.hiddenBytes,
      what: `hidden state in (layer ${layer}, batch ${k})`,
    };
    // Loading frees the stored copy of the previous layer (or of the previous token's last layer).
    const storedBytes = previous?.costs?.hiddenBytes ?? 0;
    const hostCopy: MemoryEffect = {
      tier: c.readHidden.bytes > 0 ? "disk" : "cpu",
      bytes: storedBytes,
      what: "stored hidden state",
    };
    s.loadHidden = this.transfer(
      "load-hidden",
      "h2d",
      c.loadHidden,
      where,
      [source, overwritten, read, bufferFree],
      [hidden],
      read ? [stagingCpu, hostCopy] : [hostCopy],
    );
    s.stagingFrees.push(hidden);
  }

  private compute(q: number): void {
    const { g, k, token, layer, where, s, c } = this.step(q);
    const weights = this.layers.get(g)!;
    const hiddenOnGpu = this.costs.activationTier === "gpu";
    const previousOutput = hiddenOnGpu
      ? layer > 0
        ? this.stepStates.get(q - this.nb)?.compute
        : this.heads.get((token - 1) * this.nb + k)
      : s.loadHidden;
    // Between a CPU-computed and a GPU-computed layer the hidden state changes device first.
    const inputFrom = this.crossIn(token, layer, where, previousOutput);
    const onCpu = c.computeDevice === "cpu";
    const working: MemoryEffect = {
      tier: onCpu ? "cpu" : "gpu",
      bytes: c.workingBytes,
      what: `working space (layer ${layer}, batch ${k})`,
    };
    const gpuCache: MemoryEffect = { tier: "gpu", bytes: c.newCacheBytes.gpu, what: "KV cache of GPU sequences" };
    const lastBatch = k === this.nb - 1;
    const frees: MemoryEffect[] = [working, ...s.stagingFrees];
    if (lastBatch) frees.push(...weights.buffers);
    // Between layers a GPU-resident hidden state lives from the first layer of a token to its LM head.
    const hiddenAlloc: MemoryEffect[] =
      hiddenOnGpu && layer === 0 ? [{ tier: "gpu", bytes: c.hiddenBytes, what: `hidden state of batch ${k}` }] : [];
    const deps = [...weights.ready, s.loadCache, inputFrom, s.loadHidden];
    let done: Task;
    if (onCpu) {
      // A CPU layer (llama.cpp's layers beyond -ngl): weights and KV in host memory, every kernel on the CPU.
      const cpuCache: MemoryEffect = {
        tier: "cpu",
        bytes: c.newCacheBytes.cpu,
        what: "KV cache of CPU-computed layers",
      };
      done = this.task("compute", "cpu", c.cpuSeconds, 0, where, deps, [working, cpuCache, ...hiddenAlloc], frees);
      s.cacheStored = done;
    } else if (c.cpuSeconds > 0) {
      // The GPU runs one kernel at a time: the projections' working space is released before the CPU
      // attention, and the rest of the layer takes its own.
      const pre = this.task(
        "compute-pre",
        "gpu",
        c.gpuBeforeCpuSeconds,
        0,
        where,
        deps,
        [working, gpuCache, ...hiddenAlloc],
        [working],
      );
      const send = this.transfer("send-qkv", "d2h", c.sendQkv, where, [pre]);
      const previous = this.stepStates.get(q - this.L * this.nb);
      const cpuWorking: MemoryEffect = {
        tier: "cpu",
        bytes: c.cpuAttentionWorkingBytes,
        what: "CPU attention working space",
      };
      const cpuCache: MemoryEffect = { tier: "cpu", bytes: c.newCacheBytes.cpu, what: "KV cache of CPU sequences" };
      const attention = this.task(
        "cpu-attention",
        "cpu",
        c.cpuSeconds,
        0,
        where,
        [send ?? pre, s.readCache, previous?.cacheStored],
        [cpuWorking, cpuCache],
        s.cpuStagingFree ? [cpuWorking, s.cpuStagingFree] : [cpuWorking],
      );
      s.cacheConsumed = attention;
      const back = this.transfer("return-attention", "h2d", c.returnAttention, where, [attention]);
      done = this.task(
        "compute-post",
        "gpu",
        c.gpuSeconds - c.gpuBeforeCpuSeconds,
        0,
        where,
        [back ?? attention],
        [working],
        frees,
      );
      const write = this.transfer(
        "write-cache",
        "diskWrite",
        c.writeCache,
        where,
        [attention],
        [{ tier: "disk", bytes: c.newCacheBytes.disk, what: "KV cache of disk sequences" }],
      );
      s.cacheStored = write ?? attention;
    } else {
      done = this.task("compute", "gpu", c.gpuSeconds, 0, where, deps, [working, gpuCache, ...hiddenAlloc], frees);
    }
    s.compute = done;
    if (lastBatch) this.lastCompute.set(g, done);
    this.lastCompute.delete(g - 3);
  }

  /** The hidden state's move into `layer` from the other device (undefined cost: no move), after `after`. */
  private crossIn(
    token: number,
    layer: number,
    where: { token: number; layer: number; batch: number },
    after: Task | undefined,
  ): Task | undefined {
    const cross = this.costs.crossIn?.(token, layer);
    if (!cross) return after;
    return this.transfer("move-hidden", cross.link, cross.transfer, where, [after]) ?? after;
  }

  private stores(q: number): void {
    const { where, s, c } = this.step(q);
    if (c.cpuSeconds === 0 && c.computeDevice !== "cpu") {
      const store = this.transfer(
        "store-cache",
        "d2h",
        c.storeCache,
        where,
        [s.compute],
        [{ tier: "cpu", bytes: c.newCacheBytes.cpu, what: "KV cache of CPU sequences" }],
      );
      const write = this.transfer(
        "write-cache",
        "diskWrite",
        c.writeCache,
        where,
        [store],
        [{ tier: "disk", bytes: c.newCacheBytes.disk, what: "KV cache of disk sequences" }],
      );
      s.cacheStored = write ?? store ?? s.compute;
    }
    if (c.storeHidden.bytes > 0) {
      const tier = c.writeHidden.bytes > 0 ? "disk" : "cpu";
      const store = this.transfer(
        "store-hidden",
        "d2h",
        c.storeHidden,
        where,
        [s.compute],
        tier === "cpu" ? [{ tier: "cpu", bytes: c.hiddenBytes, what: "stored hidden state" }] : [],
      );
      const write = this.transfer(
        "write-hidden",
        "diskWrite",
        c.writeHidden,
        where,
        [store],
        [{ tier: "disk", bytes: c.hiddenBytes, what: "stored hidden state" }],
      );
      s.hiddenStored = write ?? store;
    }
    // A step's bookkeeping is needed until the same step of the next token.
    this.stepStates.delete(q - this.L * this.nb - 2 * this.nb);
  }

  private headLoad(token: number): void {
    const h = this.costs.head();
    const where = { token, layer: this.L, batch: -1 };
    const buffer: MemoryEffect = { tier: "gpu", bytes: h.bufferBytes, what: "LM head weights" };
    const previous = this.waits("head-buffer-free") ? this.heads.get(token * this.nb - 1) : undefined;
    const read = this.transfer(
      "read-head",
      "diskRead",
      h.readWeights,
      where,
      [previous],
      [{ tier: "cpu", bytes: h.readWeights.bytes, what: "LM head staging" }],
    );
    const load = this.transfer(
      "load-head",
      "h2d",
      h.loadWeights,
      where,
      [previous, read],
      [buffer],
      read ? [{ tier: "cpu", bytes: h.readWeights.bytes, what: "LM head staging" }] : [],
    );
    if (load) this.headLoads.set(token, load);
  }

  private head(token: number, k: number): void {
    const h = this.costs.head();
    const where = { token, layer: this.L, batch: k };
    const q = ((token + 1) * this.L - 1) * this.nb + k;
    const c = this.stepStates.get(q)?.costs ?? this.costs.batch(token, this.L - 1);
    const logits: MemoryEffect = { tier: "gpu", bytes: h.logitsBytes, what: "logits" };
    const frees: MemoryEffect[] = [logits];
    if (this.costs.activationTier === "gpu")
      frees.push({ tier: "gpu", bytes: c.hiddenBytes, what: `hidden state of batch ${k}` });
    if (k === this.nb - 1 && this.headLoads.has(token))
      frees.push({ tier: "gpu", bytes: h.bufferBytes, what: "LM head weights" });
    const input = this.crossIn(token, this.L, where, this.stepStates.get(q)?.compute);
    const lm = this.task(
      "lm-head",
      "gpu",
      h.gpuSecondsPerBatch,
      0,
      where,
      [input, this.headLoads.get(token)],
      [logits],
      frees,
    );
    this.transfer("store-tokens", "d2h", h.storeTokensPerBatch, where, [lm]);
    this.heads.set(token * this.nb + k, lm);
    this.heads.delete((token - 2) * this.nb + k);
    this.headLoads.delete(token - 2);
  }

  // ---------------------------------------------------------------------------------------------
  // Steps

  /** Adds every task of the next token to the engine. */
  generateNextToken(): void {
    this.generatedTokens++;
    for (;;) {
      const next = this.steps.next();
      if (next.done) throw new Error(`schedule bug: the zig-zag ended before token ${this.generatedTokens - 1}`);
      const step = next.value;
      if (step.kind === "token-end") return;
      this.current = step;
      this.issue(step);
      this.current = undefined;
    }
  }

  private issue(step: ScheduleStep): void {
    const { token, layer, batch } = step.at;
    const g = token * this.L + layer;
    const q = g * this.nb + batch;
    switch (step.kind) {
      case "issue-weights":
        if (layer === this.L) this.headLoad(token);
        else this.weights(g);
        return;
      case "ready-weights":
        this.dequantize(g);
        return;
      case "issue-kv":
        this.loadCache(q);
        return;
      case "issue-hidden":
        this.loadHidden(q);
        return;
      case "compute":
        this.compute(q);
        return;
      case "store":
        this.stores(q);
        return;
      case "lm-head":
        this.head(token, batch);
        return;
      case "barrier":
        this.closeStep(step.at);
        return;
      default:
        throw new Error(`schedule bug: a task graph has no "${step.kind}" step`);
    }
  }
}
