/**
 * Baseline policies users would otherwise pick, scored by the same cost model as Spillway's own plan:
 *
 * - `deepspeed-zero`: ZeRO-Inference. Every weight streamed layer by layer from host memory (or from
 *   NVMe when the host cannot hold them), KV cache and activations on the GPU, one GPU batch of the
 *   largest size that fits, prefetch overlapping compute, no compression, attention on the GPU.
 * - `flexgen`: the policy FlexGen's own search picks (its cost model and T4-fitted constants where the
 *   profile has them), then scored by the Spillway model like every other row.
 *
 * Accelerate's device_map (whole layers on the GPU) and llama.cpp's -ngl (layers computed on the CPU)
 * need per-layer placement and CPU-computed layers, which the policy space does not have yet.
 */
import { toFlexgenPercent } from "../core/policy.js";
import { type FixedPolicy, type Plan, plan, type PlanRequest } from "./plan.js";

export const BASELINE_NAMES = ["deepspeed-zero", "flexgen"] as const;
export type BaselineName = (typeof BASELINE_NAMES)[number];

export interface Baseline {
  readonly name: BaselineName;
  /** What the baseline stands for, in its users' terms. */
  readonly description: string;
  /** The baseline's policy scored by the Spillway cost model; undefined when it cannot run at all. */
  readonly plan?: Plan;
  readonly reason?: string;
}

type BaseRequest = Omit<PlanRequest, "fixed" | "costModel" | "maxBlock" | "alpha">;

/** The largest GPU batch size (1 .. 2^20) for which `fixed(gbs)` is feasible, with its plan. */
async function largestFeasible(request: BaseRequest, fixed: (gbs: number) => FixedPolicy): Promise<Plan | undefined> {
  const at = (gbs: number) => plan({ ...request, costModel: "spillway", fixed: fixed(gbs) });
  let best = await at(1);
  if (!best.predicted.feasible) return undefined;
  let low = 1;
  let high = 2;
  for (;;) {
    const p = await at(high);
    if (!p.predicted.feasible) break;
    best = p;
    low = high;
    if (high >= 1 << 20) return best;
    high *= 2;
  }
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    const p = await at(mid);
    if (p.predicted.feasible) {
      best = p;
      low = mid;
    } else high = mid;
  }
  return best;
}

export async function deepspeedZeroBaseline(request: BaseRequest): Promise<Baseline> {
  const description = "ZeRO-Inference: weights streamed from host memory (NVMe if they do not fit), KV on the GPU, the largest batch that fits";
  const fixed = (weightsOnHost: boolean) => (gbs: number): FixedPolicy => ({
    gbs, nb: 1, percent: [0, weightsOnHost ? 100 : 0, 100, 0, 100, 0],
    compressWeight: false, compressCache: false, cpuAttention: false, overlap: true, pinWeight: true,
  });
  const best = (await largestFeasible(request, fixed(true))) ?? (await largestFeasible(request, fixed(false)));
  return best ? { name: "deepspeed-zero", description, plan: best } : { name: "deepspeed-zero", description, reason: "no batch fits with the KV cache on the GPU and the weights on the host or disk" };
}

export async function flexgenBaseline(request: BaseRequest): Promise<Baseline> {
  const description = "the policy FlexGen's own search and cost model pick";
  const chosen = await plan({ ...request, costModel: "flexgen" });
  if (!chosen.predicted.feasible) return { name: "flexgen", description, reason: `FlexGen's search finds no feasible policy: ${chosen.predicted.infeasibleReasons.join("; ")}` };
  const p = chosen.policy;
  const scored = await plan({
    ...request, costModel: "spillway",
    fixed: { gbs: p.gpuBatchSize, nb: p.numGpuBatches, percent: toFlexgenPercent(p), compressWeight: p.compressWeight, compressCache: p.compressCache, cpuAttention: p.cpuAttention, overlap: p.overlap, pinWeight: p.pinWeight },
  });
  return { name: "flexgen", description, plan: scored };
}

/** Every baseline for a request, in BASELINE_NAMES order. */
export async function baselines(request: BaseRequest): Promise<Baseline[]> {
  return [await deepspeedZeroBaseline(request), await flexgenBaseline(request)];
}
