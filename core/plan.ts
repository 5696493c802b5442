/**
 * A plan: the document `spillway plan --json` prints and `--out` writes, what plan() returns, and what
 * simulate(), run(), the reports and the exporters take. A plan file is this type as JSON
 * (schemas/plan.schema.json, checked against it at compile time); parsePlan() reads one back.
 */

import type { EngineKnobs, PlanEnginePrediction } from "../engines/engine-model.js";
import type { EngineName } from "../engines/engine-names.js";
import type { ExpertFigures } from "../planner/moe/evaluate-moe-policy.js";
import type { LlamaCppMoeAdvice } from "../planner/moe/llama-cpp-moe.js";
import type { HardwareProfile } from "./hardware-profile.js";
import type { Link } from "./links.js";
import type { ModelSpec } from "./model-spec.js";
import type { PipelinePlan } from "./pipeline-plan.js";
import type { Policy } from "./policy.js";
import type { ScheduleName } from "./schedule-name.js";
import type { Tier } from "./tiers.js";
import type { Workload } from "./workload.js";

/** The cost models a plan can be made with. */
export const COST_MODEL_NAMES = ["spillway", "flexgen"] as const;
export type CostModelName = (typeof COST_MODEL_NAMES)[number];

/** What the cost model predicts for the plan's policy. */
export interface PlanPrediction {
  readonly throughputTokensPerSecond: number;
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly feasible: boolean;
  readonly infeasibleReasons: readonly string[];
  readonly peakBytes: Readonly<Record<Tier, number>>;
  readonly capacityBytes: Readonly<Record<Tier, number>>;
  readonly bytes: Readonly<Record<Link, number>>;
  /** Busy seconds per resource over the run (Spillway model), or per-layer term seconds (FlexGen model). */
  readonly busySeconds: Readonly<Record<string, number>>;
  /** The bounding resource in words (core/resources.ts RESOURCE_NAMES), or FlexGen's bounding term. */
  readonly bottleneck: string;
  /** MoE plans: expected expert-cache behaviour per layer and decode step. */
  readonly experts?: ExpertFigures;
  /** MoE plans: seconds per decode step (one token for each sequence of the batch). */
  readonly decodeSecondsPerToken?: number;
}

/** How the policy was found: LP solves, exact evaluations, time taken, and whether it was only scored. */
export interface PlanSearch {
  readonly lpSolves: number;
  readonly elapsedMs: number;
  readonly exactEvaluations?: number;
  readonly lpFallbacks: number;
  readonly scored: boolean;
  /**
   * LPs the search left unsolved because the solver reached its wall-clock safety net (tens of seconds
   * per LP; normal planning never does): 0 means the plan depends on its inputs alone. Always written
   * by plan(); absent from plan files written before it existed.
   */
  readonly wallClockLimitHits?: number;
  /**
   * The search's budget (planner/search-budget.ts): the most LPs it may solve, whether it stopped
   * there, and the most GPU batches per block it considered (bounded so that the plan can be
   * simulated). Written by plan() for searched plans; absent from older plan files.
   */
  readonly maxLpSolves?: number;
  readonly lpLimitReached?: boolean;
  readonly maxGpuBatches?: number;
  /** Spillway's search: the most exact evaluations it could make (fewer for long generations), and whether it stopped there. */
  readonly maxExactEvaluations?: number;
  readonly evaluationLimitReached?: boolean;
  /**
   * How the search's LPs were answered (planner/lp/screened-lp.ts): by Spillway's dense simplex alone,
   * and by the existing solvers (javascript-lp-solver, HiGHS) where the exact figures were needed or
   * the dense simplex left the LP to them. Written by plan() for searched plans; absent from older plan files.
   */
  readonly screenedLpSolves?: number;
  readonly referenceLpSolves?: number;
  /**
   * `plan --engine E` without a fixed policy (engines/engine-search.ts): the distinct configurations of
   * E's own settings considered, those E can run within its memory rule, the E-model predictions made,
   * and whether the search stopped at its evaluation budget. Absent for Spillway's runtime and scored policies.
   */
  readonly engineCandidates?: number;
  readonly engineCandidatesFeasible?: number;
  readonly engineEvaluations?: number;
  readonly engineEvaluationLimitReached?: boolean;
}

export interface Plan {
  readonly model: string;
  readonly hardware: string;
  /** How --hardware named the profile (a shipped name or a file path); informative only: no command opens it. */
  readonly hardwareSource?: string;
  /**
   * The hardware profile the plan was made for (with the capacities it was planned against), so that a
   * plan file stands alone. Always written by plan(); absent from plan files written before it existed.
   */
  readonly hardwareProfile?: HardwareProfile;
  readonly costModel: CostModelName;
  readonly schedule: ScheduleName;
  readonly workload: Workload;
  readonly policy: Policy;
  readonly predicted: PlanPrediction;
  readonly search: PlanSearch;
  /** The equivalent `python -m flexgen.flex_opt` flags. */
  readonly flexgenArgs: string;
  /** MoE plans: the `-ngl` and `--n-cpu-moe` that fit llama.cpp on this GPU, and its predicted decode speed. */
  readonly llamaCpp?: LlamaCppMoeAdvice;
  /** The model spec the plan was made for, so a plan file is self-contained. */
  readonly modelSpec: ModelSpec;
  readonly notes: readonly string[];
  /**
   * The engine the plan's prediction is for (`--engine`); absent means `spillway`, Spillway's own
   * runtime. For another engine `predicted` is that engine's model's prediction and `policy` the
   * policy as asked for (the engine realizes it by its own rule: see enginePrediction.realizedPolicy).
   */
  readonly engine?: EngineName;
  /** The engine's own settings fixed for the prediction (`--ngl`, `--n-cpu-moe`, `--gguf-type`, `--fewer-batch`). */
  readonly engineKnobs?: EngineKnobs;
  /** The engine model's whole prediction: realized placement, terms, lanes, the rates it used and their provenance. */
  readonly enginePrediction?: PlanEnginePrediction;
  /**
   * Pipeline-parallel plans for a cluster (`--hardware` a cluster of more than one GPU): the stage
   * layout. `policy` is then the first stage's policy over the whole in-flight block (numGpuBatches =
   * microBatches x each micro-batch's GPU batches), `predicted` the pipeline's, with peakBytes the
   * largest of any one GPU and bytes summed over the GPUs; `hardwareProfile` is one GPU of the cluster.
   */
  readonly pipeline?: PipelinePlan;
}
