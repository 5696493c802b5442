/**
 * The expert policies the MoE runtime executes today, in one place: experts' home copies in host memory
 * (every bit width of EXPERT_BITS runs: quantized-weights.ts). `spillway run`/`compare` and runMoe refuse the rest with
 * this reason before any work.
 */
import type { ExpertPolicy } from "../../core/expert-policy.js";

/** Why the runtime cannot run `policy` yet (the policy field named), or undefined when it can. */
export function unrunnableExpertPolicy(policy: ExpertPolicy): string | undefined {
  if (policy.offloadTier !== "cpu")
    return `experts' home copies are kept in host memory by the runtime; policy.experts.offloadTier "${policy.offloadTier}" is not supported yet`;
  return undefined;
}
