/**
 * One entry point for an exact prediction of any policy under Spillway's cost model: dense and
 * per-layer policies by the step model, Mixture-of-Experts policies (policy.experts) by the expert-cache
 * model, which needs the routing statistics the caller has (a trace's, or the model's default
 * synthetic one: `defaultRoutingProfile(model)`); nothing is assumed for the caller.
 */
import type { ModelSpec } from "../core/model-spec.js";
import type { Policy } from "../core/policy.js";
import type { ScheduleName } from "../core/schedule-name.js";
import type { Workload } from "../core/workload.js";
import { evaluateMoePolicy } from "./moe/evaluate-moe-policy.js";
import type { RoutingProfile } from "./moe/routing-profile.js";
import type { Prediction } from "./prediction.js";
import { evaluatePolicy } from "./spillway/evaluate-policy.js";
import type { HardwareRates } from "./spillway/hardware-rates.js";

export interface EvaluationRequest {
  readonly model: ModelSpec;
  readonly rates: HardwareRates;
  readonly workload: Workload;
  readonly policy: Policy;
  /** Schedule semantics costed for dense policies (default "spillway"). */
  readonly schedule?: ScheduleName;
  /** Routing statistics for expert-cache hit rates: required for policies with `experts`. */
  readonly routing?: RoutingProfile;
}

export function evaluate(request: EvaluationRequest): Prediction {
  const { model, rates, workload, policy } = request;
  if (policy.experts) {
    if (!request.routing)
      throw new Error(
        "evaluate(): an expert policy's prediction depends on routing; pass `routing` (e.g. defaultRoutingProfile(model))",
      );
    return evaluateMoePolicy(model, rates, workload, policy, request.routing);
  }
  return evaluatePolicy(model, rates, workload, policy, request.schedule ?? "spillway");
}
