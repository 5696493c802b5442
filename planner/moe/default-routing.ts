/**
 * The routing profile a plan uses when the user gives no trace: the statistics of the model's
 * synthetic routing trace (routing/synth-routing.ts, calibrated to the published Mixtral LRU hit
 * rates, popularity and repetition), seed 0, 8 requests x 500 decode tokens. Deterministic, and
 * measured once per model shape.
 */
import type { ModelSpec } from "../../core/model-spec.js";
import { synthRouting } from "../../routing/synth-routing.js";
import { routingProfileFromTrace } from "./profile-from-trace.js";
import type { RoutingProfile } from "./routing-profile.js";

const profiles = new Map<string, RoutingProfile>();

export function defaultRoutingProfile(model: ModelSpec): RoutingProfile {
  const moe = model.moe!;
  const key = `${model.numLayers}/${moe.numExperts}/${moe.expertsPerToken}`;
  let profile = profiles.get(key);
  if (!profile) {
    const trace = synthRouting({ model, tokens: 500, requests: 8, seed: 0 });
    profile = routingProfileFromTrace(
      trace,
      `the synthetic routing trace of ${model.name} (spillway trace synth --seed 0; calibrated to published Mixtral statistics)`,
    );
    profiles.set(key, profile);
  }
  return profile;
}
