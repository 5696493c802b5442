/**
 * parsePolicy(): a policy on its own (as `spillway compare --json` writes it), checked against the
 * plan schema's Policy definition and the policy rules, as parsePlan() checks a plan's.
 */

import { planSchemaDocument } from "../schemas/definitions.js";
import { checkAgainstSchema } from "../schemas/schema-input-error.js";
import type { FieldContext } from "./fields.js";
import type { Policy } from "./policy.js";
import { checkPolicyRules } from "./policy-rules.js";

/**
 * A copy of a schema-checked policy without what the schema lets a file carry beyond the Policy type
 * (an expert policy's expectedHitRate, which older plan files have).
 */
export function policyWithoutFileOnlyFields(file: Record<string, unknown>): Policy {
  const policy = structuredClone(file);
  if (policy.experts) {
    const { expectedHitRate: _hitRate, ...experts } = policy.experts as Record<string, unknown>;
    policy.experts = experts;
  }
  return policy as unknown as Policy;
}

export function parsePolicy(data: unknown, ctx: FieldContext): Policy {
  checkAgainstSchema(data, { $ref: "#/$defs/Policy" }, ctx.source, { root: planSchemaDocument(), at: ctx.path });
  const policy = policyWithoutFileOnlyFields(data as Record<string, unknown>);
  checkPolicyRules(policy, ctx);
  return policy;
}
