/**
 * Exact prediction of one policy under Spillway's cost model: the placement is first realized at the
 * runtime's granularity (whole tensors, whole sequences, activations on one tier), then every decode
 * step is costed at its own context length, and peak memory per tier is what will be allocated.
 */
import { layerParams, type ModelSpec } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import type { Workload } from "../../core/workload.js";
import { formatBytes } from "../../core/units.js";
import { VariableSpace } from "../lp/affine.js";
import type { HardwareRates } from "./hardware-rates.js";
import { layerSeconds, layerTimeBounds } from "./layer-time.js";
import { type RealizedPlacement, realizePlacement, type Tier } from "./realize-placement.js";
import { type CostSettings, type LayerCosts, LINKS, type Link, type ModelCostConstants, type PlacementTerms, RESOURCES, type Resource, type Schedule, StepCostModel, type StepCosts } from "./step-costs.js";

export const PLACEMENT_VARIABLES = ["wg", "wc", "wd", "cg", "cc", "cd"] as const;

export interface Prediction {
  readonly throughputTokensPerSecond: number;
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly totalSeconds: number;
  readonly feasible: boolean;
  /** Why the policy does not fit, one line per overflowing tier (empty when feasible). */
  readonly infeasibleReasons: readonly string[];
  readonly peakBytes: Readonly<Record<Tier, number>>;
  readonly capacityBytes: Readonly<Record<Tier, number>>;
  /** Total traffic per link over the whole run. */
  readonly bytes: Readonly<Record<Link, number>>;
  /** Total busy seconds per resource over the whole run. */
  readonly busySeconds: Readonly<Record<Resource, number>>;
  /** The resource that bounds the most wall time (prefill and decode together). */
  readonly bottleneck: Resource;
}

const constantsCache = new WeakMap<ModelSpec, Map<boolean, ModelCostConstants>>();

/** Model-derived constants, computed once per (model, compression): every exact evaluation needs them. */
export function costConstants(model: ModelSpec, compressWeight: boolean): ModelCostConstants {
  let perModel = constantsCache.get(model);
  if (!perModel) constantsCache.set(model, (perModel = new Map()));
  let constants = perModel.get(compressWeight);
  if (!constants) perModel.set(compressWeight, (constants = computeCostConstants(model, compressWeight)));
  return constants;
}

function computeCostConstants(model: ModelSpec, compressWeight: boolean): ModelCostConstants {
  const allGpu: Policy = {
    gpuBatchSize: 1, numGpuBatches: 1, weights: { gpu: 1, cpu: 0, disk: 0 }, cache: { gpu: 1, cpu: 0, disk: 0 },
    activations: { gpu: 1, cpu: 0, disk: 0 }, compressWeight, compressCache: false, cpuAttention: false, overlap: true, pinWeight: true,
  };
  const r = realizePlacement(model, allGpu);
  const allOff = realizePlacement(model, { ...allGpu, weights: { gpu: 0, cpu: 1, disk: 0 } });
  return {
    layerParams: layerParams(model),
    layerStoredBytes: r.layerWeightBytes.gpu,
    layerTensors: r.layerWeightTensors.gpu,
    embeddingStoredBytes: r.embeddingBytes.gpu,
    headBufferAllOffBytes: allOff.headBufferBytes,
  };
}

export function costSettings(policy: Policy, realized: RealizedPlacement, schedule: Schedule): CostSettings {
  return {
    gbs: policy.gpuBatchSize, nb: policy.numGpuBatches, compressWeight: policy.compressWeight, compressCache: policy.compressCache,
    cpuAttention: policy.cpuAttention, activationTier: realized.activationTier, pinWeight: policy.pinWeight, overlap: policy.overlap, schedule,
  };
}

const SPACE = new VariableSpace(PLACEMENT_VARIABLES);

export function realizedTerms(realized: RealizedPlacement): { terms: PlacementTerms; values: Float64Array } {
  const values = Float64Array.from([realized.weights.gpu, realized.weights.cpu, realized.weights.disk, realized.cache.gpu, realized.cache.cpu, realized.cache.disk]);
  const v = (name: string) => SPACE.term(1, name);
  return {
    terms: {
      wg: v("wg"), wc: v("wc"), wd: v("wd"), cg: v("cg"), cc: v("cc"), cd: v("cd"),
      embedding: { gpu: SPACE.constant(realized.embeddingBytes.gpu), cpu: SPACE.constant(realized.embeddingBytes.cpu), disk: SPACE.constant(realized.embeddingBytes.disk) },
      headBuffer: SPACE.constant(realized.headBufferBytes),
    },
    values,
  };
}

function addStep(busy: Record<Resource, number>, bytes: Record<Link, number>, step: StepCosts, values: Float64Array, times: number): void {
  for (const r of RESOURCES) busy[r] += times * step.seconds[r].evaluate(values);
  for (const l of LINKS) bytes[l] += times * step.bytes[l].evaluate(values);
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

export function policyCostContext(model: ModelSpec, rates: HardwareRates, workload: Workload, policy: Policy, schedule: Schedule): PolicyCostContext {
  const realized = realizePlacement(model, policy);
  const settings = costSettings(policy, realized, schedule);
  const constants = costConstants(model, policy.compressWeight);
  const costModel = new StepCostModel(model, rates, workload, settings, constants, SPACE);
  return { realized, settings, constants, costModel, ...realizedTerms(realized) };
}

export function evaluatePolicy(model: ModelSpec, rates: HardwareRates, workload: Workload, policy: Policy, schedule: Schedule = "spillway"): Prediction {
  const { settings, costModel, terms, values } = policyCostContext(model, rates, workload, policy, schedule);
  const L = model.numLayers;
  const { promptLen: s, genLen: n } = workload;
  const busy = Object.fromEntries(RESOURCES.map((r) => [r, 0])) as Record<Resource, number>;
  const bytes = Object.fromEntries(LINKS.map((l) => [l, 0])) as Record<Link, number>;
  const head = costModel.head(terms);
  const headSeconds = serialSeconds(head, values);

  // The bottleneck is the resource that bounds the most wall time: each step's time goes to the
  // resource with the most work in it.
  const bottleneckSeconds = Object.fromEntries(RESOURCES.map((r) => [r, 0])) as Record<Resource, number>;
  const creditBottleneck = (step: LayerCosts, seconds: number) => {
    let worst: Resource = "gpu";
    let worstSeconds = -1;
    for (const r of RESOURCES) {
      const t = step.weights.seconds[r].evaluate(values) + settings.nb * step.batch.seconds[r].evaluate(values);
      if (t > worstSeconds) { worst = r; worstSeconds = t; }
    }
    bottleneckSeconds[worst] += seconds;
  };

  const prefill = costModel.layer("prefill", s, terms);
  const fillSeconds = prefill.weights.seconds.h2d.evaluate(values) + prefill.weights.seconds.diskRead.evaluate(values);
  const prefillLayerSeconds = layerSeconds(layerTimeBounds(prefill, settings), values);
  const prefillSeconds = fillSeconds + L * prefillLayerSeconds + headSeconds;
  addStep(busy, bytes, prefill.weights, values, L);
  addStep(busy, bytes, prefill.batch, values, L * settings.nb);
  addStep(busy, bytes, head, values, 1);
  creditBottleneck(prefill, L * prefillLayerSeconds);

  let decodeSeconds = 0;
  for (let i = 1; i < n; i++) {
    const step = costModel.layer("decode", s + i, terms);
    const stepLayerSeconds = layerSeconds(layerTimeBounds(step, settings), values);
    decodeSeconds += L * stepLayerSeconds + headSeconds;
    addStep(busy, bytes, step.weights, values, L);
    addStep(busy, bytes, step.batch, values, L * settings.nb);
    addStep(busy, bytes, head, values, 1);
    creditBottleneck(step, L * stepLayerSeconds);
  }
  const bottleneck = RESOURCES.reduce((a, r) => (bottleneckSeconds[r] > bottleneckSeconds[a] ? r : a), "gpu" as Resource);

  const memory = costModel.memory(terms);
  const peakBytes = {
    gpu: Math.max(...memory.gpu.map((e) => e.evaluate(values))),
    cpu: Math.max(...memory.cpu.map((e) => e.evaluate(values))),
    disk: memory.disk.evaluate(values),
  };
  const capacityBytes = rates.capacityBytes;
  const infeasibleReasons: string[] = [];
  for (const tier of ["gpu", "cpu", "disk"] as const) {
    if (peakBytes[tier] > capacityBytes[tier]) {
      infeasibleReasons.push(`${tier} peak ${formatBytes(peakBytes[tier])} exceeds its capacity ${formatBytes(capacityBytes[tier])}`);
    }
  }
  const totalSeconds = prefillSeconds + decodeSeconds;
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
