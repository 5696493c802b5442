/**
 * FlexGen's policy search around its LP (experimental/cost_model.py: solve, get_nb_ub, best), ported
 * step for step: gbs = 1, 2, 3, 4, 8, 16, …; for each gbs the largest feasible nb by doubling then
 * binary search; nb scanned upward from 1 until throughput first drops; the search stops at the first
 * gbs for which nb = 1 is infeasible; ties keep the earlier candidate.
 */

import type { OnProgress } from "../../core/progress.js";
import { VariableSpace } from "../lp/affine.js";
import type { LinearConstraint, LinearProgram } from "../lp/linear-program.js";
import { type LpSolvers, newSolveStats, type SolveStats, solveLinearProgram } from "../lp/solve-linear-program.js";
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
   * A final check of each candidate that would become the best (e.g. Spillway's exact memory
   * accounting); a rejected candidate is skipped and the search goes on as if its LP were not better.
   */
  readonly accept?: (candidate: FlexgenCandidate) => boolean;
}

export interface FlexgenSearchResult {
  readonly best: FlexgenCandidate | undefined;
  readonly lpSolves: number;
  readonly stats: SolveStats;
  /** The most GPU batches per block searched (planner/search-budget.ts). */
  readonly nbLimit: number;
  /** Whether the search stopped at MAX_LP_SOLVES_PER_SEARCH. */
  readonly lpLimitReached: boolean;
}

/**
 * For a fixed gbs every coefficient and right-hand side of FlexGen's LP is affine in the block size
 * bls (the objective is that over bls), so the LP is built twice per gbs and instantiated for each nb
 * by interpolation instead of being rebuilt term by term.
 */
class FlexgenLpFamily {
  private readonly one: LinearProgram;
  private readonly slope: LinearProgram;

  constructor(private readonly base: Omit<FlexgenLpInput, "bls">) {
    this.one = buildFlexgenLp({ ...base, bls: base.gbs }).lp;
    const two = buildFlexgenLp({ ...base, bls: 2 * base.gbs }).lp;
    this.slope = {
      variables: two.variables,
      objective: two.objective,
      constraints: two.constraints.map((c, i) => {
        const o = this.one.constraints[i]!;
        return {
          ...c,
          coefficients: c.coefficients.map((x, j) => (x - o.coefficients[j]!) / base.gbs),
          rhs: (c.rhs - o.rhs) / base.gbs,
        };
      }),
    };
  }

  at(bls: number): LinearProgram {
    const d = bls - this.base.gbs;
    const { l, n } = this.base.dims;
    const objective: number[] = [];
    for (const v of FLEXGEN_LP_VARIABLES)
      objective.push(v === "Tpre" ? l / bls : v === "Tgen" ? (l * (n - 1)) / bls : 0);
    const constraints: LinearConstraint[] = [];
    for (let i = 0; i < this.one.constraints.length; i++) {
      const c = this.one.constraints[i]!;
      const s = this.slope.constraints[i]!;
      const coefficients: number[] = [];
      for (let j = 0; j < c.coefficients.length; j++) coefficients.push(c.coefficients[j]! + d * s.coefficients[j]!);
      constraints.push({ name: c.name, op: c.op, coefficients, rhs: c.rhs + d * s.rhs });
    }
    return { variables: this.one.variables, objective, constraints };
  }
}

export function searchFlexgen(input: FlexgenSearchInput): FlexgenSearchResult {
  const stats = newSolveStats();
  let lpSolves = 0;
  const families = new Map<number, FlexgenLpFamily>();
  const memo = new Map<string, { throughput: number; values: ArrayLike<number> } | undefined>();
  const tpre = FLEXGEN_LP_VARIABLES.indexOf("Tpre");
  const tgen = FLEXGEN_LP_VARIABLES.indexOf("Tgen");
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
  const solve = (gbs: number, nb: number) => {
    const key = `${gbs}x${nb}`;
    if (memo.has(key)) return memo.get(key);
    if (lpSolves >= MAX_LP_SOLVES_PER_SEARCH) {
      lpLimitReached = true;
      return undefined;
    }
    lpSolves++;
    let family = families.get(gbs);
    if (!family) families.set(gbs, (family = new FlexgenLpFamily(base(gbs))));
    const solution = solveLinearProgram(family.at(gbs * nb), input.solvers, { stats });
    let result: { throughput: number; values: ArrayLike<number> } | undefined;
    if (solution.status === "optimal") {
      const seconds = solution.values[tpre]! * l + solution.values[tgen]! * (n - 1) * l;
      result = { throughput: (gbs * nb * n) / seconds, values: solution.values };
    }
    memo.set(key, result);
    return result;
  };
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
  let best: { gbs: number; nb: number; values: ArrayLike<number> } | undefined;
  let bestThroughput = 0;
  const consider = (gbs: number, nb: number, r: { throughput: number; values: ArrayLike<number> }) => {
    if (r.throughput > bestThroughput) {
      if (input.accept && !input.accept(candidateOf(gbs, nb, r.values))) return;
      best = { gbs, nb, values: r.values };
      bestThroughput = r.throughput;
    }
  };
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
      let previous = 0;
      for (let nb = 1; nb <= nbUb; nb++) {
        const r = solve(gbs, nb);
        if (!r) break;
        if (r.throughput < previous) break;
        previous = r.throughput;
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
  let bestCandidate: FlexgenCandidate | undefined;
  if (best) {
    const b = best as { gbs: number; nb: number; values: ArrayLike<number> };
    bestCandidate = candidateOf(b.gbs, b.nb, b.values);
  }
  return { best: bestCandidate, lpSolves, stats, nbLimit, lpLimitReached };
}
