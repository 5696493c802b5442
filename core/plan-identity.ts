/**
 * What makes two outputs "of the same plan": the model, the workload and the policy that a simulation,
 * a run or a comparison executed. Traces carry it (`otherData.plan`), comparisons and plans have it, so
 * `spillway report` can refuse to chart together files made from different plans. The hardware is left
 * out on purpose: running a plan on another machine than it was made for is what `compare` is for.
 */
import { asObject, child, type FieldContext, fail, readNumber, readObject, readString } from "./fields.js";
import { describeValue } from "./input-error.js";
import type { Policy } from "./policy.js";
import type { Tier } from "./tiers.js";

type TierAmounts = Readonly<Record<Tier, number>>;

export interface PlanIdentity {
  readonly model: string;
  readonly promptLen: number;
  readonly genLen: number;
  readonly gpuBatchSize: number;
  readonly numGpuBatches: number;
  readonly weights: TierAmounts;
  readonly cache: TierAmounts;
  readonly activations: TierAmounts;
  readonly compressWeight: boolean;
  readonly compressCache: boolean;
  readonly cpuAttention: boolean;
}

export function planIdentity(
  model: string,
  workload: { readonly promptLen: number; readonly genLen: number },
  policy: Policy,
): PlanIdentity {
  return {
    model,
    promptLen: workload.promptLen,
    genLen: workload.genLen,
    gpuBatchSize: policy.gpuBatchSize,
    numGpuBatches: policy.numGpuBatches,
    weights: { gpu: policy.weights.gpu, cpu: policy.weights.cpu, disk: policy.weights.disk },
    cache: { gpu: policy.cache.gpu, cpu: policy.cache.cpu, disk: policy.cache.disk },
    activations: { gpu: policy.activations.gpu, cpu: policy.activations.cpu, disk: policy.activations.disk },
    compressWeight: policy.compressWeight,
    compressCache: policy.compressCache,
    cpuAttention: policy.cpuAttention,
  };
}

/** The first field where two identities differ ("gpuBatchSize: 8 vs 16"), or undefined when they agree. */
export function identityDifference(a: Partial<PlanIdentity>, b: Partial<PlanIdentity>): string | undefined {
  for (const key of Object.keys(a) as (keyof PlanIdentity)[]) {
    const x = a[key];
    const y = b[key];
    if (x === undefined || y === undefined) continue;
    if (typeof x === "object" && typeof y === "object") {
      for (const tier of ["gpu", "cpu", "disk"] as const)
        if (Math.abs(x[tier] - y[tier]) > 1e-9) return `${key}.${tier}: ${x[tier]} vs ${y[tier]}`;
    } else if (x !== y) return `${key}: ${JSON.stringify(x)} vs ${JSON.stringify(y)}`;
  }
  return undefined;
}

/** Reads a PlanIdentity (a trace's `otherData.plan`), every problem an InputError naming the field. */
export function parsePlanIdentity(data: unknown, ctx: FieldContext): PlanIdentity {
  const o = asObject(data, ctx);
  const amounts = (key: string): TierAmounts => {
    const a = readObject(o, key, ctx);
    const c = child(ctx, key);
    return {
      gpu: readNumber(a, "gpu", c, { min: 0, max: 1 }),
      cpu: readNumber(a, "cpu", c, { min: 0, max: 1 }),
      disk: readNumber(a, "disk", c, { min: 0, max: 1 }),
    };
  };
  const flag = (key: string): boolean => {
    if (typeof o[key] !== "boolean") fail(ctx, key, `expected true or false, got ${describeValue(o[key])}`);
    return o[key] as boolean;
  };
  return {
    model: readString(o, "model", ctx),
    promptLen: readNumber(o, "promptLen", ctx, { min: 1, integer: true }),
    genLen: readNumber(o, "genLen", ctx, { min: 1, integer: true }),
    gpuBatchSize: readNumber(o, "gpuBatchSize", ctx, { min: 1, integer: true }),
    numGpuBatches: readNumber(o, "numGpuBatches", ctx, { min: 1, integer: true }),
    weights: amounts("weights"),
    cache: amounts("cache"),
    activations: amounts("activations"),
    compressWeight: flag("compressWeight"),
    compressCache: flag("compressCache"),
    cpuAttention: flag("cpuAttention"),
  };
}
