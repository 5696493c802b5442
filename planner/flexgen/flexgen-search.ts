/**
 * FlexGen's policy search around its LP (experimental/cost_model.py: solve, get_nb_ub, best), ported
 * step for step: gbs = 1, 2, 3, 4, 8, 16, …; for each gbs the largest feasible nb by doubling then
 * binary search; nb scanned upward from 1 until throughput first drops; the search stops at the first
 * gbs for which nb = 1 is infeasible; ties keep the earlier candidate.
 */
import { type LpSolution } from "../lp/linear-program.js";
import { type SolveStats, solveLinearProgram } from "../lp/solve-linear-program.js";
import { buildFlexgenLp, type FixedPercents, type FlexgenLpInput, type FlexgenLpOutcome, flexgenOutcome } from "./flexgen-lp.js";

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
  readonly lpDeadlineMs?: number;
  /** Upper bound on gbs so a model with no memory limit in sight cannot loop forever. */
  readonly maxGbs?: number;
}

export interface FlexgenSearchResult {
  readonly best: FlexgenCandidate | undefined;
  readonly lpSolves: number;
  /** Every solved (gbs, nb) with its throughput, in search order (infeasible ones omitted). */
  readonly evaluated: readonly FlexgenCandidate[];
  readonly stats: SolveStats;
}

export function solveFlexgenLp(input: FlexgenLpInput, stats: SolveStats, deadlineMs?: number): { solution: LpSolution; outcome?: FlexgenLpOutcome } {
  const { lp, terms } = buildFlexgenLp(input);
  const solution = solveLinearProgram(lp, { stats, ...(deadlineMs !== undefined ? { deadlineMs } : {}) });
  if (solution.status !== "optimal") return { solution };
  return { solution, outcome: flexgenOutcome(input, terms, solution.values) };
}

export function searchFlexgen(input: FlexgenSearchInput): FlexgenSearchResult {
  const stats: SolveStats = { fastPath: 0, fallbacks: 0, confirmedInfeasible: 0, reasons: {} };
  let lpSolves = 0;
  const evaluated: FlexgenCandidate[] = [];
  const solve = (gbs: number, nb: number) => {
    lpSolves++;
    const lpInput: FlexgenLpInput = { ...input, gbs, bls: gbs * nb, ...(input.percent ? { percent: input.percent } : {}) };
    const { outcome } = solveFlexgenLp(lpInput, stats, input.lpDeadlineMs);
    if (outcome) evaluated.push({ gbs, nb, outcome });
    return outcome;
  };
  const nbUpperBound = (gbs: number): number => {
    let nb = 1;
    while (solve(gbs, nb)) nb *= 2;
    let left = Math.max(Math.floor(nb / 2), 1);
    let right = nb;
    while (left < right) {
      const mid = Math.floor((left + right) / 2);
      if (solve(gbs, mid)) left = mid + 1;
      else right = mid;
    }
    return left - 1;
  };

  let best: FlexgenCandidate | undefined;
  let bestThroughput = 0;
  const consider = (candidate: FlexgenCandidate) => {
    if (candidate.outcome.throughputTokensPerSecond > bestThroughput) {
      best = candidate;
      bestThroughput = candidate.outcome.throughputTokensPerSecond;
    }
  };
  const maxGbs = input.maxGbs ?? 1 << 20;
  let gbs = 1;
  for (;;) {
    if (input.gbs !== undefined) gbs = input.gbs;
    if (input.nb !== undefined) {
      const outcome = solve(gbs, input.nb);
      if (!outcome) break;
      consider({ gbs, nb: input.nb, outcome });
    } else {
      const nbUb = nbUpperBound(gbs);
      if (nbUb === 0) break;
      let previous = 0;
      for (let nb = 1; nb <= nbUb; nb++) {
        const outcome = solve(gbs, nb);
        if (!outcome) break;
        if (outcome.throughputTokensPerSecond < previous) break;
        previous = outcome.throughputTokensPerSecond;
        consider({ gbs, nb, outcome });
      }
    }
    if (input.gbs !== undefined) break;
    gbs = gbs < 4 ? gbs + 1 : gbs * 2;
    if (gbs > maxGbs) break;
  }
  return { best, lpSolves, evaluated, stats };
}
