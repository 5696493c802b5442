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
import type { OnProgress } from "../core/progress.js";
import type { Workload } from "../core/workload.js";
import type { RoutingProfile } from "../planner/moe/routing-profile.js";
import { flexgenArgs } from "../planner/plan.js";
import { replayEngine } from "../simulator/replay-engine.js";
import type { EngineKnobs, EnginePrediction, PlanEnginePrediction } from "./engine-model.js";
import type { EngineName } from "./engine-names.js";
import { type EngineSearchResult, searchOnEngine } from "./engine-search.js";
import {
  BATCH_SIZES,
  engineSearchDimensions,
  engineStarts,
  expressiblePolicy,
  type FixedEngineSettings,
} from "./engine-search-space.js";
import { EngineUnsupportedError } from "./engine-unsupported-error.js";
import { engineModel } from "./engines.js";
import { ggufQuantisation } from "./llama-cpp/gguf-file-types.js";

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

/**
 * A plan's policy on `engine`: with the plan's own engine settings when it was made for that engine; on
 * llama.cpp, a plan made for another engine runs the GGUF type its precision stands for (a 4-bit plan a
 * Q4_K_M file, as `spillway export --to llama.cpp` writes it, not llama.cpp's 16-bit default) and, for an
 * MoE plan, the -ngl and --n-cpu-moe its llama.cpp advice names.
 */
export function predictPlanOnEngine(
  plan: Pick<Plan, "modelSpec" | "workload" | "policy" | "engine" | "engineKnobs" | "llamaCpp">,
  engine: EngineName,
  hardware: HardwareProfile,
): EnginePrediction {
  const knobs = engine === (plan.engine ?? "spillway") ? plan.engineKnobs : foreignPlanKnobs(plan, engine);
  return predictOnEngine({
    engine,
    model: plan.modelSpec,
    hardware,
    workload: plan.workload,
    policy: plan.policy,
    ...(knobs ? { knobs } : {}),
  });
}

function foreignPlanKnobs(plan: Pick<Plan, "policy" | "llamaCpp">, engine: EngineName): EngineKnobs | undefined {
  return engine === "llama.cpp" ? llamaCppKnobsOfPlan(plan) : undefined;
}

/** The llama.cpp settings a plan stands for: its precision's GGUF type and, for an MoE plan, its advice's -ngl and --n-cpu-moe. */
function llamaCppKnobsOfPlan(plan: Pick<Plan, "policy" | "llamaCpp">): EngineKnobs {
  const advice = plan.llamaCpp;
  return {
    ggufType: advice?.ggufType ?? ggufQuantisation(plan),
    ...(advice?.nCpuMoe !== undefined ? { nGpuLayers: advice.nGpuLayers, nCpuMoe: advice.nCpuMoe } : {}),
  };
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

/**
 * On llama.cpp, an MoE plan's own advice (`-ngl`, `--n-cpu-moe`, the GGUF type it was costed for) as a
 * starting point of the search, for the knobs the user left free: the search's local moves from Spillway's
 * placement alone can end below it (mixtral-8x7b on the RTX 4090 at batch 1: -ngl 27 --n-cpu-moe 0 at 28.03
 * token/s against the advice's 29.57).
 */
function adviceSeeds(engine: EngineName, base: Plan, knobs: EngineKnobs): EngineKnobs[] {
  if (engine !== "llama.cpp" || base.llamaCpp?.nCpuMoe === undefined) return [];
  return [{ ...llamaCppKnobsOfPlan(base), ...knobs }];
}

/** Today's batch candidates for Spillway's placement: every power-of-two GPU batch and Spillway's, at its nb and at 1. */
function batchCandidates(policy: Policy, fixed: { readonly gbs?: number; readonly nb?: number }): Policy[] {
  const gbsList = fixed.gbs !== undefined ? [fixed.gbs] : [...new Set([policy.gpuBatchSize, ...BATCH_SIZES])];
  const nbList = fixed.nb !== undefined ? [fixed.nb] : [...new Set([policy.numGpuBatches, 1])];
  return nbList.flatMap((nb) => gbsList.map((gbs) => ({ ...policy, gpuBatchSize: gbs, numGpuBatches: nb })));
}

/**
 * `base` (a plan made by Spillway's planner for the same request) on `engine`. `requested` is the policy
 * as the user fixed it, before Spillway realized it at its runtime's granularity: it is scored as
 * given. Without it, the policy is searched on the engine's model (engines/engine-search.ts): Spillway's
 * placement at every batch `fixedBatch` leaves free is scored first, then the engine's own knobs that
 * `fixed` and `knobs` leave free; the fastest that fits the engine's memory rule is kept, so the plan is
 * never slower on the engine's model than Spillway's placement at its best batch.
 */
export function planForEngine(
  base: Plan,
  engine: EngineName,
  hardware: HardwareProfile,
  options: {
    readonly requested?: Policy;
    readonly fixedBatch?: { readonly gbs?: number; readonly nb?: number };
    /** What the user fixed beyond the batch (policy flags, MoE flags): those knobs are not searched. */
    readonly fixed?: Omit<FixedEngineSettings, "gbs" | "nb">;
    readonly knobs?: EngineKnobs;
    readonly routing?: RoutingProfile;
    /** The search's progress (none when `requested` is scored). */
    readonly onProgress?: OnProgress;
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
  let knobs = options.knobs ?? {};
  const notes: string[] = [];
  let searched: EngineSearchResult | undefined;
  let prediction: EnginePrediction;
  if (options.requested) prediction = score(policy);
  else {
    const fixedBatch = options.fixedBatch ?? {};
    const fixed = { ...options.fixed, ...fixedBatch };
    searched = searchOnEngine({
      engine,
      model: base.modelSpec,
      hardware,
      workload: base.workload,
      ...(options.routing ? { routing: options.routing } : {}),
      // Spillway's placement at today's batches, predicted in full (the result is never slower than their best).
      seeds: [
        ...batchCandidates(base.policy, fixedBatch).map((p) => ({ policy: p, knobs, full: true })),
        ...adviceSeeds(engine, base, knobs).flatMap((k) =>
          batchCandidates(base.policy, fixedBatch).map((p) => ({ policy: p, knobs: k, full: true })),
        ),
        ...[expressiblePolicy(engine, base.policy, fixed)].flatMap((p) =>
          p ? batchCandidates(p, fixedBatch).map((q) => ({ policy: q, knobs })) : [],
        ),
      ],
      dimensions: engineSearchDimensions(engine, base.modelSpec, fixed, knobs),
      starts: engineStarts(engine, base.policy, fixed, knobs),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    if (searched.best) {
      policy = searched.best.candidate.policy;
      knobs = searched.best.candidate.knobs;
      prediction = searched.best.prediction;
    } else prediction = score(policy);
    notes.push(
      `the policy was searched on ${engine}'s model: ${searched.candidates} candidates of its own settings from Spillway's choice (${searched.feasible} feasible, ${searched.evaluations} scored${searched.evaluationLimitReached ? ", stopped at the evaluation budget" : ""}${searched.best ? "" : "; none fits"}); fix --gbs, --nb and --percent to score another policy`,
    );
  }
  return {
    ...base,
    engine,
    ...(Object.keys(knobs).length ? { engineKnobs: knobs } : {}),
    policy,
    ...(searched
      ? {
          search: {
            ...base.search,
            engineCandidates: searched.candidates,
            engineCandidatesFeasible: searched.feasible,
            engineEvaluations: searched.evaluations,
            engineEvaluationLimitReached: searched.evaluationLimitReached,
          },
        }
      : {}),
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
