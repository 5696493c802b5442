/**
 * parsePlan(): the one reader of plan files (simulate, run, report and export all come here). A plan
 * file is checked against the published plan schema (schemas/definitions.ts, the same document as
 * schemas/plan.schema.json), so what is accepted cannot drift from what the schema says, and then
 * against the rules a schema cannot state: the model spec's own consistency, placements that sum to 1,
 * layer groups that cover the model, the expert policy's rules, a workload within the model's positions;
 * ranges (core/physical-bounds.ts) are the schema's. Errors name the file, the field and
 * what was expected.
 */

import { planSchemaDocument } from "../schemas/definitions.js";
import { checkAgainstSchema } from "../schemas/schema-input-error.js";
import { checkPipeline } from "./check-pipeline.js";
import { checkName, fail } from "./fields.js";
import { parseHardwareProfile } from "./hardware-profile.js";
import { checkModelConsistency } from "./model-spec.js";
import { policyWithoutFileOnlyFields } from "./parse-policy.js";
import type { Plan } from "./plan.js";
import { checkPolicyFitsModel, checkPolicyRules } from "./policy-rules.js";
import { readJsonFile } from "./read-json-file.js";

/**
 * Keys the schema lets a plan file carry beyond the Plan type, which a Plan does not keep: the
 * baselines `plan --compare --out` adds, and an expert policy's expectedHitRate (older plan files).
 */
function withoutFileOnlyFields(file: Record<string, unknown>): Plan {
  const entries = Object.entries(file).filter(([key]) => key !== "baselines");
  const copy = (key: string, value: unknown) =>
    key === "policy" ? policyWithoutFileOnlyFields(value as Record<string, unknown>) : structuredClone(value);
  return Object.fromEntries(entries.map(([key, value]) => [key, copy(key, value)])) as unknown as Plan;
}

/** A plan from parsed JSON; `source` names where it came from (a file path) in errors. */
export function parsePlan(data: unknown, source: string): Plan {
  checkAgainstSchema(data, planSchemaDocument(), source);
  const plan = withoutFileOnlyFields(data as Record<string, unknown>);
  for (const key of ["model", "hardware"] as const) checkName(plan[key], { source, path: "" }, key);
  if (plan.hardwareProfile) parseHardwareProfile(plan.hardwareProfile, source, "hardwareProfile");
  checkModelConsistency(plan.modelSpec, { source, path: "modelSpec" });
  checkPolicyRules(plan.policy, { source, path: "policy" });
  checkPolicyFitsModel(plan.modelSpec, plan.policy, source);
  checkPlanFitsModel(plan, source);
  checkPipeline(plan, source);
  return plan;
}

/**
 * What ties a plan's workload and policy to its model beyond the policy rules: the prompt and the
 * generated tokens fit the model's positions, an expert policy has experts to cache and layers to
 * prefetch across.
 */
function checkPlanFitsModel(plan: Plan, source: string): void {
  const model = plan.modelSpec;
  const { promptLen, genLen } = plan.workload;
  if (promptLen + genLen > model.maxPositions)
    fail(
      { source, path: "modelSpec" },
      "maxPositions",
      `the workload's prompt ${promptLen} + generated ${genLen} tokens exceed ${model.name}'s ${model.maxPositions} positions`,
    );
  const experts = plan.policy.experts;
  if (experts && !model.moe)
    fail(
      { source, path: "policy" },
      "experts",
      `${model.name} is dense (modelSpec has no moe): an expert policy needs routed experts`,
    );
  if (experts && experts.prefetchLayers > model.numLayers)
    fail(
      { source, path: "policy.experts" },
      "prefetchLayers",
      `expected at most ${model.numLayers} (the model's layers), got ${experts.prefetchLayers}`,
    );
}

/** Reads and parses a plan file ("-": standard input). */
export function readPlanFile(path: string): Plan {
  return parsePlan(readJsonFile(path), path === "-" ? "<stdin>" : path);
}
