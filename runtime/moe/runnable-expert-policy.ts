/**
 * The expert policies the MoE runtime executes today, in one place: experts and everything else stored
 * fp16, experts' home copies in host memory. `spillway run`/`compare` and runMoe refuse the rest with
 * this reason before any work.
 */
import type { ExpertPolicy } from "../../core/expert-policy.js";

/** Why the runtime cannot run `policy` yet (the policy field named), or undefined when it can. */
export function unrunnableExpertPolicy(policy: ExpertPolicy): string | undefined {
  if (policy.bits !== 16)
    return `experts are stored fp16 by the runtime; policy.experts.bits ${policy.bits} is not supported yet`;
  if (policy.attentionBits !== 16)
    return `attention, routers and shared experts are stored fp16 by the runtime; policy.experts.attentionBits ${policy.attentionBits} is not supported yet`;
  if (policy.offloadTier !== "cpu")
    return `experts' home copies are kept in host memory by the runtime; policy.experts.offloadTier "${policy.offloadTier}" is not supported yet`;
  return undefined;
}
