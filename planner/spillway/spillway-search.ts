/**
 * Spillway's policy search: for every family of discrete choices (weight and KV compression, CPU
 * attention, activation tier) and every feasible GPU batch size (infeasible ones are skipped, not a
 * reason to stop; the scan ends only where even the smallest GPU footprint exceeds the GPU), the LP
 * picks placement fractions for each useful number of GPU batches (a geometric grid up to the largest
 * feasible nb, plus that boundary). The most promising LP points are then realized at the runtime's
 * granularity, repaired until they fit, and scored exactly; the best exact throughput wins.
 */
import type { ModelSpec } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import type { OnProgress } from "../../core/progress.js";
import { realizedPolicy, realizePlacement } from "../../core/realize-placement.js";
import type { ScheduleName } from "../../core/schedule-name.js";
import type { Tier } from "../../core/tiers.js";
import type { Workload } from "../../core/workload.js";
import { VariableSpace } from "../lp/affine.js";
import { denseObjectiveValue } from "../lp/dense-lp.js";
import { newScreenStats, type ScreenStats, screenDenseLp, screenedDifference } from "../lp/screened-lp.js";
import { type LpSolvers, newSolveStats, type SolveStats } from "../lp/solve-linear-program.js";
import type { Prediction } from "../prediction.js";
import {
  EvaluationBudgetSpent,
  exactEvaluationLimit,
  MAX_LP_SOLVES_PER_SEARCH,
  SEARCH_GPU_BATCH_LIMIT,
} from "../search-budget.js";
import { costConstants } from "./cost-constants.js";
import { diskReadThroughputBound } from "./disk-read-bound.js";
import { type StagedEvaluation, stagedEvaluation } from "./evaluate-policy.js";
import type { HardwareRates } from "./hardware-rates.js";
import { LayerCostCache } from "./layer-cost-cache.js";
import { buildSpillwayLp, type SpillwayLayerCosts, SpillwayLpFamily, spillwayLayerCosts } from "./spillway-lp.js";
import { type CostSettings, StepCostModel } from "./step-costs.js";
import { batchThroughputCeiling, kvBytesPerSequenceLayer, placementFreeSecondsFloor } from "./time-floor.js";

export interface SpillwaySearchInput {
  readonly model: ModelSpec;
  readonly rates: HardwareRates;
  readonly workload: Workload;
  readonly schedule: ScheduleName;
  /** Restrict the search: any field given is fixed. */
  readonly fixed?: {
    readonly gbs?: number;
    readonly nb?: number;
    readonly percent?: { wg: number; wc: number; cg: number; cc: number; hg: number; hc: number };
    readonly compressWeight?: boolean;
    readonly compressCache?: boolean;
    readonly cpuAttention?: boolean;
    readonly overlap?: boolean;
    readonly pinWeight?: boolean;
  };
  /** The loaded LP solvers (loadLpSolvers()). */
  readonly solvers: LpSolvers;
  /** Largest GPU batch size considered. */
  readonly maxGbs?: number;
  /** Largest block (gbs x nb: sequences in flight) considered, e.g. the number of prompts a user has. */
  readonly maxBlock?: number;
  /** Called for every LP point solved to optimality (the search landscape), before any realizing or repair. */
  readonly onCandidate?: (c: LpCandidate) => void;
  /**
   * Called as the search goes (phase "search"): one step per GPU batch size of each family of discrete
   * choices, and one for the family's exact scoring.
   */
  readonly onProgress?: OnProgress;
  /** Solve every LP with javascript-lp-solver/HiGHS alone, as before the LP screen (screened-lp.ts): for tests and comparisons. */
  readonly referenceLpsOnly?: boolean;
  /**
   * Skip what a bound shows cannot beat the best policy already scored (default true): a family of
   * discrete choices by its disk reads (disk-read-bound.ts; never with onCandidate, which observes every
   * LP point), an LP point's exact solve and evaluation by its time floor (time-floor.ts). The plan is
   * the same either way; false for tests and comparisons.
   */
  readonly useBounds?: boolean;
}

/** One LP point of the search: a family of discrete choices at one (gbs, nb), with the LP's throughput estimate. */
export interface LpCandidate {
  readonly gbs: number;
  readonly nb: number;
  readonly compressWeight: boolean;
  readonly compressCache: boolean;
  readonly cpuAttention: boolean;
  readonly activationTier: string;
  readonly lpThroughputTokensPerSecond: number;
}

export interface SpillwaySearchResult {
  readonly best: { readonly policy: Policy; readonly prediction: Prediction } | undefined;
  readonly lpSolves: number;
  readonly exactEvaluations: number;
  readonly stats: SolveStats;
  /** How the LPs were answered: by the dense simplex alone, or also by the existing solvers (screened-lp.ts). */
  readonly screenStats: ScreenStats;
  /** The most GPU batches per block searched (planner/search-budget.ts). */
  readonly nbLimit: number;
  /** Whether the search stopped at MAX_LP_SOLVES_PER_SEARCH. */
  readonly lpLimitReached: boolean;
  /** The most exact evaluations the search could make (exactEvaluationLimit), and whether it stopped there. */
  readonly maxExactEvaluations: number;
  readonly evaluationLimitReached: boolean;
}

/** Relative slack on the LP's memory rows when a bound reads what they allow (the solvers allow 1e-6). */
const LP_ROW_SLACK = 1e-4;

export const GBS_CANDIDATES = [
  1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096,
];

/** 1, 2, 3, 4, 6, 8, 11, 16, 23, 32, … (about √2 apart). */
export function nbGrid(limit: number): number[] {
  const grid: number[] = [];
  for (let x = 1; x <= limit; x = Math.max(x + 1, Math.round(x * Math.SQRT2))) grid.push(x);
  return grid;
}

interface Family {
  readonly compressWeight: boolean;
  readonly compressCache: boolean;
  readonly cpuAttention: boolean;
  readonly activationTier: Tier;
}

/**
 * The order the search visits the families in: compressed weights first, as the fastest policies of a
 * model too large for GPU and CPU memory usually compress their weights, so that the best policy found
 * early lets the bound skip the families that cannot beat it. The plan does not depend on the order: on
 * equal throughputs the family listed first by families() wins, as when they were visited in that order.
 */
function visitOrder(list: readonly Family[]): number[] {
  return list.map((_, i) => list.length - 1 - i);
}

function families(input: SpillwaySearchInput): Family[] {
  const f = input.fixed ?? {};
  const choose = (fixed: boolean | undefined) => (fixed === undefined ? [false, true] : [fixed]);
  let tiers: Tier[] = ["gpu", "cpu"];
  if (f.percent)
    tiers = [
      f.percent.hg >= f.percent.hc && f.percent.hg >= 100 - f.percent.hg - f.percent.hc
        ? "gpu"
        : f.percent.hc >= 100 - f.percent.hg - f.percent.hc
          ? "cpu"
          : "disk",
    ];
  const out: Family[] = [];
  for (const compressWeight of choose(f.compressWeight))
    for (const compressCache of choose(f.compressCache))
      for (const cpuAttention of choose(f.cpuAttention))
        for (const activationTier of tiers) out.push({ compressWeight, compressCache, cpuAttention, activationTier });
  return out;
}

function policyOf(f: Family, gbs: number, nb: number, x: ArrayLike<number>, input: SpillwaySearchInput): Policy {
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  const norm = (a: number, b: number, c: number) => {
    const s = clamp(a) + clamp(b) + clamp(c);
    return { gpu: clamp(a) / s, cpu: clamp(b) / s, disk: clamp(c) / s };
  };
  return {
    gpuBatchSize: gbs,
    numGpuBatches: nb,
    weights: norm(x[0]!, x[1]!, x[2]!),
    cache: norm(x[3]!, x[4]!, x[5]!),
    activations: {
      gpu: f.activationTier === "gpu" ? 1 : 0,
      cpu: f.activationTier === "cpu" ? 1 : 0,
      disk: f.activationTier === "disk" ? 1 : 0,
    },
    compressWeight: f.compressWeight,
    compressCache: f.compressCache,
    cpuAttention: f.cpuAttention,
    overlap: input.fixed?.overlap ?? true,
    pinWeight: input.fixed?.pinWeight ?? true,
  };
}

/** Smallest GPU footprint any placement can have at this gbs (all weights and KV off the GPU). */
function minimumGpuBytes(input: SpillwaySearchInput, settings: CostSettings): number {
  const space = new VariableSpace(["unused"]);
  const c = (x: number) => space.constant(x);
  const constants = costConstants(input.model, settings.compressWeight);
  const model = new StepCostModel(input.model, input.rates, input.workload, settings, constants, space);
  let best = Infinity;
  for (const cg of [0, 1]) {
    const memory = model.memory({
      wg: c(0),
      wc: c(1),
      wd: c(0),
      cg: c(cg),
      cc: c(1 - cg),
      cd: c(0),
      embedding: { gpu: c(0), cpu: c(constants.embeddingStoredBytes), disk: c(0) },
      headBuffer: c(constants.headBufferAllOffBytes),
    });
    best = Math.min(best, Math.max(...memory.gpu.map((e) => e.constant)));
  }
  return best;
}

/**
 * Moves a weight fraction from one tier to the next one down, by the smallest amount that moves a whole
 * tensor under the runtime's rule; undefined when nothing is left to move.
 */
export function shiftWeights(
  model: ModelSpec,
  policy: Policy,
  from: "gpu" | "cpu",
  to: "cpu" | "disk",
): Policy | undefined {
  const before = realizePlacement(model, policy).weights[from];
  if (before <= 0) return undefined;
  const amounts: number[] = [];
  for (let amount = 0.005; amount <= before + 0.005; amount += 0.005) amounts.push(amount);
  const candidate = (amount: number): Policy => {
    const moved = Math.min(amount, policy.weights[from]);
    return {
      ...policy,
      weights: { ...policy.weights, [from]: policy.weights[from] - moved, [to]: policy.weights[to] + moved },
    };
  };
  const moves = (amount: number) => realizePlacement(model, candidate(amount)).weights[from] < before - 1e-12;
  // The first amount of the 0.005 steps that moves a tensor. Moving more never puts more on `from`
  // (the midpoint rule's threshold below `from` only rises), so whether an amount moves a tensor is
  // monotone in the amount and a binary search finds the first one the step-by-step scan would.
  let lo = 0;
  let hi = amounts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (moves(amounts[mid]!)) hi = mid;
    else lo = mid + 1;
  }
  return lo < amounts.length ? realizedPolicy(model, candidate(amounts[lo]!)) : undefined;
}

/** Moves one sequence per GPU batch of KV cache one tier down. */
export function shiftCache(policy: Policy, from: "gpu" | "cpu", to: "cpu" | "disk"): Policy | undefined {
  if (policy.cache[from] <= 0) return undefined;
  const seq = Math.min(1 / policy.gpuBatchSize, policy.cache[from]);
  return { ...policy, cache: { ...policy.cache, [from]: policy.cache[from] - seq, [to]: policy.cache[to] + seq } };
}

/** Whether a staged evaluation's policy is feasible: its memory first, its time only when the memory fits. */
function stagedFeasible(evaluation: StagedEvaluation): boolean {
  return evaluation.fitsMemory && evaluation.prediction().feasible;
}

/** What repairPolicy gives: the policy it ended at, that policy's evaluation, and how many policies it evaluated. */
export interface RepairedPolicy {
  readonly policy: Policy;
  readonly evaluation: StagedEvaluation;
  readonly evaluations: number;
}

/**
 * Moves realized placement down a tier, a tensor or a sequence at a time, until it fits. At each step
 * every possible move is evaluated (`evaluate` is called once per policy, in the same order as always,
 * so an evaluation budget counts the same) and the move with the highest score is taken, the first on
 * ties: a feasible move scores 1e30 plus its throughput, any other its throughput over its overflow in
 * bytes (at least 1). A policy's time is costed only where it can change the choice or is the answer:
 * the memory alone settles that a move does not fit, and a move that does not fit cannot outscore one
 * that does (its score is its throughput, tokens per second, far below 1e30), so such a move's time is
 * costed only when no move fits. The moves chosen are those of an evaluation that costs every move in
 * full, to the last bit (test/unit/exact-evaluation-shortcuts.test.ts).
 */
export function repairPolicy(
  model: ModelSpec,
  policy: Policy,
  evaluate: (p: Policy) => StagedEvaluation,
  maxSteps = 400,
): RepairedPolicy {
  let current = realizedPolicy(model, policy);
  let evaluation = evaluate(current);
  let evaluations = 1;
  const overflow = (c: StagedEvaluation) =>
    Math.max(0, c.peakBytes.gpu - c.capacityBytes.gpu) + Math.max(0, c.peakBytes.cpu - c.capacityBytes.cpu);
  const score = (c: StagedEvaluation) =>
    (stagedFeasible(c) ? 1e30 : 0) + c.prediction().throughputTokensPerSecond / Math.max(1, overflow(c));
  for (let i = 0; i < maxSteps && !stagedFeasible(evaluation); i++) {
    const p = current;
    const moves: (Policy | undefined)[] = [];
    if (evaluation.peakBytes.gpu > evaluation.capacityBytes.gpu) {
      moves.push(shiftWeights(model, p, "gpu", "cpu"), shiftCache(p, "gpu", "cpu"));
      if (p.activations.gpu > 0) moves.push({ ...p, activations: { gpu: 0, cpu: 1, disk: 0 } });
    } else if (evaluation.peakBytes.cpu > evaluation.capacityBytes.cpu) {
      moves.push(shiftWeights(model, p, "cpu", "disk"), shiftCache(p, "cpu", "disk"));
      if (p.activations.cpu > 0) moves.push({ ...p, activations: { gpu: 0, cpu: 0, disk: 1 } });
    }
    const evaluated: { policy: Policy; evaluation: StagedEvaluation }[] = [];
    for (const move of moves) {
      if (!move) continue;
      evaluated.push({ policy: move, evaluation: evaluate(move) });
      evaluations++;
    }
    const feasible = evaluated.filter((c) => stagedFeasible(c.evaluation));
    let best: { policy: Policy; evaluation: StagedEvaluation } | undefined;
    for (const candidate of feasible.length > 0 ? feasible : evaluated)
      if (!best || score(candidate.evaluation) > score(best.evaluation)) best = candidate;
    if (!best) break;
    current = best.policy;
    evaluation = best.evaluation;
  }
  return { policy: current, evaluation, evaluations };
}

/**
 * One LP point of a search: its screened throughput, which the search sorts by, and its exact throughput
 * and policy (from the existing solvers' values) on demand.
 */
interface ScreenedPoint {
  readonly gbs: number;
  readonly nb: number;
  readonly lpThroughput: number;
  exactThroughput(): number;
  policy(): Policy;
}

/** b's LP throughput minus a's: sorts best first, as the exact figures order them. */
function byThroughputDescending(a: ScreenedPoint, b: ScreenedPoint): number {
  return screenedDifference(b.lpThroughput, a.lpThroughput, b.exactThroughput, a.exactThroughput);
}

export function searchSpillway(input: SpillwaySearchInput): SpillwaySearchResult {
  const stats = newSolveStats();
  const screenStats = newScreenStats();
  const solving = {
    solvers: input.solvers,
    solveStats: stats,
    screenStats,
    referenceOnly: input.referenceLpsOnly === true,
  };
  let lpSolves = 0;
  let exactEvaluations = 0;
  const fixed = input.fixed ?? {};
  const fixedFractions = fixed.percent
    ? { wg: fixed.percent.wg / 100, wc: fixed.percent.wc / 100, cg: fixed.percent.cg / 100, cc: fixed.percent.cc / 100 }
    : undefined;
  const maxExactEvaluations = exactEvaluationLimit(input.workload.genLen);
  let evaluationsMade = 0;
  const layerCostCache = new LayerCostCache();
  let evaluationLimitReached = false;
  const evaluate = (p: Policy) => {
    if (evaluationsMade >= maxExactEvaluations) throw new EvaluationBudgetSpent();
    evaluationsMade++;
    return stagedEvaluation(input.model, input.rates, input.workload, p, input.schedule, layerCostCache);
  };
  let best: { policy: Policy; prediction: Prediction; familyIndex: number } | undefined;
  const consider = (policy: Policy, familyIndex: number) => {
    if (evaluationLimitReached) return;
    try {
      considerWithinBudget(policy, familyIndex);
    } catch (error) {
      if (!(error instanceof EvaluationBudgetSpent)) throw error;
      evaluationLimitReached = true;
      exactEvaluations = evaluationsMade;
    }
  };
  const considerWithinBudget = (policy: Policy, familyIndex: number) => {
    const realized = realizedPolicy(input.model, policy);
    const repaired: RepairedPolicy = fixedFractions
      ? { policy: realized, evaluation: evaluate(realized), evaluations: 1 }
      : repairPolicy(input.model, policy, evaluate);
    exactEvaluations += repaired.evaluations;
    if (!stagedFeasible(repaired.evaluation)) return;
    const prediction = repaired.evaluation.prediction();
    const throughput = prediction.throughputTokensPerSecond;
    const incumbent = best?.prediction.throughputTokensPerSecond;
    // The first of equal throughputs in families() order, whatever the order of visits.
    if (
      incumbent === undefined ||
      throughput > incumbent ||
      (throughput === incumbent && familyIndex < best!.familyIndex)
    )
      best = { policy: repaired.policy, prediction, familyIndex };
  };
  const maxBlock = input.maxBlock ?? Infinity;
  const gpuBatchLimit = SEARCH_GPU_BATCH_LIMIT;
  let lpLimitReached = false;
  const gbsList =
    fixed.gbs !== undefined
      ? [fixed.gbs]
      : GBS_CANDIDATES.filter((g) => g <= (input.maxGbs ?? Infinity) && g <= maxBlock);

  const familyList = families(input);
  const stepsPerFamily = gbsList.length + 1;
  const progressTotal = Math.max(1, familyList.length * stepsPerFamily);
  const progress = (done: number, detail?: string) =>
    input.onProgress?.({
      phase: "search",
      done,
      total: progressTotal,
      ...(detail ? { detail } : {}),
    });
  progress(0);
  const boundPoints = input.useBounds !== false;
  const settingsOf = (family: Family, gbs: number, nb: number): CostSettings => ({
    gbs,
    nb,
    ...family,
    pinWeight: fixed.pinWeight ?? true,
    overlap: fixed.overlap ?? true,
    schedule: input.schedule,
  });
  /**
   * Whether some GPU batch size the family's scan would visit can reach `incumbent` (time-floor.ts
   * batchThroughputCeiling) at an nb its LP can take. An LP point is feasible only if the LP's GPU, CPU
   * and disk rows added up hold every layer's weights and every sequence's KV (spillway-lp.ts: memory()'s
   * rows, each term non-negative; the weight and cache fractions add up to 1): W L + bls K L <= the three
   * capacities, within the solvers' row tolerance (1e-6 relative; LP_ROW_SLACK is wider).
   */
  const familyCanWin = (family: Family, gbsFits: (gbs: number) => boolean, incumbent: number) => {
    const { model, rates, workload } = input;
    const L = model.numLayers;
    const W = costConstants(model, family.compressWeight).layerStoredBytes;
    const K = kvBytesPerSequenceLayer(model, rates, workload, settingsOf(family, 1, 1));
    const capacity = rates.capacityBytes.gpu + rates.capacityBytes.cpu + rates.capacityBytes.disk;
    const largestBlock = (capacity * (1 + LP_ROW_SLACK) - W * L) / (K * L);
    const scanned: number[] = [];
    for (const gbs of gbsList) {
      if (!gbsFits(gbs)) break;
      scanned.push(gbs);
    }
    // Largest first: a large GPU batch size is the likeliest to reach the best, which ends the check.
    for (const gbs of scanned.reverse()) {
      const maxNb = fixed.nb ?? Math.min(gpuBatchLimit, Math.floor(maxBlock / gbs), Math.floor(largestBlock / gbs));
      const settings = settingsOf(family, gbs, 1);
      if (batchThroughputCeiling(model, rates, workload, settings, maxNb, layerCostCache) >= incumbent) return true;
    }
    return false;
  };
  const boundFamilies = boundPoints && !input.onCandidate;
  for (const [visit, familyIndex] of visitOrder(familyList).entries()) {
    const family = familyList[familyIndex]!;
    const familyStart = visit * stepsPerFamily;
    const familyName = `family ${visit + 1}/${familyList.length}`;
    if (boundFamilies && best) {
      const bound = diskReadThroughputBound(input.model, input.rates, input.workload, family);
      if (bound < best.prediction.throughputTokensPerSecond) {
        progress(familyStart + stepsPerFamily, `${familyName} skipped: its disk reads bound it below the best found`);
        continue;
      }
    }
    // The GPU batch sizes the scan visits: it ends where even the smallest GPU footprint overflows.
    const fits = new Map<number, boolean>();
    const gbsFits = (gbs: number) => {
      let answer = fits.get(gbs);
      if (answer === undefined) {
        answer =
          fixed.gbs !== undefined ||
          minimumGpuBytes(input, settingsOf(family, gbs, 1)) <= input.rates.capacityBytes.gpu;
        fits.set(gbs, answer);
      }
      return answer;
    };
    if (boundFamilies && best && !familyCanWin(family, gbsFits, best.prediction.throughputTokensPerSecond)) {
      progress(familyStart + stepsPerFamily, `${familyName} skipped: no GPU batch size of it can beat the best found`);
      continue;
    }
    const constants = costConstants(input.model, family.compressWeight);
    // The family's LPs start from the last optimum's basis.
    const screen = { ...solving, warmStart: {} };
    const candidates: ScreenedPoint[] = [];
    for (const [gbsIndex, gbs] of gbsList.entries()) {
      if (gbsIndex > 0) progress(familyStart + gbsIndex, `${familyName}, gbs ${gbs}, ${lpSolves} LPs solved`);
      const settingsFor = (nb: number): CostSettings => settingsOf(family, gbs, nb);
      if (!gbsFits(gbs)) break;
      let layerCosts: SpillwayLayerCosts | undefined;
      const lpInputAt = (nb: number) => {
        const lpInput = {
          model: input.model,
          rates: input.rates,
          workload: input.workload,
          settings: settingsFor(nb),
          constants,
        };
        // The layer costs do not depend on nb: computed once per GPU batch size.
        layerCosts ??= spillwayLayerCosts(lpInput);
        return { ...lpInput, layerCosts, ...(fixedFractions ? { fixed: fixedFractions } : {}) };
      };
      // The LP at every nb of this gbs, by interpolation (spillway-lp.ts SpillwayLpFamily); each is built
      // term by term only when its exact figures are needed.
      let lpFamily: SpillwayLpFamily | undefined;
      const solveAt = (nb: number): ScreenedPoint | undefined => {
        if (lpSolves >= MAX_LP_SOLVES_PER_SEARCH) {
          lpLimitReached = true;
          return undefined;
        }
        lpSolves++;
        lpFamily ??= new SpillwayLpFamily(lpInputAt, gbs);
        const lps = lpFamily;
        const dense = lps.fill(nb);
        const screened = screenDenseLp(
          dense,
          screen,
          () => lps.at(nb),
          () => buildSpillwayLp(lpInputAt(nb)),
        );
        if (screened.status !== "optimal") return undefined;
        const throughputOf = (values: ArrayLike<number>) => input.workload.genLen / denseObjectiveValue(dense, values);
        let exact: { throughput: number; policy: Policy } | undefined;
        const exactPoint = () => {
          if (!exact) {
            const solution = screened.exact();
            exact = {
              throughput: input.workload.genLen / solution.objective,
              policy: policyOf(family, gbs, nb, solution.values, input),
            };
          }
          return exact;
        };
        const point: ScreenedPoint = {
          gbs,
          nb,
          lpThroughput: throughputOf(screened.values),
          exactThroughput: () => exactPoint().throughput,
          policy: () => exactPoint().policy,
        };
        if (input.onCandidate)
          input.onCandidate({
            gbs,
            nb,
            compressWeight: family.compressWeight,
            compressCache: family.compressCache,
            cpuAttention: family.cpuAttention,
            activationTier: family.activationTier,
            lpThroughputTokensPerSecond: point.exactThroughput(),
          });
        return point;
      };
      const perGbs: ScreenedPoint[] = [];
      if (fixed.nb !== undefined) {
        const r = solveAt(fixed.nb);
        if (r) perGbs.push(r);
      } else {
        let lastFeasible = 0;
        let firstInfeasible = 0;
        const nbLimit = Math.min(gpuBatchLimit, Math.floor(maxBlock / gbs));
        for (const nb of nbGrid(nbLimit)) {
          const r = solveAt(nb);
          if (!r) {
            firstInfeasible = nb;
            break;
          }
          perGbs.push(r);
          lastFeasible = nb;
        }
        // Binary search the boundary between the last feasible and the first infeasible grid point.
        let lo = lastFeasible;
        let hi = firstInfeasible;
        let boundary: ScreenedPoint | undefined;
        // A few halvings are enough: the grid is about √2 apart, so the boundary is pinned within ~5%.
        for (let steps = 0; lo > 0 && hi - lo > 1 && steps < 3; steps++) {
          const mid = Math.floor((lo + hi) / 2);
          const r = solveAt(mid);
          if (r) {
            lo = mid;
            boundary = r;
          } else hi = mid;
        }
        if (boundary) perGbs.push(boundary);
      }
      if (perGbs.length === 0) continue;
      perGbs.sort(byThroughputDescending);
      candidates.push(...perGbs.slice(0, 2));
    }
    progress(familyStart + gbsList.length, `${familyName}, scoring the best LP points, ${lpSolves} LPs solved`);
    candidates.sort(byThroughputDescending);
    const seen = new Set<string>();
    for (const c of candidates) {
      // The policy's gbs and nb are the point's (policyOf).
      const key = `${c.gbs}x${c.nb}`;
      if (seen.has(key)) continue;
      seen.add(key);
      // A point whose time floor (time-floor.ts) keeps every placement of it below the best policy
      // already scored cannot become the best: neither its exact LP solve nor its evaluation is needed.
      const cannotWin =
        boundPoints &&
        best !== undefined &&
        (c.gbs * c.nb * input.workload.genLen) /
          placementFreeSecondsFloor(
            input.model,
            input.rates,
            input.workload,
            settingsOf(family, c.gbs, c.nb),
            layerCostCache,
          ) <
          best.prediction.throughputTokensPerSecond;
      if (!cannotWin) consider(c.policy(), familyIndex);
      if (seen.size >= 6) break;
    }
    progress(familyStart + stepsPerFamily, `${familyName} done, ${lpSolves} LPs solved`);
  }
  return {
    best: best && { policy: best.policy, prediction: best.prediction },
    lpSolves,
    exactEvaluations,
    stats,
    screenStats,
    nbLimit: gpuBatchLimit,
    lpLimitReached,
    maxExactEvaluations,
    evaluationLimitReached,
  };
}
