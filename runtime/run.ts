/**
 * `run()`: executes a plan for real on the CPU backend with an OPT checkpoint, and reports the same
 * figures as the simulator (measured), plus whether the tokens match an all-on-device reference run.
 */
import { tmpdir } from "node:os";
import { mulberry32 } from "../core/random.js";
import type { HardwareProfile } from "../core/hardware-profile.js";
import type { Policy } from "../core/policy.js";
import { PlanError } from "../planner/plan.js";
import { evaluatePolicy, policyCostContext } from "../planner/spillway/evaluate-policy.js";
import { hardwareRates } from "../planner/spillway/hardware-rates.js";
import { ChromeTraceWriter } from "../simulator/chrome-trace-writer.js";
import { type PlannedFigures, plannedFigures, type PlanToSimulate } from "../simulator/simulate.js";
import { SIM_RESOURCES, type SimResource, type TaskKind } from "../simulator/task.js";
import { DeviceArena, DeviceOutOfMemory } from "./device-arena.js";
import { DiskStore } from "./disk-store.js";
import { loadOptCheckpoint, type OptWeights } from "./opt-checkpoint.js";
import { HostLedger, OptRunner, type StepRecorder } from "./opt-runner.js";

export interface RunOptions {
  readonly weightsDir: string;
  readonly schedule?: "spillway" | "flexgen";
  readonly capacityBytes: { readonly gpu: number; readonly cpu: number; readonly disk: number };
  /** Where offload files go (a fresh subdirectory is made and removed). Default: the OS temp dir. */
  readonly offloadDir?: string;
  readonly tracePath?: string;
  /** Also run the all-on-device reference and compare tokens (default true). */
  readonly reference?: boolean;
  readonly promptSeed?: number;
}

export interface RunResult {
  readonly backend: "cpu";
  readonly schedule: "spillway" | "flexgen";
  readonly throughputTokensPerSecond: number;
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly makespanSeconds: number;
  readonly events: number;
  readonly peakBytes: { readonly gpu: number; readonly cpu: number; readonly disk: number };
  readonly capacityBytes: { readonly gpu: number; readonly cpu: number; readonly disk: number };
  readonly bytes: { readonly h2d: number; readonly d2h: number; readonly diskRead: number; readonly diskWrite: number };
  readonly busySeconds: Readonly<Record<SimResource, number>>;
  readonly utilisation: Readonly<Record<SimResource, number>>;
  readonly criticalResource: SimResource;
  readonly planned?: PlannedFigures;
  readonly relativeError?: number;
  /** Generated token ids per sequence, in block order. */
  readonly tokens: number[][];
  readonly matchesReference?: boolean;
  readonly referenceTokens?: number[][];
}

class Recorder implements StepRecorder {
  readonly busy = Object.fromEntries(SIM_RESOURCES.map((r) => [r, 0])) as Record<SimResource, number>;
  readonly bytes = { h2d: 0, d2h: 0, diskRead: 0, diskWrite: 0 };
  events = 0;
  private readonly stack: { inner: number }[] = [];
  readonly origin = performance.now();

  constructor(private readonly trace: ChromeTraceWriter | undefined) {}

  now(): number {
    return (performance.now() - this.origin) / 1000;
  }

  record<T>(kind: TaskKind, resource: SimResource, bytes: number, where: { token: number; layer: number; batch: number }, work: () => T): T {
    const start = this.now();
    this.stack.push({ inner: 0 });
    const result = work();
    const end = this.now();
    const frame = this.stack.pop()!;
    const duration = end - start;
    const parent = this.stack[this.stack.length - 1];
    if (parent) parent.inner += duration;
    // Work nested inside another step (CPU attention inside a layer's compute) is not counted twice.
    this.busy[resource] += Math.max(0, duration - frame.inner);
    if (resource !== "gpu" && resource !== "cpu") this.bytes[resource] += bytes;
    this.events++;
    this.trace?.slice(kind, resource, start, end, bytes, where);
    return result;
  }
}

/** Deterministic prompts: token ids in [2, vocab) from a seeded generator, one row per sequence. */
export function syntheticPrompts(sequences: number, promptLen: number, vocab: number, seed: number): Int32Array {
  const next = mulberry32(seed);
  const ids = new Int32Array(sequences * promptLen);
  for (let i = 0; i < ids.length; i++) ids[i] = 2 + Math.floor(next() * (vocab - 2));
  return ids;
}

interface Execution {
  readonly tokens: number[][];
  readonly recorder: Recorder;
  readonly prefillSeconds: number;
  readonly makespanSeconds: number;
  readonly peakBytes: { gpu: number; cpu: number; disk: number };
}

/** Lets signal handlers (Ctrl-C cleans the offload folder) and pending I/O run between steps. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function execute(weights: OptWeights, plan: PlanToSimulate, profile: HardwareProfile, options: RunOptions, policy: Policy, capacity: { gpu: number; cpu: number; disk: number }, trace: ChromeTraceWriter | undefined): Promise<Execution> {
  const model = weights.model;
  const { promptLen: s, genLen: n } = plan.workload;
  const schedule = options.schedule ?? "spillway";
  const context = policyCostContext(model, hardwareRates(profile), plan.workload, policy, schedule);
  const arena = new DeviceArena(capacity.gpu);
  const host = new HostLedger();
  const disk = new DiskStore(options.offloadDir ?? tmpdir());
  const recorder = new Recorder(trace);
  try {
    const runner = new OptRunner(weights, policy, plan.workload, context, arena, host, disk, recorder);
    runner.place();
    const gbs = policy.gpuBatchSize;
    const nb = policy.numGpuBatches;
    const h = model.hiddenSize;
    const L = model.numLayers;
    const tier = context.realized.activationTier;
    const prompts = syntheticPrompts(gbs * nb, s, model.vocabSize, options.promptSeed ?? 0);
    const tokens: number[][] = Array.from({ length: gbs * nb }, () => []);
    let inputs = Array.from({ length: nb }, (_, k) => prompts.subarray(k * gbs * s, (k + 1) * gbs * s));
    const start = recorder.now();
    let prefillEnd = 0;
    for (let token = 0; token < n; token++) {
      const t = token === 0 ? s : 1;
      const hiddenValues = gbs * t * h;
      const embeddings = runner.bringEmbeddings(token);
      // Hidden states between layers: device blocks, or host arrays / offload files loaded per step.
      const deviceHidden = tier === "gpu" ? Array.from({ length: nb }, (_, k) => arena.allocate(hiddenValues * 2, `hidden state of batch ${k}`)) : [];
      const hostHidden = tier === "cpu" ? Array.from({ length: nb }, () => new Uint16Array(hiddenValues)) : [];
      if (tier === "cpu") host.add(nb * hiddenValues * 2);
      const diskKey = (k: number) => `hidden-${k}`;
      for (let k = 0; k < nb; k++) {
        const where = { token, layer: -1, batch: k };
        const target = tier === "gpu" ? arena.uint16(deviceHidden[k]!, hiddenValues) : tier === "cpu" ? hostHidden[k]! : new Uint16Array(hiddenValues);
        recorder.record("compute", "gpu", 0, where, () => runner.embed(embeddings, inputs[k]!, token, target));
        if (tier === "disk") disk.write(diskKey(k), new Uint8Array(target.buffer, target.byteOffset, hiddenValues * 2));
      }
      const next: Int32Array[] = [];
      for (let layer = 0; layer < L; layer++) {
        await yieldToEventLoop();
        const ready = runner.bringLayer(layer, token);
        for (let k = 0; k < nb; k++) {
          const where = { token, layer, batch: k };
          let view: Uint16Array;
          let staging: ReturnType<DeviceArena["allocate"]> | undefined;
          if (tier === "gpu") view = arena.uint16(deviceHidden[k]!, hiddenValues);
          else {
            staging = arena.allocate(hiddenValues * 2, `hidden state in (layer ${layer}, batch ${k})`);
            view = arena.uint16(staging, hiddenValues);
            let source: Uint16Array;
            if (tier === "cpu") source = hostHidden[k]!;
            else {
              const bytes = recorder.record("read-hidden", "diskRead", hiddenValues * 2, where, () => disk.read(diskKey(k)));
              source = new Uint16Array(bytes.buffer, bytes.byteOffset, hiddenValues);
            }
            recorder.record("load-hidden", "h2d", hiddenValues * 2, where, () => view.set(source));
          }
          runner.computeLayer(ready, view, layer, k, token);
          if (layer === L - 1) runner.lmHead(embeddings, view, token, k);
          if (staging) {
            if (tier === "cpu") recorder.record("store-hidden", "d2h", hiddenValues * 2, where, () => hostHidden[k]!.set(view));
            else {
              const copy = recorder.record("store-hidden", "d2h", hiddenValues * 2, where, () => new Uint8Array(view.buffer.slice(view.byteOffset, view.byteOffset + hiddenValues * 2)));
              recorder.record("write-hidden", "diskWrite", hiddenValues * 2, where, () => disk.write(diskKey(k), copy));
            }
            arena.release(staging);
          }
        }
        runner.releaseLayer(ready);
      }
      next.push(...runner.finishHeads(embeddings, token));
      runner.releaseEmbeddings(embeddings);
      for (const block of deviceHidden) arena.release(block);
      if (tier === "cpu") host.remove(nb * hiddenValues * 2);
      for (let k = 0; k < nb; k++) for (let i = 0; i < gbs; i++) tokens[k * gbs + i]!.push(next[k]![i]!);
      inputs = next;
      if (token === 0) prefillEnd = recorder.now();
    }
    const end = recorder.now();
    return { tokens, recorder, prefillSeconds: prefillEnd - start, makespanSeconds: end - start, peakBytes: { gpu: arena.peakBytes, cpu: host.peakBytes, disk: disk.peakBytes } };
  } catch (error) {
    if (error instanceof DeviceOutOfMemory) throw new PlanError(`the plan does not fit at run time: ${error.message}`);
    throw error;
  } finally {
    disk.close();
  }
}

function allOnDevice(policy: Policy): Policy {
  const all = { gpu: 1, cpu: 0, disk: 0 };
  return { ...policy, weights: all, cache: all, activations: all };
}

export async function run(plan: PlanToSimulate, profile: HardwareProfile, options: RunOptions): Promise<RunResult> {
  const weights = loadOptCheckpoint(options.weightsDir);
  try {
    const spec = plan.modelSpec;
    const m = weights.model;
    for (const key of ["numLayers", "hiddenSize", "ffnSize", "numHeads", "vocabSize", "wordEmbedDim"] as const) {
      if (spec[key] !== m[key]) throw new PlanError(`the plan is for ${spec.name} (${key} ${spec[key]}) but ${options.weightsDir} holds a model with ${key} ${m[key]}`);
    }
    if (plan.workload.promptLen + plan.workload.genLen > m.maxPositions) throw new PlanError(`prompt + generated tokens exceed the model's ${m.maxPositions} positions`);
    const trace = options.tracePath ? new ChromeTraceWriter(options.tracePath) : undefined;
    let measured: Execution;
    try {
      measured = await execute(weights, plan, profile, options, plan.policy, options.capacityBytes, trace);
      trace?.close();
    } catch (error) {
      trace?.abort();
      throw error;
    }
    let matchesReference: boolean | undefined;
    let referenceTokens: number[][] | undefined;
    if (options.reference !== false) {
      const policy = allOnDevice(plan.policy);
      const need = evaluatePolicy(m, hardwareRates(profile), plan.workload, policy).peakBytes.gpu;
      const reference = await execute(weights, plan, profile, { ...options, tracePath: undefined }, policy, { gpu: need * 1.5 + 64 * 2 ** 20, cpu: Infinity, disk: Infinity }, undefined);
      referenceTokens = reference.tokens;
      matchesReference = JSON.stringify(reference.tokens) === JSON.stringify(measured.tokens);
    }
    const r = measured.recorder;
    const planned = plannedFigures(plan);
    const makespan = measured.makespanSeconds;
    const throughput = (plan.policy.gpuBatchSize * plan.policy.numGpuBatches * plan.workload.genLen) / makespan;
    const utilisation = Object.fromEntries(SIM_RESOURCES.map((x) => [x, r.busy[x] / makespan])) as Record<SimResource, number>;
    return {
      backend: "cpu",
      schedule: options.schedule ?? "spillway",
      throughputTokensPerSecond: throughput,
      prefillSeconds: measured.prefillSeconds,
      decodeSeconds: makespan - measured.prefillSeconds,
      makespanSeconds: makespan,
      events: r.events,
      peakBytes: measured.peakBytes,
      capacityBytes: options.capacityBytes,
      bytes: r.bytes,
      busySeconds: r.busy,
      utilisation,
      criticalResource: SIM_RESOURCES.reduce((a, x) => (r.busy[x] > r.busy[a] ? x : a), "gpu" as SimResource),
      ...(planned ? { planned, relativeError: (throughput - planned.throughputTokensPerSecond) / planned.throughputTokensPerSecond } : {}),
      tokens: measured.tokens,
      ...(matchesReference !== undefined ? { matchesReference, referenceTokens: referenceTokens! } : {}),
    };
  } finally {
    weights.close();
  }
}
