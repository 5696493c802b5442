/**
 * `run()`: executes a plan for real on the CPU backend with an OPT checkpoint, and reports the same
 * figures as the simulator (measured), plus whether the tokens match an all-on-device reference run.
 * Mixture-of-Experts plans run on Mixtral or Qwen2-MoE checkpoints (runtime/moe/run-moe-plan.ts).
 */

import { tmpdir } from "node:os";
import type { HardwareProfile } from "../core/hardware-profile.js";
import { InputError } from "../core/input-error.js";
import type { Plan } from "../core/plan.js";
import { planIdentity } from "../core/plan-identity.js";
import { isUniform, type Policy } from "../core/policy.js";
import { RESOURCES, type Resource } from "../core/resources.js";
import { PlanError } from "../planner/plan.js";
import { evaluatePolicy, policyCostContext } from "../planner/spillway/evaluate-policy.js";
import { hardwareRates } from "../planner/spillway/hardware-rates.js";
import { scheduleStrategy } from "../schedule/strategies.js";
import { globalStep, zigzag } from "../schedule/zigzag.js";
import type { ChromeTraceWriter } from "../simulator/chrome-trace-writer.js";
import { openTraceSink } from "../simulator/open-trace-sink.js";
import type { TaskKind } from "../simulator/task.js";
import { cudaUnsupported, executeOnCuda } from "./cuda/cuda-run.js";
import type { CudaNative } from "./cuda/native-api.js";
import { requireCuda } from "./cuda/require-cuda.js";
import { DeviceArena, type DeviceBlock, DeviceOutOfMemory } from "./device-arena.js";
import { DiskStore } from "./disk-store.js";
import { type HiddenIn, HiddenStaging } from "./hidden-staging.js";
import { moeGpuShortfall } from "./moe/moe-gpu-fit.js";
import { executeMoePlan } from "./moe/run-moe-plan.js";
import { loadOptCheckpoint, type OptWeights } from "./opt-checkpoint.js";
import {
  HostLedger,
  OptRunner,
  type PendingCache,
  type PendingLayer,
  type ReadyLayer,
  type StepRecorder,
  type TransferMeta,
  type Transfers,
} from "./opt-runner.js";
import { placeWeights } from "./parallel-encoder.js";
import type { RunOptions } from "./run-options.js";
import { runProgress } from "./run-progress.js";
import { type RunResult, timedRunFigures } from "./run-result.js";
import { syntheticPrompts } from "./synthetic-prompts.js";
import { type FinishedTransfer, TransferEngine } from "./transfer-engine.js";

export type { RunOptions } from "./run-options.js";
export type { RunResult } from "./run-result.js";
export { syntheticPrompts } from "./synthetic-prompts.js";

class Recorder implements StepRecorder {
  readonly busy = Object.fromEntries(RESOURCES.map((r) => [r, 0])) as Record<Resource, number>;
  readonly bytes = { h2d: 0, d2h: 0, diskRead: 0, diskWrite: 0 };
  events = 0;
  private readonly stack: { inner: number }[] = [];
  readonly origin = performance.now();
  private readonly originMs = performance.timeOrigin + this.origin;

  constructor(private readonly trace: ChromeTraceWriter | undefined) {}

  now(): number {
    return (performance.now() - this.origin) / 1000;
  }

  /** A transfer that ran (inline or on a worker), timed on the shared clock. */
  transfer(done: FinishedTransfer<TransferMeta>): void {
    const start = (done.startMs - this.originMs) / 1000;
    const end = (done.endMs - this.originMs) / 1000;
    this.busy[done.stream] += end - start;
    this.bytes[done.stream] += done.bytes;
    this.events++;
    this.trace?.slice(done.meta.kind, done.stream, start, end, done.bytes, done.meta.where);
  }

  record<T>(
    kind: TaskKind,
    resource: Resource,
    bytes: number,
    where: { token: number; layer: number; batch: number },
    work: () => T,
  ): T {
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

interface Execution {
  readonly tokens: number[][];
  readonly recorder: {
    readonly busy: Readonly<Record<Resource, number>>;
    readonly bytes: RunResult["bytes"];
    readonly events: number;
  };
  readonly prefillSeconds: number;
  readonly makespanSeconds: number;
  readonly peakBytes: { gpu: number; cpu: number; disk: number };
}

/** Lets signal handlers (Ctrl-C cleans the offload folder) and pending I/O run between steps. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function execute(
  weights: OptWeights,
  plan: Plan,
  profile: HardwareProfile,
  options: RunOptions,
  policy: Policy,
  capacity: { gpu: number; cpu: number; disk: number },
  trace: ChromeTraceWriter | undefined,
  phase: string,
): Promise<Execution> {
  const model = weights.model;
  const { promptLen: s, genLen: n } = plan.workload;
  const schedule = options.schedule ?? "spillway";
  const context = policyCostContext(model, hardwareRates(profile), plan.workload, policy, schedule);
  const arena = new DeviceArena(capacity.gpu);
  const host = new HostLedger();
  const disk = new DiskStore(options.offloadDir ?? tmpdir());
  const recorder = new Recorder(trace);
  let transfers: Transfers | undefined;
  try {
    transfers = await TransferEngine.start<TransferMeta>(options.overlap ?? policy.overlap, (done) =>
      recorder.transfer(done),
    );
    const engine = transfers;
    const runner = new OptRunner(weights, policy, plan.workload, context, arena, host, disk, recorder, engine);
    await placeWeights(options.encoderThreads, policy.compressWeight, (encoder) => runner.place(encoder));
    const gbs = policy.gpuBatchSize;
    const nb = policy.numGpuBatches;
    const h = model.hiddenSize;
    const L = model.numLayers;
    const tier = context.realized.activationTier;
    const prompts = syntheticPrompts(gbs * nb, s, model.vocabSize, options.promptSeed ?? 0);
    const tokens: number[][] = Array.from({ length: gbs * nb }, () => []);
    let inputs = Array.from({ length: nb }, (_, k) => prompts.subarray(k * gbs * s, (k + 1) * gbs * s));
    const hiddenStaging = new HiddenStaging(engine, arena, host, disk, tier, nb, gbs * s * h);

    const start = recorder.now();
    let prefillEnd = 0;
    // The zig-zag, one step ahead (schedule/zigzag.ts): a layer's weights are issued while the layer
    // before it computes, a step's KV and hidden state while the step before it computes.
    const shape = { numLayers: L, numGpuBatches: nb, genLen: n };
    const computed = runProgress(options.onProgress, phase, shape);
    let pendingEmbeddings: PendingLayer | undefined;
    let embeddings: ReadyLayer | undefined;
    let pendingWeights: PendingLayer | undefined;
    let ready: ReadyLayer | undefined;
    // Hidden states between layers: device blocks, or host arrays / offload files loaded per step.
    let deviceHidden: DeviceBlock[] = [];
    const caches = new Map<number, PendingCache>();
    const hiddens = new Map<number, HiddenIn>();
    let view: Uint16Array | undefined;
    /** The last transfer issued before the step computed: a barrier waits for it and all before it. */
    let issuedBeforeCompute = 0;
    for (const step of zigzag(shape, scheduleStrategy(schedule), "executor")) {
      const { token, layer, batch: k } = step.at;
      const hiddenValues = gbs * (token === 0 ? s : 1) * h;
      const q = globalStep(shape, step.at);
      switch (step.kind) {
        case "issue-weights":
          if (layer === L) pendingEmbeddings = runner.issueEmbeddings(token);
          else pendingWeights = runner.issueLayer(layer, token);
          break;
        case "ready-weights":
          if (layer === L) {
            embeddings = runner.readyEmbeddings(pendingEmbeddings!, token);
            deviceHidden =
              tier === "gpu"
                ? Array.from({ length: nb }, (_, b) => arena.allocate(hiddenValues * 2, `hidden state of batch ${b}`))
                : [];
          } else {
            await yieldToEventLoop();
            ready = runner.readyLayer(pendingWeights!);
          }
          break;
        case "embed": {
          const where = { token, layer: -1, batch: k };
          engine.wait(hiddenStaging.stored(k));
          if (tier === "gpu")
            recorder.record("compute", "gpu", 0, where, () =>
              runner.embed(embeddings!, inputs[k]!, token, arena.uint16(deviceHidden[k]!, hiddenValues)),
            );
          else {
            // Embedded on the device, stored to the batch's tier like every layer's output (the last
            // layer's output is not stored: the LM head has used it).
            const staging = hiddenStaging.allocate(-1, k, hiddenValues);
            recorder.record("compute", "gpu", 0, where, () =>
              runner.embed(embeddings!, inputs[k]!, token, staging.view),
            );
            hiddenStaging.store(token, -1, k, { ...staging, arrived: 0 }, hiddenValues);
          }
          break;
        }
        case "issue-kv":
          caches.set(q, runner.issueCache(layer, k, token));
          break;
        case "issue-hidden":
          if (tier !== "gpu") hiddens.set(q, hiddenStaging.issue(token, layer, k, hiddenValues));
          break;
        case "compute": {
          issuedBeforeCompute = engine.lastSubmitted;
          const hidden = hiddens.get(q);
          if (hidden) engine.wait(hidden.arrived);
          view = hidden ? hidden.view : arena.uint16(deviceHidden[k]!, hiddenValues);
          runner.computeLayer(ready!, view, layer, k, token, caches.get(q)!);
          caches.delete(q);
          computed(step.at);
          break;
        }
        case "lm-head":
          runner.lmHead(embeddings!, view!, token, k);
          break;
        case "store": {
          const hidden = hiddens.get(q);
          hiddens.delete(q);
          if (hidden && step.outputToNextLayer) hiddenStaging.store(token, layer, k, hidden, hiddenValues);
          else if (hidden) hiddenStaging.release(hidden);
          break;
        }
        case "barrier":
          engine.drain(issuedBeforeCompute);
          break;
        case "release-weights":
          runner.releaseLayer(ready!);
          break;
        case "next-tokens": {
          const next = runner.finishHeads(embeddings!, token);
          runner.releaseEmbeddings(embeddings!);
          for (const block of deviceHidden) arena.release(block);
          for (let b = 0; b < nb; b++) for (let i = 0; i < gbs; i++) tokens[b * gbs + i]!.push(next[b]![i]!);
          inputs = next;
          if (token === 0) prefillEnd = recorder.now();
          break;
        }
        case "token-end":
          break;
      }
    }
    engine.drain();
    hiddenStaging.releaseAll();
    const end = recorder.now();
    hiddenStaging.close();
    return {
      tokens,
      recorder,
      prefillSeconds: prefillEnd - start,
      makespanSeconds: end - start,
      peakBytes: { gpu: arena.peakBytes, cpu: host.peakBytes, disk: disk.peakBytes },
    };
  } catch (error) {
    if (error instanceof DeviceOutOfMemory) throw new PlanError(`the plan does not fit at run time: ${error.message}`);
    throw error;
  } finally {
    await transfers?.close();
    disk.close();
  }
}

export { requireCuda } from "./cuda/require-cuda.js";

async function executeCuda(
  native: CudaNative,
  weights: OptWeights,
  plan: Plan,
  profile: HardwareProfile,
  options: RunOptions,
  trace: ChromeTraceWriter | undefined,
): Promise<Execution> {
  const policy = plan.policy;
  const context = policyCostContext(
    weights.model,
    hardwareRates(profile),
    plan.workload,
    policy,
    options.schedule ?? "spillway",
  );
  const disk = new DiskStore(options.offloadDir ?? tmpdir());
  try {
    const prompts = syntheticPrompts(
      policy.gpuBatchSize * policy.numGpuBatches,
      plan.workload.promptLen,
      weights.model.vocabSize,
      options.promptSeed ?? 0,
    );
    const result = await executeOnCuda(native, weights, policy, plan.workload, context, disk, prompts, {
      capacityBytes: options.capacityBytes,
      schedule: options.schedule ?? "spillway",
      overlap: options.overlap ?? policy.overlap,
      ...(trace ? { trace } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.encoderThreads !== undefined ? { encoderThreads: options.encoderThreads } : {}),
    });
    return {
      tokens: result.tokens,
      recorder: { busy: result.busy, bytes: result.bytes, events: result.events },
      prefillSeconds: result.prefillSeconds,
      makespanSeconds: result.makespanSeconds,
      peakBytes: result.peakBytes,
    };
  } catch (error) {
    if (error instanceof DeviceOutOfMemory)
      throw new PlanError(`the plan does not fit at run time on the CUDA backend: ${error.message}`);
    throw error;
  } finally {
    disk.close();
  }
}

function allOnDevice(policy: Policy): Policy {
  const all = { gpu: 1, cpu: 0, disk: 0 };
  return { ...policy, weights: all, cache: all, activations: all };
}

export async function run(plan: Plan, profile: HardwareProfile, options: RunOptions): Promise<RunResult> {
  // Mixture-of-Experts plans run with expert caches (runtime/moe/run-moe-plan.ts); the result adds their expert figures.
  if (plan.policy.experts) {
    // Refused before the reference passes run, not out of device memory in the middle of the run.
    const shortfall = moeGpuShortfall(plan, options.capacityBytes.gpu);
    if (shortfall) throw new PlanError(shortfall);
    return (await executeMoePlan(plan, profile, options)).result;
  }
  if (options.routingPath !== undefined)
    throw new InputError(
      "--record-routing",
      undefined,
      "only a Mixture-of-Experts plan (policy.experts) routes tokens to experts; this plan is dense",
    );
  if (!isUniform(plan.policy) || plan.policy.embeddings) {
    throw new PlanError(
      "the runtime runs one weight placement for every layer, computed on the GPU: this plan's per-layer placement (an accelerate or llama.cpp baseline) can be planned and simulated, not run yet",
    );
  }
  const weights = loadOptCheckpoint(options.weightsDir);
  try {
    const spec = plan.modelSpec;
    const m = weights.model;
    for (const key of ["numLayers", "hiddenSize", "ffnSize", "numHeads", "vocabSize", "wordEmbedDim"] as const) {
      if (spec[key] !== m[key])
        throw new InputError(
          options.weightsDir,
          undefined,
          `the plan is for ${spec.name} (${key} ${spec[key]}) but this checkpoint holds a model with ${key} ${m[key]}`,
        );
    }
    if (plan.workload.promptLen + plan.workload.genLen > m.maxPositions)
      throw new PlanError(`prompt + generated tokens exceed the model's ${m.maxPositions} positions`);
    const backend = options.backend ?? "cpu";
    let native: CudaNative | undefined;
    let device: string | undefined;
    if (backend === "cuda") {
      native = options.cudaNative ?? requireCuda();
      const why = cudaUnsupported(
        m,
        plan.policy,
        policyCostContext(m, hardwareRates(profile), plan.workload, plan.policy, options.schedule ?? "spillway"),
      );
      if (why) throw new PlanError(`--backend cuda cannot run this plan yet: ${why}`);
      native.setDevice(0);
      device = native.deviceProperties(0).name;
    }
    const trace = openTraceSink(options, "run()");
    trace?.describe({ source: "run", plan: planIdentity(plan.model, plan.workload, plan.policy) });
    let measured: Execution;
    try {
      measured = native
        ? await executeCuda(native, weights, plan, profile, options, trace)
        : await execute(weights, plan, profile, options, plan.policy, options.capacityBytes, trace, "run");
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
      const reference = await execute(
        weights,
        plan,
        profile,
        { ...options, tracePath: undefined, trace: undefined, overlap: false, backend: "cpu" },
        policy,
        { gpu: need * 1.5 + 64 * 2 ** 20, cpu: Infinity, disk: Infinity },
        undefined,
        "reference",
      );
      referenceTokens = reference.tokens;
      matchesReference = JSON.stringify(reference.tokens) === JSON.stringify(measured.tokens);
    }
    const r = measured.recorder;
    const f = timedRunFigures(plan, { ...measured, busySeconds: r.busy });
    return {
      backend,
      ...(device ? { device } : {}),
      schedule: options.schedule ?? "spillway",
      overlap: options.overlap ?? plan.policy.overlap,
      throughputTokensPerSecond: f.throughputTokensPerSecond,
      prefillSeconds: f.prefillSeconds,
      decodeSeconds: f.decodeSeconds,
      makespanSeconds: f.makespanSeconds,
      events: r.events,
      peakBytes: measured.peakBytes,
      capacityBytes: options.capacityBytes,
      bytes: r.bytes,
      busySeconds: f.busySeconds,
      utilisation: f.utilisation,
      criticalResource: f.criticalResource,
      planned: f.planned,
      relativeError: f.relativeError,
      tokens: measured.tokens,
      ...(matchesReference !== undefined ? { matchesReference, referenceTokens: referenceTokens! } : {}),
    };
  } finally {
    weights.close();
  }
}
