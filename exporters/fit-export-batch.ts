/**
 * An export's batch fitted to the target engine's memory. Accelerate and DeepSpeed ZeRO-Inference keep every
 * sequence's KV cache on the GPU and run a block as one batch, and FlexGen allocates its GPU batches by its own
 * placement rule, so a block Spillway sized by its own allocation can overflow them. `fitExportBatch` finds, by
 * the target engine's model on the hardware given, the largest batch whose memory fits (Accelerate, DeepSpeed:
 * sequences in one batch, up to the plan's block; FlexGen: its --gpu-batch-size, up to the plan's, the number of
 * GPU batches kept), and the plan at that batch, which the export then writes and predicts.
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import { lastTrue } from "../core/last-true.js";
import type { Plan } from "../core/plan.js";
import type { Policy } from "../core/policy.js";
import type { EngineName } from "../engines/engine-names.js";
import { EngineUnsupportedError } from "../engines/engine-unsupported-error.js";
import { predictPlanOnEngine } from "../engines/plan-for-engine.js";
import { blockSize } from "./export-source.js";

/** How each engine's export holds a block: one batch of all its sequences, or FlexGen's GPU batches. */
const BATCHING: Readonly<Partial<Record<EngineName, "one batch" | "gpu batches">>> = {
  accelerate: "one batch",
  deepspeed: "one batch",
  flexgen: "gpu batches",
};

export interface FittedBatch {
  /** The plan with its policy at the fitted batch. */
  readonly plan: Plan;
  /** What the export says about it (the plan's batch, why it does not fit, what the settings run instead). */
  readonly warning: string;
}

/**
 * The plan at the largest batch `engine` fits on `hardware` (its settings as `enginePolicyOf` says the export
 * writes them), when the plan's own does not; undefined when it fits,
 * when not even one sequence does, for pipelines, for engines without a batch rule here, and where the engine
 * cannot run the model.
 */
export function fitExportBatch(
  plan: Plan,
  engine: EngineName,
  hardware: HardwareProfile,
  enginePolicyOf: (plan: Plan) => Policy = (p) => p.policy,
): FittedBatch | undefined {
  const batching = BATCHING[engine];
  if (plan.pipeline || !batching) return undefined;
  const { gpuBatchSize, numGpuBatches } = plan.policy;
  const atBatch = (n: number): Plan => ({
    ...plan,
    policy: { ...plan.policy, gpuBatchSize: n, numGpuBatches: batching === "one batch" ? 1 : numGpuBatches },
  });
  const predict = (p: Plan) => predictPlanOnEngine({ ...p, policy: enginePolicyOf(p) }, engine, hardware);
  const fits = (n: number) => predict(atBatch(n)).feasible;
  try {
    const asked = predict(plan);
    if (asked.feasible || !fits(1)) return undefined;
    const low = lastTrue(1, batching === "one batch" ? blockSize(plan.policy) : gpuBatchSize, fits);
    const why = asked.infeasibleReasons.join("; ");
    const warning =
      batching === "one batch"
        ? `the plan's block of ${blockSize(plan.policy)} sequences does not fit ${engine}'s memory on ${hardware.name} (${why}; it keeps every sequence's KV cache on the GPU): at most ${low} fit by its engine model, so these settings run batches of ${low}`
        : `the plan's GPU batch of ${gpuBatchSize} sequences (x ${numGpuBatches}) does not fit ${engine}'s memory on ${hardware.name} as its own placement rule realizes the policy (${why}): at most ${low} per GPU batch fit by its engine model, so these settings run --gpu-batch-size ${low}`;
    return { plan: atBatch(low), warning };
  } catch (error) {
    if (error instanceof EngineUnsupportedError) return undefined;
    throw error;
  }
}
