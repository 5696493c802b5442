/**
 * `simulateMoe()`: replays a Mixture-of-Experts plan's expert caches and prefetchers on a routing trace
 * (the given one, or the model's synthetic trace with one request per sequence of the batch), and
 * compares the replay with the cost model's expectation for the same routing statistics and with the
 * plan's own prediction when it has one.
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import type { Plan } from "../core/plan.js";
import { routingProfileFromTrace } from "../planner/moe/profile-from-trace.js";
import type { RoutingTrace } from "../routing/routing-trace.js";
import { synthRouting } from "../routing/synth-routing.js";
import { decodeRouting } from "./decode-routing.js";
import { type MoeReplayResult, replayMoePlan } from "./moe-replay.js";
import { plannedFigures } from "./simulate.js";

export interface MoeSimulationResult extends MoeReplayResult {
  readonly schedule: "moe-replay";
  /** The plan's own prediction. */
  readonly plannedByPlan?: { readonly throughputTokensPerSecond: number; readonly expectedHitRate?: number };
}

export function simulateMoe(
  plan: Plan,
  profile: HardwareProfile,
  routing?: { trace: RoutingTrace; source: string },
): MoeSimulationResult {
  const model = plan.modelSpec;
  const batch = plan.policy.gpuBatchSize * plan.policy.numGpuBatches;
  const given = routing ?? {
    trace: synthRouting({ model, tokens: Math.max(64, plan.workload.genLen), requests: Math.max(1, batch), seed: 0 }),
    source: `the synthetic routing trace of ${model.name} (seed 0, ${Math.max(1, batch)} request${batch > 1 ? "s" : ""})`,
  };
  const replayed = replayMoePlan(
    model,
    profile,
    plan.workload,
    plan.policy,
    decodeRouting(given.trace),
    given.source,
    routingProfileFromTrace(given.trace, given.source),
  );
  const planned = plannedFigures(plan.predicted);
  const planHitRate = planned.experts?.expectedHitRate;
  return {
    schedule: "moe-replay",
    ...replayed,
    plannedByPlan: {
      throughputTokensPerSecond: planned.throughputTokensPerSecond,
      ...(planHitRate !== undefined ? { expectedHitRate: planHitRate } : {}),
    },
  };
}
