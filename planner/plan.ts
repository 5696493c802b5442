/**
 * `plan()`: the planner's library entry. Picks (or scores) a policy for a model on a hardware profile
 * with either cost model and returns a Plan, the document `spillway plan --json` prints.
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import { type ModelSpec, totalWeightBytes } from "../core/model-spec.js";
import type { CostModelName, Plan, PlanPrediction } from "../core/plan.js";
import { isUniform, type LayerGroup, type Placement, type Policy, toFlexgenPercent } from "../core/policy.js";
import type { OnProgress } from "../core/progress.js";
import { realizedPolicy } from "../core/realize-placement.js";
import { RESOURCE_NAMES } from "../core/resources.js";
import type { ScheduleName } from "../core/schedule-name.js";
import { TIERS } from "../core/tiers.js";
import { formatBytes } from "../core/units.js";
import type { Workload } from "../core/workload.js";
import { llamaCppEngineMoeAdvice } from "../engines/llama-cpp/moe-advice.js";
import { flexgenConstants } from "./flexgen/flexgen-constants.js";
import {
  type FlexgenLpInput,
  type FlexgenLpOutcome,
  flexgenBytes,
  flexgenCapacities,
  flexgenUnconstrained,
} from "./flexgen/flexgen-lp.js";
import { searchFlexgen } from "./flexgen/flexgen-search.js";
import { type LpSolvers, loadedLpSolvers, type SolveStats, withLpSolvers } from "./lp/solve-linear-program.js";
import { defaultRoutingProfile } from "./moe/default-routing.js";
import { type FixedExperts, searchMoe, smallestMoeGpuBytes } from "./moe/moe-search.js";
import type { RoutingProfile } from "./moe/routing-profile.js";
import { PlanError } from "./plan-error.js";
import { capacityShortfalls, type Prediction } from "./prediction.js";
import { MAX_LP_SOLVES_PER_SEARCH } from "./search-budget.js";
import { evaluatePolicy, policyPeakBytes } from "./spillway/evaluate-policy.js";
import { hardwareRates } from "./spillway/hardware-rates.js";
import { type LpCandidate, searchSpillway } from "./spillway/spillway-search.js";

export type { CostModelName, Plan, PlanPrediction, PlanSearch } from "../core/plan.js";

/** How a plan's note begins when the placement realized differs from the one asked for (`plan` prints it as a warning). */
export const REALIZED_DIFFERS = "the placement realized differs from the one asked for";

/** Parts of the policy the user fixed; the search chooses the rest. */
export interface FixedPolicy {
  readonly gbs?: number;
  readonly nb?: number;
  /** FlexGen's six percents: wg wc cg cc hg hc (disk gets the rest). */
  readonly percent?: readonly [number, number, number, number, number, number];
  readonly compressWeight?: boolean;
  readonly compressCache?: boolean;
  readonly cpuAttention?: boolean;
  readonly overlap?: boolean;
  readonly pinWeight?: boolean;
  /** Per-layer placement (scoring only: with gbs, nb and percent fixed; percent's weight split is then unused). */
  readonly layerGroups?: readonly LayerGroup[];
  /** Where embeddings and LM head live (default: by the weight split). */
  readonly embeddings?: Placement;
}

export interface PlanRequest {
  readonly model: ModelSpec;
  readonly hardware: HardwareProfile;
  readonly workload: Workload;
  readonly costModel?: CostModelName;
  /** Schedule the Spillway model costs (FlexGen's model has its own fixed form). */
  readonly schedule?: ScheduleName;
  /** FlexGen's memory relaxation factor (default 0.8), FlexGen-compatible model only. */
  readonly alpha?: number;
  readonly fixed?: FixedPolicy;
  /** Search only blocks of at most this many sequences (gbs x nb), e.g. the number of prompts at hand. */
  readonly maxBlock?: number;
  /** Observes every LP point the Spillway search solves (for the search-landscape chart); Spillway model, searched policies only. */
  readonly onCandidate?: (c: LpCandidate) => void;
  /** Observes the policy search (phase "search", either cost model); a scored policy or an MoE plan reports nothing. */
  readonly onProgress?: OnProgress;
  /**
   * Mixture-of-Experts models: "experts" (default) plans expert caching, prefetch and CPU experts
   * (policy.experts); "dense" places every expert like any other tensor, FlexGen style. A fixed
   * `percent` implies "dense".
   */
  readonly moe?: "experts" | "dense";
  /** Fixed parts of the MoE policy (batch size, cache slots, bits, prefetch, compute, eviction). */
  readonly experts?: FixedExperts;
  /** Routing statistics for the expert-cache hit rates (default: the model's synthetic trace). */
  readonly routing?: RoutingProfile;
}

export { PlanError };

/**
 * Plans with `solvers` (default: those loadLpSolvers() loads, HiGHS loaded only if an LP needs it:
 * withLpSolvers).
 */
export async function plan(request: PlanRequest, solvers?: LpSolvers): Promise<Plan> {
  if (solvers) return planSync(request, solvers);
  // withLpSolvers plans again from the start once an LP needed HiGHS and it has loaded: the repeated
  // search reports nothing until it passes where the first one got to, so progress never goes back.
  const onProgress = request.onProgress && forwardOnly(request.onProgress);
  return withLpSolvers((lazy) => planSync(onProgress ? { ...request, onProgress } : request, lazy));
}

/** `report`, minus any report behind the furthest one already made in the same phase. */
function forwardOnly(report: OnProgress): OnProgress {
  const furthest = new Map<string, number>();
  return (p) => {
    if (p.done < (furthest.get(p.phase) ?? 0)) return;
    furthest.set(p.phase, p.done);
    report(p);
  };
}

/** As plan(), synchronously: with `solvers`, or once loadLpSolvers() has resolved. */
export function planSync(request: PlanRequest, solvers?: LpSolvers): Plan {
  // Scoring a fixed policy and MoE plans solve no LP, so they need no solvers.
  const lpSolvers = () => solvers ?? loadedLpSolvers();
  const costModel = request.costModel ?? "spillway";
  const made = costModel === "flexgen" ? planFlexgen(request, lpSolvers) : planSpillway(request, lpSolvers);
  return { ...made, hardwareProfile: request.hardware };
}

function fullyFixed(fixed: FixedPolicy | undefined): boolean {
  return fixed?.gbs !== undefined && fixed.nb !== undefined && fixed.percent !== undefined;
}

/** The policy the fixed settings spell out when they fix it whole (gbs, nb and percent), before any realization. */
export function fixedPolicy(fixed: FixedPolicy | undefined): Policy | undefined {
  if (!fixed || !fullyFixed(fixed)) return undefined;
  return {
    gpuBatchSize: fixed.gbs!,
    numGpuBatches: fixed.nb!,
    ...placementsFromPercent(fixed.percent!),
    compressWeight: fixed.compressWeight ?? false,
    compressCache: fixed.compressCache ?? false,
    cpuAttention: fixed.cpuAttention ?? false,
    overlap: fixed.overlap ?? true,
    pinWeight: fixed.pinWeight ?? true,
    ...(fixed.layerGroups ? { layerGroups: fixed.layerGroups } : {}),
    ...(fixed.embeddings ? { embeddings: fixed.embeddings } : {}),
  };
}

function placementsFromPercent(p: readonly number[]): { weights: Placement; cache: Placement; activations: Placement } {
  const tri = (g: number, c: number): Placement => ({
    gpu: g / 100,
    cpu: c / 100,
    disk: Math.max(0, 100 - g - c) / 100,
  });
  return { weights: tri(p[0]!, p[1]!), cache: tri(p[2]!, p[3]!), activations: tri(p[4]!, p[5]!) };
}

export function flexgenArgs(model: ModelSpec, policy: Policy): string {
  const args = [
    `--model facebook/${model.name}`,
    `--gpu-batch-size ${policy.gpuBatchSize}`,
    `--num-gpu-batches ${policy.numGpuBatches}`,
    `--percent ${toFlexgenPercent(policy).join(" ")}`,
  ];
  if (policy.compressWeight) args.push("--compress-weight");
  if (policy.compressCache) args.push("--compress-cache");
  if (policy.cpuAttention) args.push("--cpu-cache-compute");
  if (!policy.pinWeight) args.push("--pin-weight 0");
  if (!policy.overlap) args.push("--overlap False");
  return args.join(" ");
}

/** A Spillway-model prediction as a plan reports it (the bottleneck in words). */
function planPrediction(prediction: Prediction): PlanPrediction {
  return {
    throughputTokensPerSecond: prediction.throughputTokensPerSecond,
    prefillSeconds: prediction.prefillSeconds,
    decodeSeconds: prediction.decodeSeconds,
    feasible: prediction.feasible,
    infeasibleReasons: prediction.infeasibleReasons,
    peakBytes: prediction.peakBytes,
    capacityBytes: prediction.capacityBytes,
    bytes: prediction.bytes,
    busySeconds: prediction.busySeconds,
    bottleneck: RESOURCE_NAMES[prediction.bottleneck],
  };
}

function planMoe(request: PlanRequest): Plan {
  const { model, hardware, workload } = request;
  const rates = hardwareRates(hardware);
  const started = performance.now();
  const routing = request.routing ?? defaultRoutingProfile(model);
  const fixed = request.experts ?? {};
  const result = searchMoe(model, rates, workload, routing, fixed, request.onProgress);
  if (!result.best) {
    const least = smallestMoeGpuBytes(model, workload, fixed);
    throw new PlanError(
      `no MoE policy fits ${model.name} (${formatBytes(totalWeightBytes(model))} of weights) with prompt ${workload.promptLen} + ${workload.genLen} tokens into GPU ${formatBytes(rates.capacityBytes.gpu)}, CPU ${formatBytes(rates.capacityBytes.cpu)}, disk ${formatBytes(rates.capacityBytes.disk)}${Object.keys(fixed).length ? " with the fixed settings given" : ""}: everything but the routed experts must fit on the GPU, beside the KV cache, the expert staging and prefetch buffers and the activations of the batch's prompt (the smallest candidate needs ${formatBytes(least)} of GPU memory)`,
    );
  }
  const { policy, prediction } = result.best;
  const x = policy.experts!;
  const notes = [
    `routed experts: ${x.cacheSize} of ${model.moe!.numExperts} per layer cached on the GPU (${x.eviction}), the rest in ${x.offloadTier === "cpu" ? "host memory" : "disk"} at ${x.bits} bits; attention, routers and embeddings resident at ${x.attentionBits} bits`,
    `expert-cache hit rate from ${routing.source}`,
  ];
  return {
    model: model.name,
    hardware: hardware.name,
    costModel: "spillway",
    schedule: "spillway",
    workload: { promptLen: workload.promptLen, genLen: workload.genLen },
    policy,
    predicted: {
      ...planPrediction(prediction),
      experts: prediction.experts,
      decodeSecondsPerToken: prediction.decodeSecondsPerToken,
    },
    search: {
      lpSolves: 0,
      elapsedMs: performance.now() - started,
      exactEvaluations: result.evaluations,
      lpFallbacks: 0,
      scored: result.evaluations === 1,
      wallClockLimitHits: 0,
    },
    flexgenArgs: "(FlexGen does not run Mixture-of-Experts models)",
    llamaCpp: llamaCppEngineMoeAdvice(model, hardware, workload),
    modelSpec: model,
    notes,
  };
}

function planSpillway(request: PlanRequest, solvers: () => LpSolvers): Plan {
  if (request.model.moe && request.moe !== "dense" && !request.fixed?.percent) return planMoe(request);
  const { model, hardware, workload } = request;
  const schedule = request.schedule ?? "spillway";
  const rates = hardwareRates(hardware);
  const fixed = request.fixed ?? {};
  const started = performance.now();
  const notes: string[] = [];
  let policy: Policy;
  let prediction: Prediction;
  let lpSolves = 0;
  let exactEvaluations = 1;
  let stats: SolveStats | undefined;
  let budget:
    | {
        maxLpSolves: number;
        lpLimitReached: boolean;
        maxGpuBatches: number;
        maxExactEvaluations: number;
        evaluationLimitReached: boolean;
        screenedLpSolves: number;
        referenceLpSolves: number;
      }
    | undefined;
  if (fullyFixed(fixed)) {
    const requested = fixedPolicy(fixed)!;
    policy = realizedPolicy(model, requested);
    prediction = evaluatePolicy(model, rates, workload, policy, schedule);
    if (!isUniform(policy))
      notes.push(
        "per-layer placement: FlexGen (and Spillway's runtime) apply one split to every layer, so the FlexGen flags show the average split",
      );
    const moved = (
      fixed.layerGroups ? (["cache", "activations"] as const) : (["weights", "cache", "activations"] as const)
    ).filter(
      (k) => Math.abs(policy[k].gpu - requested[k].gpu) > 1e-9 || Math.abs(policy[k].cpu - requested[k].cpu) > 1e-9,
    );
    if (moved.length) {
      const pct = (p: Placement) => TIERS.map((t) => `${(100 * p[t]).toFixed(1)}`).join("/");
      notes.push(
        `${REALIZED_DIFFERS}: ${moved.map((k) => `${k} ${pct(policy[k])} (asked ${pct(requested[k])}, % GPU/CPU/disk)`).join("; ")}: the runtime places whole tensors, whole sequences and activations on one tier; the fractions shown, and the flags printed, are what will be allocated`,
      );
    }
  } else {
    if (fixed.layerGroups || fixed.embeddings)
      throw new PlanError("per-layer placement is scored, not searched: fix gbs, nb and percent with it");
    const { percent: pct, layerGroups: _groups, embeddings: _embeddings, ...rest } = fixed;
    const result = searchSpillway({
      model,
      rates,
      workload,
      schedule,
      solvers: solvers(),
      ...(request.maxBlock !== undefined ? { maxBlock: request.maxBlock } : {}),
      ...(request.onCandidate ? { onCandidate: request.onCandidate } : {}),
      ...(request.onProgress ? { onProgress: request.onProgress } : {}),
      fixed: {
        ...rest,
        ...(pct ? { percent: { wg: pct[0], wc: pct[1], cg: pct[2], cc: pct[3], hg: pct[4], hc: pct[5] } } : {}),
      },
    });
    lpSolves = result.lpSolves;
    exactEvaluations = result.exactEvaluations;
    stats = result.stats;
    budget = {
      maxLpSolves: MAX_LP_SOLVES_PER_SEARCH,
      lpLimitReached: result.lpLimitReached,
      maxGpuBatches: result.nbLimit,
      maxExactEvaluations: result.maxExactEvaluations,
      evaluationLimitReached: result.evaluationLimitReached,
      screenedLpSolves: result.screenStats.screened,
      referenceLpSolves: result.screenStats.referenceSolves,
    };
    if (!result.best) {
      const stopped = result.evaluationLimitReached
        ? ` (the search stopped at its budget of ${result.maxExactEvaluations} exact evaluations for ${workload.genLen} generated tokens)`
        : result.lpLimitReached
          ? ` (the search stopped at its budget of ${MAX_LP_SOLVES_PER_SEARCH} LPs)`
          : "";
      throw new PlanError(
        `no policy fits ${model.name} (${formatBytes(totalWeightBytes(model))} of weights) with prompt ${workload.promptLen} + ${workload.genLen} tokens into GPU ${formatBytes(rates.capacityBytes.gpu)}, CPU ${formatBytes(rates.capacityBytes.cpu)}, disk ${formatBytes(rates.capacityBytes.disk)}${Object.keys(fixed).length ? " with the fixed settings given" : ""}${stopped}`,
      );
    }
    policy = result.best.policy;
    prediction = result.best.prediction;
    notes.push(
      "placement fractions are those the runtime really allocates: whole tensors, whole sequences, activations on one tier",
    );
  }
  const elapsedMs = performance.now() - started;
  return {
    model: model.name,
    hardware: hardware.name,
    costModel: "spillway",
    schedule,
    workload: { promptLen: workload.promptLen, genLen: workload.genLen },
    policy,
    predicted: planPrediction(prediction),
    search: {
      lpSolves,
      elapsedMs,
      exactEvaluations,
      lpFallbacks: stats?.fallbacks ?? 0,
      scored: fullyFixed(fixed),
      wallClockLimitHits: stats?.wallClockLimitHits ?? 0,
      ...budget,
    },
    flexgenArgs: flexgenArgs(model, policy),
    modelSpec: model,
    notes,
  };
}

const FLEXGEN_TERM_RESOURCE: Record<string, string> = {
  ctogg: RESOURCE_NAMES.h2d,
  gtocg: RESOURCE_NAMES.d2h,
  dtocg: RESOURCE_NAMES.diskRead,
  ctodg: RESOURCE_NAMES.diskWrite,
  compg: "compute",
};

function planFlexgen(request: PlanRequest, solvers: () => LpSolvers): Plan {
  const { model, hardware, workload } = request;
  if (model.family !== "opt") {
    throw new PlanError(
      `FlexGen's cost model covers OPT models only; ${model.name} is a ${model.family} model (use --cost-model spillway)`,
    );
  }
  const alpha = request.alpha ?? 0.8;
  const fixed = request.fixed ?? {};
  const constants = flexgenConstants(hardware);
  const started = performance.now();
  const dims = {
    l: model.numLayers,
    h1: model.hiddenSize,
    h2: model.ffnSize,
    nh: model.numHeads,
    s: workload.promptLen,
    n: workload.genLen,
  };
  const capacities = flexgenCapacities(hardware, alpha);
  const compressWeight = fixed.compressWeight ?? false;
  const policyOf = (gbs: number, nb: number, x: FlexgenLpOutcome["fractions"]): Policy => ({
    gpuBatchSize: gbs,
    numGpuBatches: nb,
    weights: { gpu: x.wg, cpu: x.wc, disk: x.wn },
    cache: { gpu: x.cg, cpu: x.cc, disk: x.cn },
    activations: { gpu: x.hg, cpu: x.hc, disk: x.hn },
    compressWeight,
    compressCache: false,
    cpuAttention: fixed.cpuAttention ?? true,
    overlap: fixed.overlap ?? true,
    pinWeight: fixed.pinWeight ?? true,
  });
  // FlexGen's LP checks its own alpha-relaxed estimate; a plan called feasible must also fit as Spillway
  // accounts it exactly (whole tensors and sequences, every buffer, the real capacities), so each policy
  // the search would keep is checked, and one that overflows is passed over.
  const rates = hardwareRates(hardware);
  const exactShortfalls = (gbs: number, nb: number, x: FlexgenLpOutcome["fractions"]) =>
    capacityShortfalls(policyPeakBytes(model, rates, workload, policyOf(gbs, nb, x), "flexgen"), rates.capacityBytes);
  let rejected: { gbs: number; nb: number; throughput: number; reasons: readonly string[] } | undefined;
  const result = searchFlexgen({
    dims,
    constants,
    capacities,
    compressWeight,
    solvers: solvers(),
    accept: (c) => {
      const reasons = exactShortfalls(c.gbs, c.nb, c.outcome.fractions);
      const throughput = c.outcome.throughputTokensPerSecond;
      if (reasons.length > 0 && throughput > (rejected?.throughput ?? 0))
        rejected = { gbs: c.gbs, nb: c.nb, throughput, reasons };
      return reasons.length === 0;
    },
    ...(fixed.percent ? { percent: fixed.percent } : {}),
    ...(fixed.gbs !== undefined ? { gbs: fixed.gbs } : {}),
    ...(fixed.nb !== undefined ? { nb: fixed.nb } : {}),
    ...(request.onProgress ? { onProgress: request.onProgress } : {}),
  });
  let gbs: number;
  let nb: number;
  let outcome: FlexgenLpOutcome;
  let feasible = true;
  const infeasibleReasons: string[] = [];
  if (result.best) {
    ({ gbs, nb, outcome } = result.best);
  } else if (fullyFixed(fixed)) {
    gbs = fixed.gbs!;
    nb = fixed.nb!;
    const p = fixed.percent!;
    const x = {
      wg: p[0] / 100,
      wc: p[1] / 100,
      wn: 1 - (p[0] + p[1]) / 100,
      cg: p[2] / 100,
      cc: p[3] / 100,
      cn: 1 - (p[2] + p[3]) / 100,
      hg: p[4] / 100,
      hc: p[5] / 100,
      hn: 1 - (p[4] + p[5]) / 100,
    };
    outcome = flexgenUnconstrained({ dims, constants, capacities, gbs, bls: gbs * nb, compressWeight }, x);
    feasible = false;
    const cap = {
      gpu: capacities.gpuBytes * alpha,
      cpu: capacities.cpuBytes * alpha,
      disk: capacities.diskBytes * alpha,
    };
    for (const tier of TIERS) {
      if (outcome.peakBytes[tier] > cap[tier])
        infeasibleReasons.push(
          `${tier} peak ${formatBytes(outcome.peakBytes[tier])} exceeds alpha (${alpha}) x capacity = ${formatBytes(cap[tier])}`,
        );
    }
    if (x.hn > 1e-9) infeasibleReasons.push("FlexGen's runtime cannot keep activations on disk (hg + hc must be 100)");
    if (infeasibleReasons.length === 0)
      for (const reason of exactShortfalls(gbs, nb, outcome.fractions))
        infeasibleReasons.push(`${reason} as Spillway allocates it (whole tensors and sequences, every buffer)`);
  } else if (rejected) {
    throw new PlanError(
      `FlexGen's LP finds no policy for ${model.name} that fits as Spillway allocates it (whole tensors and sequences, every buffer): the fastest it found, gbs ${rejected.gbs} x nb ${rejected.nb}, does not fit: ${rejected.reasons.join("; ")}`,
    );
  } else {
    throw new PlanError(
      `FlexGen's LP finds no feasible policy for ${model.name} with capacities GPU ${formatBytes(capacities.gpuBytes)}, CPU ${formatBytes(capacities.cpuBytes)}, disk ${formatBytes(capacities.diskBytes)} x alpha ${alpha}`,
    );
  }
  const elapsedMs = performance.now() - started;
  const x = outcome.fractions;
  const policy = policyOf(gbs, nb, x);
  const lpInput: FlexgenLpInput = { dims, constants, capacities, gbs, bls: gbs * nb, compressWeight };
  const terms = outcome.perLayerSeconds;
  const decodeTerms = ["gtocg", "dtocg", "ctodg", "compg"] as const;
  const bottleneckTerm = decodeTerms.reduce(
    (a, t) => ((terms[t] ?? 0) > (terms[a] ?? 0) ? t : a),
    "compg" as (typeof decodeTerms)[number],
  );
  const bottleneck =
    (terms.ctogg ?? 0) > (terms[bottleneckTerm] ?? 0)
      ? FLEXGEN_TERM_RESOURCE.ctogg!
      : FLEXGEN_TERM_RESOURCE[bottleneckTerm]!;
  const notes = [
    constants.origin === "fitted"
      ? `hardware constants: FlexGen's released fitted values for ${hardware.name}`
      : `hardware constants derived from the ${hardware.name} profile (FlexGen ships fitted constants for the T4 only)`,
    `memory capacities relaxed by alpha = ${alpha}, as FlexGen does; peak figures are FlexGen's estimates`,
  ];
  return {
    model: model.name,
    hardware: hardware.name,
    costModel: "flexgen",
    schedule: "flexgen",
    workload: { promptLen: workload.promptLen, genLen: workload.genLen },
    policy,
    predicted: {
      throughputTokensPerSecond: outcome.throughputTokensPerSecond,
      prefillSeconds: outcome.prefillSeconds,
      decodeSeconds: outcome.decodeSeconds,
      feasible,
      infeasibleReasons,
      peakBytes: outcome.peakBytes,
      capacityBytes: { gpu: capacities.gpuBytes, cpu: capacities.cpuBytes, disk: capacities.diskBytes },
      bytes: flexgenBytes(lpInput, x),
      busySeconds: terms,
      bottleneck,
    },
    search: {
      lpSolves: result.lpSolves,
      elapsedMs,
      lpFallbacks: result.stats.fallbacks,
      scored: fullyFixed(fixed),
      wallClockLimitHits: result.stats.wallClockLimitHits,
      maxLpSolves: MAX_LP_SOLVES_PER_SEARCH,
      lpLimitReached: result.lpLimitReached,
      maxGpuBatches: result.nbLimit,
      screenedLpSolves: result.screenStats.screened,
      referenceLpSolves: result.screenStats.referenceSolves,
    },
    flexgenArgs: flexgenArgs(model, policy),
    modelSpec: model,
    notes,
  };
}
