/**
 * `spillway report` charts a plan, traces and a comparison together only when they come from the same
 * plan (model, workload, policy: core/plan-identity.ts). A trace written before traces recorded their
 * plan cannot be checked and is taken as it is.
 */
import { InputError } from "../core/input-error.js";
import { identityDifference, type PlanIdentity, planIdentity } from "../core/plan-identity.js";
import type { ReportInput } from "./read-report-input.js";

function identityOf(input: ReportInput): Partial<PlanIdentity> | undefined {
  if (input.kind === "plan") return planIdentity(input.plan.model, input.plan.workload, input.plan.policy);
  if (input.kind === "trace") return input.trace.plan;
  // A sweep is of many plans: it is charted beside any plan.
  if (input.kind === "sweep") return undefined;
  const c = input.comparison;
  const { promptLen: _p, genLen: _g, ...rest } = planIdentity(c.model, { promptLen: 1, genLen: 1 }, c.policy);
  return c.workload ? { ...rest, promptLen: c.workload.promptLen, genLen: c.workload.genLen } : rest;
}

/** Throws an InputError naming the first input made from another plan than the first that says its plan. */
export function checkReportInputsMatch(inputs: readonly ReportInput[]): void {
  let reference: { path: string; identity: Partial<PlanIdentity> } | undefined;
  for (const input of inputs) {
    const identity = identityOf(input);
    if (!identity) continue;
    if (!reference) {
      reference = { path: input.path, identity };
      continue;
    }
    const difference = identityDifference(reference.identity, identity);
    if (difference)
      throw new InputError(
        input.path,
        undefined,
        `made from another plan than ${reference.path} (${difference}); give the files of one plan per report`,
      );
  }
}
