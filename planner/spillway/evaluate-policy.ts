/**
 * Exact prediction of one policy under Spillway's cost model: the placement is first realized at the
 * runtime's granularity (whole tensors, whole sequences, activations on one tier), then every decode
 * step is costed at its own context length, and peak memory per tier is what will be allocated.
 */

import { LINKS, type Link } from "../../core/links.js";
import type { ModelSpec } from "../../core/model-spec.js";
import type { ComputeDevice, Policy } from "../../core/policy.js";
import { checkLayerGroups } from "../../core/policy-rules.js";
import { type RealizedPlacement, realizePlacement } from "../../core/realize-placement.js";
import { RESOURCES, type Resource } from "../../core/resources.js";
import type { ScheduleName } from "../../core/schedule-name.js";
import type { Tier } from "../../core/tiers.js";
import type { Workload } from "../../core/workload.js";
import { type Affine, VariableSpace } from "../lp/affine.js";
import { capacityShortfalls, type Prediction, timeShortfalls } from "../prediction.js";
import { costConstants } from "./cost-constants.js";
import type { HardwareRates } from "./hardware-rates.js";
import type { LayerCostCache } from "./layer-cost-cache.js";
import { exactLayerTimeBounds, layerSeconds } from "./layer-time.js";
import {
  type CostSettings,
  type ModelCostConstants,
  type PlacementTerms,
  StepCostModel,
  type StepCosts,
} from "./step-costs.js";

export const PLACEMENT_VARIABLES = ["wg", "wc", "wd", "cg", "cc", "cd"] as const;

export function costSettings(
  policy: Policy,
  realized: RealizedPlacement,
  schedule: ScheduleName,
  compute: ComputeDevice = "gpu",
): CostSettings {
  return {
    gbs: policy.gpuBatchSize,
    nb: policy.numGpuBatches,
    compressWeight: policy.compressWeight,
    compressCache: policy.compressCache,
    cpuAttention: policy.cpuAttention,
    activationTier: realized.activationTier,
    pinWeight: policy.pinWeight,
    overlap: policy.overlap,
    schedule,
    compute,
  };
}

const SPACE = new VariableSpace(PLACEMENT_VARIABLES);

export function realizedTerms(realized: RealizedPlacement): { terms: PlacementTerms; values: Float64Array } {
  const values = Float64Array.from([
    realized.weights.gpu,
    realized.weights.cpu,
    realized.weights.disk,
    realized.cache.gpu,
    realized.cache.cpu,
    realized.cache.disk,
  ]);
  const v = (name: string) => SPACE.term(1, name);
  return {
    terms: {
      wg: v("wg"),
      wc: v("wc"),
      wd: v("wd"),
      cg: v("cg"),
      cc: v("cc"),
      cd: v("cd"),
      embedding: {
        gpu: SPACE.constant(realized.embeddingBytes.gpu),
        cpu: SPACE.constant(realized.embeddingBytes.cpu),
        disk: SPACE.constant(realized.embeddingBytes.disk),
      },
      headBuffer: SPACE.constant(realized.headBufferBytes),
      layerWeightBytes: {
        gpu: SPACE.constant(realized.layerWeightBytes.gpu),
        cpu: SPACE.constant(realized.layerWeightBytes.cpu),
        disk: SPACE.constant(realized.layerWeightBytes.disk),
      },
    },
    values,
  };
}

/** A step's seconds per resource (RESOURCES order) and bytes per link (LINKS order) at `values`. */
interface EvaluatedStep {
  readonly seconds: Float64Array;
  readonly bytes: Float64Array;
}

function evaluatedStep(): EvaluatedStep {
  return { seconds: new Float64Array(RESOURCES.length), bytes: new Float64Array(LINKS.length) };
}

/** Evaluates `step` at `values` into `into`: every expression once. */
function evaluateStep(step: StepCosts, values: Float64Array, into: EvaluatedStep): EvaluatedStep {
  for (let i = 0; i < RESOURCES.length; i++) into.seconds[i] = step.seconds[RESOURCES[i]!].evaluate(values);
  for (let i = 0; i < LINKS.length; i++) into.bytes[i] = step.bytes[LINKS[i]!].evaluate(values);
  return into;
}

/** Adds `times` an evaluated step to the busy seconds and the traffic. */
function addStep(
  busy: Record<Resource, number>,
  bytes: Record<Link, number>,
  step: EvaluatedStep,
  times: number,
): void {
  for (let i = 0; i < RESOURCES.length; i++) busy[RESOURCES[i]!] += times * step.seconds[i]!;
  for (let i = 0; i < LINKS.length; i++) bytes[LINKS[i]!] += times * step.bytes[i]!;
}

/** Seconds of the one-off fill (first layer's weights before any compute) and of a head step. */
function serialSeconds(step: StepCosts, values: Float64Array): number {
  return RESOURCES.reduce((sum, r) => sum + step.seconds[r].evaluate(values), 0);
}

/** Everything needed to cost a realized policy numerically: shared by the exact evaluation and the simulator. */
export interface PolicyCostContext {
  readonly realized: RealizedPlacement;
  readonly settings: CostSettings;
  readonly constants: ModelCostConstants;
  readonly costModel: StepCostModel;
  readonly terms: PlacementTerms;
  readonly values: Float64Array;
}

export function policyCostContext(
  model: ModelSpec,
  rates: HardwareRates,
  workload: Workload,
  policy: Policy,
  schedule: ScheduleName,
  compute: ComputeDevice = "gpu",
): PolicyCostContext {
  const realized = realizePlacement(model, policy);
  const settings = costSettings(policy, realized, schedule, compute);
  const constants = costConstants(model, policy.compressWeight);
  const costModel = new StepCostModel(model, rates, workload, settings, constants, SPACE);
  return { realized, settings, constants, costModel, ...realizedTerms(realized) };
}

/** The cost context of one group of consecutive layers that share a placement and a compute device. */
export interface GroupCostContext extends PolicyCostContext {
  readonly firstLayer: number;
  readonly layers: number;
  readonly compute: ComputeDevice;
}

const ALL_CPU = { gpu: 0, cpu: 1, disk: 0 } as const;

/** Checks a policy's layer groups against the model: they cover every layer, and CPU layers keep activations on the GPU side. */
/**
 * One cost context per layer group (a uniform policy is one group of every layer). Every group sees the
 * same embeddings; CPU-computed groups keep their KV cache on the CPU.
 */
export function groupCostContexts(
  model: ModelSpec,
  rates: HardwareRates,
  workload: Workload,
  policy: Policy,
  schedule: ScheduleName,
): GroupCostContext[] {
  checkLayerGroups(model, policy);
  if (!policy.layerGroups)
    return [
      {
        firstLayer: 0,
        layers: model.numLayers,
        compute: "gpu",
        ...policyCostContext(model, rates, workload, policy, schedule),
      },
    ];
  const { layerGroups, ...uniform } = policy;
  const embeddings = policy.embeddings ?? policy.weights;
  let firstLayer = 0;
  return layerGroups.map((g) => {
    const sub: Policy = {
      ...uniform,
      weights: g.weights,
      embeddings,
      ...(g.compute === "cpu" ? { cache: ALL_CPU } : {}),
    };
    const context = {
      firstLayer,
      layers: g.layers,
      compute: g.compute,
      ...policyCostContext(model, rates, workload, sub, schedule, g.compute),
    };
    firstLayer += g.layers;
    return context;
  });
}

/**
 * Where the hidden state changes device between consecutive layers (the embedding lookup and the LM
 * head are on the GPU side): one transfer per batch per token step at each such boundary.
 */
export function deviceCrossings(groups: readonly { readonly compute: ComputeDevice }[]): ("h2d" | "d2h")[] {
  const devices: ComputeDevice[] = ["gpu", ...groups.map((g) => g.compute), "gpu"];
  const out: ("h2d" | "d2h")[] = [];
  for (let i = 1; i < devices.length; i++)
    if (devices[i] !== devices[i - 1]) out.push(devices[i] === "cpu" ? "d2h" : "h2d");
  return out;
}

/**
 * Peak bytes per tier of a policy's layer groups: the larger of prefill and decode, everything the
 * runtime allocates at its own granularity. Each group's layers hold their own weights and KV; the
 * embeddings, the LM head's buffer and the hidden states are everyone's and count once. The rest
 * (weight buffers and staging, KV staging, working space) is transient: groups computed on the same
 * device take turns with the same kinds of buffers, so those count once, at the largest any of them
 * needs. On the host, a CPU-computed layer's working space is held while the next GPU layer's weights
 * and KV are already staged, so there the GPU-computed and the CPU-computed groups' transients add up;
 * on the GPU, a CPU-computed group's only transient (the LM head's logits) never coexists with a GPU
 * layer's working space (one kernel at a time), which is at least as large.
 */
export function groupsPeakBytes(groups: readonly GroupCostContext[]): Record<Tier, number> {
  const memories = groups.map((g) => ({
    all: g.costModel.memory(g.terms, g.layers),
    shared: g.costModel.memory(g.terms, 0),
    global: g.costModel.memory(g.terms, 0, "global"),
    values: g.values,
    compute: g.compute,
  }));
  const computeDevices = [...new Set(memories.map((m) => m.compute))];
  const tierPeak = (pick: (m: ReturnType<StepCostModel["memory"]>) => Affine[], addAcrossDevices: boolean) => {
    const phases = pick(memories[0]!.all).length;
    let peak = 0;
    for (let i = 0; i < phases; i++) {
      const devices = addAcrossDevices ? computeDevices : ["all"];
      let own = 0;
      let global = 0;
      const shared = new Map(devices.map((d) => [d, 0]));
      for (const m of memories) {
        const sharedBytes = pick(m.shared)[i]!.evaluate(m.values);
        const device = addAcrossDevices ? m.compute : "all";
        own += pick(m.all)[i]!.evaluate(m.values) - sharedBytes;
        shared.set(device, Math.max(shared.get(device)!, sharedBytes));
        global = Math.max(global, pick(m.global)[i]!.evaluate(m.values));
      }
      // Each device's largest shared part includes the global part once; it is counted once in all.
      let total = own;
      for (const bytes of shared.values()) total += bytes;
      peak = Math.max(peak, total - (devices.length - 1) * global);
    }
    return peak;
  };
  return {
    gpu: tierPeak((m) => m.gpu, false),
    cpu: tierPeak((m) => m.cpu, true),
    disk: tierPeak((m) => [m.disk], false),
  };
}

/** A dense (or per-layer) policy's peak bytes per tier, without costing its time (evaluatePolicy's peakBytes). */
export function policyPeakBytes(
  model: ModelSpec,
  rates: HardwareRates,
  workload: Workload,
  policy: Policy,
  schedule: ScheduleName = "spillway",
): Record<Tier, number> {
  return groupsPeakBytes(groupCostContexts(model, rates, workload, policy, schedule));
}

/**
 * A dense (or per-layer) policy's exact prediction. Mixture-of-Experts policies (policy.experts) have
 * their own model, which needs a routing profile: evaluate them through planner/evaluate.ts.
 */
export function evaluatePolicy(...args: Parameters<typeof stagedEvaluation>): Prediction {
  return stagedEvaluation(...args).prediction();
}

/**
 * A policy's exact evaluation in two stages: its peak memory per tier at once (the cheap part, which
 * alone decides that a policy does not fit), its time only when asked for. `prediction()` is, to the
 * last bit, evaluatePolicy's answer; it is computed once.
 */
export interface StagedEvaluation {
  readonly peakBytes: Readonly<Record<Tier, number>>;
  readonly capacityBytes: Readonly<Record<Tier, number>>;
  /** Whether every tier's peak fits its capacity (no capacity shortfall; the time is not checked). */
  readonly fitsMemory: boolean;
  prediction(): Prediction;
}

/** evaluatePolicy in two stages (StagedEvaluation): the peak memory now, the time on demand. */
export function stagedEvaluation(
  model: ModelSpec,
  rates: HardwareRates,
  workload: Workload,
  policy: Policy,
  schedule: ScheduleName = "spillway",
  /** A search's memo of layer costs (layer-cost-cache.ts): the same prediction, computed with less work. */
  layerCosts?: LayerCostCache,
): StagedEvaluation {
  if (policy.experts)
    throw new Error(
      "evaluatePolicy() costs dense policies: an expert policy needs a routing profile (use evaluate() from planner/evaluate.ts)",
    );
  const groups = groupCostContexts(model, rates, workload, policy, schedule);
  const peakBytes = groupsPeakBytes(groups);
  const capacityBytes = rates.capacityBytes;
  const capacity = capacityShortfalls(peakBytes, capacityBytes);
  let prediction: Prediction | undefined;
  return {
    peakBytes,
    capacityBytes,
    fitsMemory: capacity.length === 0,
    prediction: () => {
      prediction ??= predictTime(model, rates, workload, policy, groups, peakBytes, capacity, layerCosts);
      return prediction;
    },
  };
}

/** The time half of an exact evaluation, for `groups` (groupCostContexts) whose peak memory is known. */
function predictTime(
  model: ModelSpec,
  rates: HardwareRates,
  workload: Workload,
  policy: Policy,
  groups: readonly GroupCostContext[],
  peakBytes: Readonly<Record<Tier, number>>,
  capacity: readonly string[],
  layerCosts: LayerCostCache | undefined,
): Prediction {
  const memos = groups.map((g) => layerCosts?.forCostModel(g.costModel, g.terms));
  const first = groups[0]!;
  const nb = policy.numGpuBatches;
  const { promptLen: s, genLen: n } = workload;
  const busy = Object.fromEntries(RESOURCES.map((r) => [r, 0])) as Record<Resource, number>;
  const bytes = Object.fromEntries(LINKS.map((l) => [l, 0])) as Record<Link, number>;
  const head = first.costModel.head(first.terms);
  const headSeconds = serialSeconds(head, first.values);
  // The head's costs are the same at every step; each layer step's are evaluated once per step, then
  // added up and compared (the same numbers, added in the same order, as evaluating them at each use).
  const headStep = evaluateStep(head, first.values, evaluatedStep());
  const weightsStep = evaluatedStep();
  const batchStep = evaluatedStep();

  // The bottleneck is the resource that bounds the most wall time: each step's time goes to the
  // resource with the most work in it.
  const bottleneckSeconds = Object.fromEntries(RESOURCES.map((r) => [r, 0])) as Record<Resource, number>;
  const creditBottleneck = (weights: EvaluatedStep, batch: EvaluatedStep, seconds: number) => {
    let worst: Resource = "gpu";
    let worstSeconds = -1;
    for (let i = 0; i < RESOURCES.length; i++) {
      const t = weights.seconds[i]! + nb * batch.seconds[i]!;
      if (t > worstSeconds) {
        worst = RESOURCES[i]!;
        worstSeconds = t;
      }
    }
    bottleneckSeconds[worst] += seconds;
  };

  // Hidden states crossing between CPU- and GPU-computed layers, in sequence with the layers.
  const crossings = deviceCrossings(groups);
  const crossingSeconds = (tokens: number) => {
    let seconds = 0;
    for (const link of crossings) {
      const moved = tokens * model.hiddenSize * 2;
      const t =
        link === "h2d"
          ? moved / rates.h2dBytesPerSecond + rates.h2dLatencySeconds
          : moved / rates.d2hBytesPerSecond + rates.d2hLatencySeconds;
      busy[link] += nb * t;
      bytes[link] += nb * moved;
      bottleneckSeconds[link] += nb * t;
      seconds += nb * t;
    }
    return seconds;
  };

  /** Wall seconds of every layer at one token step, with busy time, traffic and bottleneck credited. */
  const layersSeconds = (phase: "prefill" | "decode", context: number) => {
    let seconds = 0;
    let groupIndex = 0;
    for (const g of groups) {
      const memo = memos[groupIndex++];
      const step = memo ? memo.layer(phase, context) : g.costModel.layer(phase, context, g.terms);
      const bounds = memo ? memo.exactLayerTimeBounds(phase, context) : exactLayerTimeBounds(step, g.settings);
      const layerWall = layerSeconds(bounds, g.values);
      seconds += g.layers * layerWall;
      evaluateStep(step.weights, g.values, weightsStep);
      evaluateStep(step.batch, g.values, batchStep);
      addStep(busy, bytes, weightsStep, g.layers);
      addStep(busy, bytes, batchStep, g.layers * nb);
      creditBottleneck(weightsStep, batchStep, g.layers * layerWall);
    }
    addStep(busy, bytes, headStep, 1);
    return seconds + crossingSeconds(phase === "prefill" ? policy.gpuBatchSize * s : policy.gpuBatchSize);
  };

  const firstWeights = (memos[0] ? memos[0].layer("prefill", s) : first.costModel.layer("prefill", s, first.terms))
    .weights;
  const fillSeconds =
    firstWeights.seconds.h2d.evaluate(first.values) + firstWeights.seconds.diskRead.evaluate(first.values);
  const prefillSeconds = fillSeconds + layersSeconds("prefill", s) + headSeconds;
  let decodeSeconds = 0;
  for (let i = 1; i < n; i++) decodeSeconds += layersSeconds("decode", s + i) + headSeconds;
  const bottleneck = RESOURCES.reduce(
    (a, r) => (bottleneckSeconds[r] > bottleneckSeconds[a] ? r : a),
    "gpu" as Resource,
  );

  const capacityBytes = rates.capacityBytes;
  const totalSeconds = prefillSeconds + decodeSeconds;
  const infeasibleReasons = [...capacity, ...timeShortfalls(totalSeconds)];
  return {
    throughputTokensPerSecond: (policy.gpuBatchSize * policy.numGpuBatches * n) / totalSeconds,
    prefillSeconds,
    decodeSeconds,
    totalSeconds,
    feasible: infeasibleReasons.length === 0,
    infeasibleReasons,
    peakBytes,
    capacityBytes,
    bytes,
    busySeconds: busy,
    bottleneck,
  };
}
