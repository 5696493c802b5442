/**
 * A plan for another engine (`spillway plan --engine E`): the policy as Spillway's search picks it (or as
 * the flags fix it), scored by engine E's model, which realizes it by E's own rule. The plan's
 * `predicted` is then E's prediction, its `policy` the policy as asked for (so that the exported
 * settings, e.g. FlexGen's `--percent`, are the ones the user gave), and `enginePrediction` carries the
 * engine's realized placement, terms and the rates it used.
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import { LINKS, type Link } from "../core/links.js";
import type { Plan, PlanPrediction } from "../core/plan.js";
import type { Policy } from "../core/policy.js";
import type { Workload } from "../core/workload.js";
import type { RoutingProfile } from "../planner/moe/routing-profile.js";
import { flexgenArgs } from "../planner/plan.js";
import { replayEngine } from "../simulator/replay-engine.js";
import type { EngineKnobs, EnginePrediction, PlanEnginePrediction } from "./engine-model.js";
import type { EngineName } from "./engine-names.js";
import { EngineUnsupportedError } from "./engine-unsupported-error.js";
import { engineModel } from "./engines.js";

export { EngineUnsupportedError };

export interface EngineScoreRequest {
  readonly engine: EngineName;
  readonly model: Plan["modelSpec"];
  readonly hardware: HardwareProfile;
  readonly workload: Workload;
  readonly policy: Policy;
  readonly knobs?: EngineKnobs;
  readonly routing?: RoutingProfile;
}

/** Engine E's prediction for a policy, or EngineUnsupportedError naming why E cannot run it. */
export function predictOnEngine(request: EngineScoreRequest): EnginePrediction {
  const engine = engineModel(request.engine);
  const why = engine.unsupported(request.model, request.policy);
  if (why) throw new EngineUnsupportedError(request.engine, request.model.name, why);
  return engine.predict({
    model: request.model,
    hardware: request.hardware,
    workload: request.workload,
    policy: request.policy,
    ...(request.knobs ? { knobs: request.knobs } : {}),
    ...(request.routing ? { routing: request.routing } : {}),
  });
}

/** A plan's policy on `engine`, with the plan's own engine settings when the plan was made for that engine. */
export function predictPlanOnEngine(
  plan: Pick<Plan, "modelSpec" | "workload" | "policy" | "engine" | "engineKnobs">,
  engine: EngineName,
  hardware: HardwareProfile,
): EnginePrediction {
  const knobs = engine === (plan.engine ?? "spillway") ? plan.engineKnobs : undefined;
  return predictOnEngine({
    engine,
    model: plan.modelSpec,
    hardware,
    workload: plan.workload,
    policy: plan.policy,
    ...(knobs ? { knobs } : {}),
  });
}

/** The prediction as a plan file carries it (the steps are rebuilt by whoever replays them). */
export function planEnginePrediction(prediction: EnginePrediction): PlanEnginePrediction {
  const { steps: _steps, ...rest } = prediction;
  return rest;
}

/** Bytes per link over the run, as the engine's steps move them. */
export function engineLinkBytes(prediction: EnginePrediction): Record<Link, number> {
  if (prediction.steps.length > 0) return { ...replayEngine(prediction.steps).bytes };
  return Object.fromEntries(LINKS.map((l) => [l, 0])) as Record<Link, number>;
}

/** An engine prediction in the shape every plan reader knows (`predicted`): busy seconds are per lane. */
export function asPlanPrediction(prediction: EnginePrediction, bytes: Readonly<Record<Link, number>>): PlanPrediction {
  return {
    throughputTokensPerSecond: prediction.throughputTokensPerSecond,
    prefillSeconds: prediction.prefillSeconds,
    decodeSeconds: prediction.decodeSeconds,
    feasible: prediction.feasible,
    infeasibleReasons: prediction.infeasibleReasons,
    peakBytes: prediction.peakBytes,
    capacityBytes: prediction.capacityBytes,
    bytes,
    busySeconds: prediction.laneSeconds,
    bottleneck: prediction.bottleneck,
  };
}

/** Block sizes tried for an engine when the user fixed no batch: powers of two and Spillway's choice. */
const MAX_CANDIDATE_BATCH = 4096;

function batchCandidates(policy: Policy, fixed: { readonly gbs?: number; readonly nb?: number }): Policy[] {
  const powers: number[] = [];
  for (let b = 1; b <= MAX_CANDIDATE_BATCH; b *= 2) powers.push(b);
  const gbsList = fixed.gbs !== undefined ? [fixed.gbs] : [...new Set([policy.gpuBatchSize, ...powers])];
  const nbList = fixed.nb !== undefined ? [fixed.nb] : [...new Set([policy.numGpuBatches, 1])];
  return nbList.flatMap((nb) => gbsList.map((gbs) => ({ ...policy, gpuBatchSize: gbs, numGpuBatches: nb })));
}

/**
 * `base` (a plan made by Spillway's planner for the same request) re-scored on `engine`. `requested` is
 * the policy as the user fixed it, before Spillway realized it at its runtime's granularity: it is
 * scored as given. Without it, the placement Spillway's search chose is kept and the batch (whatever
 * of gbs and nb `fixedBatch` leaves free) is chosen for the engine: the fastest that fits the engine's
 * own memory rule, since an engine that keeps its KV cache on the GPU cannot hold Spillway's batch.
 */
export function planForEngine(
  base: Plan,
  engine: EngineName,
  hardware: HardwareProfile,
  options: {
    readonly requested?: Policy;
    readonly fixedBatch?: { readonly gbs?: number; readonly nb?: number };
    readonly knobs?: EngineKnobs;
    readonly routing?: RoutingProfile;
  } = {},
): Plan {
  if (engine === "spillway") return base;
  const score = (policy: Policy) =>
    predictOnEngine({
      engine,
      model: base.modelSpec,
      hardware,
      workload: base.workload,
      policy,
      ...(options.knobs ? { knobs: options.knobs } : {}),
      ...(options.routing ? { routing: options.routing } : {}),
    });
  let policy = options.requested ?? base.policy;
  let prediction = score(policy);
  const notes: string[] = [];
  if (!options.requested) {
    const candidates = batchCandidates(base.policy, options.fixedBatch ?? {});
    let best: { policy: Policy; prediction: EnginePrediction } | undefined;
    for (const candidate of candidates) {
      const p = candidate === candidates[0] ? prediction : score(candidate);
      if (p.feasible && (!best || p.throughputTokensPerSecond > best.prediction.throughputTokensPerSecond))
        best = { policy: candidate, prediction: p };
    }
    if (best) {
      policy = best.policy;
      prediction = best.prediction;
    }
    notes.push(
      `the placement was chosen by Spillway's search (Spillway's cost model) and the batch for ${engine} (${candidates.length} batch sizes scored on its model${best ? "" : "; none fits"}); fix --gbs, --nb and --percent to score another policy`,
    );
  }
  return {
    ...base,
    engine,
    ...(options.knobs && Object.keys(options.knobs).length ? { engineKnobs: options.knobs } : {}),
    policy,
    predicted: asPlanPrediction(prediction, engineLinkBytes(prediction)),
    flexgenArgs: flexgenArgs(base.modelSpec, policy),
    enginePrediction: planEnginePrediction(prediction),
    notes: [
      `predicted by the ${engine} engine model (docs/engines/${engine}.md): the policy as ${engine} realizes it, its operations and its schedule`,
      ...notes,
      ...prediction.notes,
    ],
  };
}
