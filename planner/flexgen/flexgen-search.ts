/**
 * FlexGen's policy search around its LP (experimental/cost_model.py: solve, get_nb_ub, best), ported
 * step for step: gbs = 1, 2, 3, 4, 8, 16, …; for each gbs the largest feasible nb by doubling then
 * binary search; nb scanned upward from 1 until throughput first drops; the search stops at the first
 * gbs for which nb = 1 is infeasible; ties keep the earlier candidate.
 */

import type { OnProgress } from "../../core/progress.js";
import { VariableSpace } from "../lp/affine.js";
import type { DenseLp } from "../lp/dense-lp.js";
import type { LinearProgram } from "../lp/linear-program.js";
import { LinearProgramFamily } from "../lp/lp-family.js";
import { newScreenStats, type ScreenStats, screenDenseLp, screenedDifference } from "../lp/screened-lp.js";
import { type LpSolvers, newSolveStats, type SolveStats } from "../lp/solve-linear-program.js";
import { MAX_LP_SOLVES_PER_SEARCH, SEARCH_GPU_BATCH_LIMIT } from "../search-budget.js";
import {
  buildFlexgenLp,
  type FixedPercents,
  FLEXGEN_LP_VARIABLES,
  type FlexgenLpInput,
  type FlexgenLpOutcome,
  flexgenOutcome,
  flexgenTerms,
} from "./flexgen-lp.js";

export interface FlexgenCandidate {
  readonly gbs: number;
  readonly nb: number;
  readonly outcome: FlexgenLpOutcome;
}

export interface FlexgenSearchInput extends Omit<FlexgenLpInput, "gbs" | "bls" | "percent"> {
  readonly percent?: FixedPercents;
  /** Fix the GPU batch size (FlexGen's --gbs) and/or the number of GPU batches (--num-gb). */
  readonly gbs?: number;
  readonly nb?: number;
  /** The loaded LP solvers (loadLpSolvers()). */
  readonly solvers: LpSolvers;
  /** Upper bound on gbs so a model with no memory limit in sight cannot loop forever. */
  readonly maxGbs?: number;
  /** Called as the search goes (phase "search"): one step per GPU batch size up to maxGbs (the search may end sooner). */
  readonly onProgress?: OnProgress;
  /**
   * A final check of a candidate that would become the best (e.g. Spillway's exact memory accounting);
   * a rejected candidate is skipped as if its LP were not better. Called after the loop, first on the
   * last candidate that beats every earlier one, then (only if it fails) on each that would become the
   * best in the loop's order (chooseBest), at most once per candidate.
   */
  readonly accept?: (candidate: FlexgenCandidate) => boolean;
  /** Solve every LP with javascript-lp-solver/HiGHS alone, as before the LP screen (screened-lp.ts): for tests and comparisons. */
  readonly referenceLpsOnly?: boolean;
}

export interface FlexgenSearchResult {
  readonly best: FlexgenCandidate | undefined;
  readonly lpSolves: number;
  readonly stats: SolveStats;
  /** How the LPs were answered: by the dense simplex alone, or also by the existing solvers (screened-lp.ts). */
  readonly screenStats: ScreenStats;
  /** The most GPU batches per block searched (planner/search-budget.ts). */
  readonly nbLimit: number;
  /** Whether the search stopped at MAX_LP_SOLVES_PER_SEARCH. */
  readonly lpLimitReached: boolean;
}

/** Where the objective's two time variables are among the LP's variables. */
const TPRE = FLEXGEN_LP_VARIABLES.indexOf("Tpre");
const TGEN = FLEXGEN_LP_VARIABLES.indexOf("Tgen");

/**
 * For a fixed gbs every coefficient and right-hand side of FlexGen's LP is affine in the block size
 * bls (the objective is that over bls), so the LP is built twice per gbs (at bls = gbs and 2 gbs) and
 * instantiated for each nb by interpolation instead of being rebuilt term by term.
 */
class FlexgenLpFamily {
  private readonly family: LinearProgramFamily;
  /** Where fill writes each LP (one at a time: the LP screen reads it during the call only). */
  private readonly scratch: DenseLp;
  private readonly scratchObjective: number[] = new Array(FLEXGEN_LP_VARIABLES.length).fill(0);

  constructor(private readonly base: Omit<FlexgenLpInput, "bls">) {
    this.family = new LinearProgramFamily((bls) => buildFlexgenLp({ ...base, bls }).lp, base.gbs, 2 * base.gbs);
    this.scratch = this.family.emptyDenseLp();
  }

  private objectiveAt(bls: number, objective: number[]): number[] {
    const { l, n } = this.base.dims;
    objective[TPRE] = l / bls;
    objective[TGEN] = (l * (n - 1)) / bls;
    return objective;
  }

  at(bls: number): LinearProgram {
    return this.family.at(bls, this.objectiveAt(bls, new Array(FLEXGEN_LP_VARIABLES.length).fill(0)));
  }

  /** at(bls)'s numbers, in the family's scratch storage (overwritten by the next fill). */
  fill(bls: number): DenseLp {
    this.family.fill(bls, this.objectiveAt(bls, this.scratchObjective), this.scratch);
    return this.scratch;
  }
}

/** One (gbs, nb) LP's answer: the screened throughput the search steps by, and the exact one on demand. */
interface FlexgenLpResult {
  readonly throughput: number;
  exact(): { readonly throughput: number; readonly values: ArrayLike<number> };
}

interface ConsideredCandidate {
  readonly gbs: number;
  readonly nb: number;
  readonly result: FlexgenLpResult;
}

/**
 * FlexGen's rule for the best of `candidates` (in the loop's order): a candidate becomes the best when
 * it beats the best so far and `accept` passes it; ties keep the earlier one. Checking only the last
 * record (the last candidate to beat every one before it) gives the same answer whenever it passes:
 * it beat every earlier candidate, so it beat the best of them that passed and becomes the best, and
 * no later candidate beats it. Only when it fails is the rule replayed in full, checking each
 * candidate that beats the best so far, as the loop would have.
 */
export function chooseBest<T>(
  candidates: readonly T[],
  beats: (a: T, b: T) => boolean,
  accept?: (candidate: T) => boolean,
): T | undefined {
  let record: T | undefined;
  for (const c of candidates) if (record === undefined || beats(c, record)) record = c;
  if (record === undefined || !accept || accept(record)) return record;
  let best: T | undefined;
  for (const c of candidates) if ((best === undefined || beats(c, best)) && accept(c)) best = c;
  return best;
}

export function searchFlexgen(input: FlexgenSearchInput): FlexgenSearchResult {
  const stats = newSolveStats();
  const screenStats = newScreenStats();
  // Every LP of the search has the same rows: each starts from the last optimum's basis.
  const screen = {
    solvers: input.solvers,
    solveStats: stats,
    screenStats,
    warmStart: {},
    referenceOnly: input.referenceLpsOnly === true,
  };
  let lpSolves = 0;
  /** Per gbs: its LP family, and every nb's answer solved so far. */
  const byGbs = new Map<number, { family: FlexgenLpFamily; answers: Map<number, FlexgenLpResult | undefined> }>();
  const { l, n } = input.dims;
  const base = (gbs: number): Omit<FlexgenLpInput, "bls"> => ({
    dims: input.dims,
    constants: input.constants,
    capacities: input.capacities,
    compressWeight: input.compressWeight,
    gbs,
    ...(input.percent ? { percent: input.percent } : {}),
  });
  // FlexGen's own search has no bound on nb; this one stops at the policy range, and at the LP budget.
  const nbLimit = SEARCH_GPU_BATCH_LIMIT;
  let lpLimitReached = false;
  const throughputOf = (gbs: number, nb: number, values: ArrayLike<number>) =>
    (gbs * nb * n) / (values[TPRE]! * l + values[TGEN]! * (n - 1) * l);
  const solve = (gbs: number, nb: number): FlexgenLpResult | undefined => {
    let lps = byGbs.get(gbs);
    const known = lps?.answers.get(nb);
    if (known !== undefined || lps?.answers.has(nb)) return known;
    if (lpSolves >= MAX_LP_SOLVES_PER_SEARCH) {
      lpLimitReached = true;
      return undefined;
    }
    lpSolves++;
    if (!lps) byGbs.set(gbs, (lps = { family: new FlexgenLpFamily(base(gbs)), answers: new Map() }));
    const family = lps.family;
    const screened = screenDenseLp(family.fill(gbs * nb), screen, () => family.at(gbs * nb));
    let result: FlexgenLpResult | undefined;
    if (screened.status === "optimal") {
      let exact: { throughput: number; values: ArrayLike<number> } | undefined;
      result = {
        throughput: throughputOf(gbs, nb, screened.values),
        exact: () => {
          if (!exact) {
            const values = screened.exact().values;
            exact = { throughput: throughputOf(gbs, nb, values), values };
          }
          return exact;
        },
      };
    }
    lps.answers.set(nb, result);
    return result;
  };
  /** a's throughput minus b's, with the sign the exact figures give. */
  const difference = (a: FlexgenLpResult, b: FlexgenLpResult) =>
    screenedDifference(
      a.throughput,
      b.throughput,
      () => a.exact().throughput,
      () => b.exact().throughput,
    );
  const nbUpperBound = (gbs: number): number => {
    let nb = 1;
    while (nb <= nbLimit && solve(gbs, nb)) nb *= 2;
    let left = Math.max(Math.floor(nb / 2), 1);
    let right = Math.min(nb, nbLimit + 1);
    while (left < right) {
      const mid = Math.floor((left + right) / 2);
      if (solve(gbs, mid)) left = mid + 1;
      else right = mid;
    }
    return left - 1;
  };

  // FlexGen re-solves its best policy at the end; here its figures are read off the stored solution.
  const candidateOf = (gbs: number, nb: number, values: ArrayLike<number>): FlexgenCandidate => {
    const lpInput: FlexgenLpInput = { ...base(gbs), bls: gbs * nb };
    const terms = flexgenTerms(lpInput, new VariableSpace(FLEXGEN_LP_VARIABLES));
    return { gbs, nb, outcome: flexgenOutcome(lpInput, terms, values) };
  };
  // Every candidate FlexGen's loop weighs, in its order (which LPs the loop solves does not depend on
  // which candidate is best); the best is chosen from them after the loop (chooseBest).
  const considered: ConsideredCandidate[] = [];
  const consider = (gbs: number, nb: number, result: FlexgenLpResult) => considered.push({ gbs, nb, result });
  const maxGbs = input.maxGbs ?? 1 << 20;
  let gbsCount = 0;
  for (let g = 1; g <= maxGbs; g = g < 4 ? g + 1 : g * 2) gbsCount++;
  const progressTotal = input.gbs !== undefined ? 1 : Math.max(1, gbsCount);
  let gbsDone = 0;
  const progress = (detail?: string) =>
    input.onProgress?.({ phase: "search", done: gbsDone, total: progressTotal, ...(detail ? { detail } : {}) });
  progress();
  let gbs = 1;
  for (;;) {
    if (input.gbs !== undefined) gbs = input.gbs;
    if (input.nb !== undefined) {
      const r = solve(gbs, input.nb);
      if (!r) break;
      consider(gbs, input.nb, r);
    } else {
      const nbUb = nbUpperBound(gbs);
      if (nbUb === 0) break;
      let previous: FlexgenLpResult | undefined;
      for (let nb = 1; nb <= nbUb; nb++) {
        const r = solve(gbs, nb);
        if (!r) break;
        if (previous && difference(r, previous) < 0) break;
        previous = r;
        consider(gbs, nb, r);
      }
    }
    gbsDone = Math.min(progressTotal, gbsDone + 1);
    progress(`gbs ${gbs}, ${lpSolves} LPs solved`);
    if (input.gbs !== undefined) break;
    gbs = gbs < 4 ? gbs + 1 : gbs * 2;
    if (gbs > maxGbs) break;
  }
  // The search ends at the first gbs that fits no block: the rest of the count is done.
  gbsDone = progressTotal;
  progress(`${lpSolves} LPs solved`);
  const accepted = new Map<string, boolean>();
  const accept = input.accept
    ? (c: ConsideredCandidate) => {
        const key = `${c.gbs}x${c.nb}`;
        let verdict = accepted.get(key);
        if (verdict === undefined) {
          verdict = input.accept!(candidateOf(c.gbs, c.nb, c.result.exact().values));
          accepted.set(key, verdict);
        }
        return verdict;
      }
    : undefined;
  const best = chooseBest(considered, (a, b) => difference(a.result, b.result) > 0, accept);
  const bestCandidate = best ? candidateOf(best.gbs, best.nb, best.result.exact().values) : undefined;
  return { best: bestCandidate, lpSolves, stats, screenStats, nbLimit, lpLimitReached };
}
