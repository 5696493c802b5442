/**
 * A search's LPs answered in two tiers. The dense simplex (dense-simplex.ts) answers every LP, with
 * evidence checked against the LP: an optimal point that meets every row, or a Farkas certificate of
 * infeasibility with a clear margin. Those answers decide the search's steps: which LPs are feasible,
 * and which of two throughputs is larger when they differ by more than SCREEN_COMPARISON_MARGIN (far
 * above the two solvers' disagreement, measured at under 1e-7). The existing solvers
 * (solveLinearProgram: javascript-lp-solver, HiGHS) solve an LP only where its exact figures are
 * needed: the policies a search keeps or scores, comparisons closer than the margin, and LPs the dense
 * simplex does not settle (pivot bound, unbounded, a thin certificate, a point that fails its check),
 * so a search chooses what it chose with the existing solvers alone, to the last bit, for a fraction
 * of their time.
 */
import { type DenseLp, denseLp } from "./dense-lp.js";
import { type DenseSimplexResult, denseFarkasMargin, type OptimalBasis, solveDenseSimplex } from "./dense-simplex.js";
import type { LinearProgram, LpSolution } from "./linear-program.js";
import { BASIS_TOLERANCE, solveDenseAtBasis } from "./reuse-basis.js";
import { type LpSolvers, type SolveStats, solveLinearProgram } from "./solve-linear-program.js";

/** Relative difference below which two screened figures are compared by the existing solvers' exact ones. */
export const SCREEN_COMPARISON_MARGIN = 1e-6;
/**
 * Least Farkas margin (farkasMargin) for the dense simplex's infeasibility to stand alone: the
 * right-hand sides would have to move by 0.001% for the LP to become feasible, 10 times the relative
 * slack (1e-6) within which the existing path accepts a point as feasible.
 */
export const SCREEN_INFEASIBILITY_MARGIN = 1e-5;
/**
 * Relative violation of any row the dense simplex's optimal point may have (the existing path allows
 * 1e-6): checked by solveAtBasis (reuse-basis.ts), which every optimum here comes from.
 */
export const SCREEN_FEASIBILITY_TOLERANCE = BASIS_TOLERANCE;

export interface ScreenStats {
  /** LPs the dense simplex settled. */
  screened: number;
  /** Of those, LPs settled by an earlier LP's basis or certificate (WarmStart), without a simplex run. */
  warmStarts: number;
  /**
   * LPs it left to the existing solvers, by reason ("pivot-limit", "unbounded", "thin-certificate",
   * "unverified-optimum": the optimum's basis failed the optimality test, which includes meeting every
   * row within SCREEN_FEASIBILITY_TOLERANCE).
   */
  deferred: Record<string, number>;
  /** LPs the existing solvers solved (deferred ones, and those whose exact figures were needed). */
  referenceSolves: number;
  /** LPs whose exact solve disagreed with the dense simplex's status (the dense simplex's checked point is kept). */
  disagreements: number;
}

export function newScreenStats(): ScreenStats {
  return { screened: 0, warmStarts: 0, deferred: {}, referenceSolves: 0, disagreements: 0 };
}

/**
 * What a run of similar LPs (same rows and variables) carries from one LP to the next: the latest
 * distinct optimal bases, most recent first, tried before any simplex run (reuse-basis.ts), and the
 * latest Farkas certificate, tried on the next LP before a phase 1 (a proof of infeasibility checks
 * against any LP of the same rows: farkasMargin).
 */
export interface WarmStart {
  bases?: OptimalBasis[];
  farkas?: Float64Array;
}

/** Optimal bases a warm start keeps. */
const WARM_BASES = 8;

function sameBasis(a: OptimalBasis, b: OptimalBasis): boolean {
  if (a.variables.length !== b.variables.length) return false;
  for (let i = 0; i < a.variables.length; i++)
    if (a.variables[i] !== b.variables[i] || a.tightRows[i] !== b.tightRows[i]) return false;
  return true;
}

/** The answer from a warm start's bases or certificate, or undefined when none settles `lp`. */
function warmAnswer(lp: DenseLp, warmStart: WarmStart): DenseSimplexResult | undefined {
  for (const basis of warmStart.bases ?? []) {
    const answer = solveDenseAtBasis(lp, basis);
    if (answer) return answer;
  }
  const farkas = warmStart.farkas;
  if (farkas && denseFarkasMargin(lp, farkas) >= SCREEN_INFEASIBILITY_MARGIN)
    return { status: "infeasible", values: new Float64Array(0), objective: NaN, farkas, pivots: 0 };
  return undefined;
}

/** Records `answer` in the warm start: its basis first among the bases kept, or its certificate. */
function remember(warmStart: WarmStart, answer: DenseSimplexResult): void {
  const basis = answer.basis;
  // A basis already first stays first (the usual case: the last LP's basis answered this one too).
  if (basis && warmStart.bases?.[0] !== basis) {
    const bases = (warmStart.bases ?? []).filter((b) => !sameBasis(b, basis));
    warmStart.bases = [basis, ...bases].slice(0, WARM_BASES);
  }
  if (answer.farkas) warmStart.farkas = answer.farkas;
}

/** Where a screened search keeps its counters and finds the existing solvers. */
export interface ScreenContext {
  readonly solvers: LpSolvers;
  readonly solveStats: SolveStats;
  readonly screenStats: ScreenStats;
  /**
   * What a run of similar LPs carries from one to the next (WarmStart). Omit it to solve every LP from
   * scratch.
   */
  readonly warmStart?: WarmStart;
  /**
   * Solve every LP with the existing solvers alone and decide by their figures (the searches as they
   * were before screening: for tests and comparisons).
   */
  readonly referenceOnly?: boolean;
}

/** One LP's answer: the dense simplex's, with the existing solvers' exact one on demand. */
export interface ScreenedLp {
  readonly status: LpSolution["status"];
  /** The values the search decides with (the dense simplex's, or the exact ones when it deferred). */
  readonly values: Float64Array;
  /** The existing solvers' answer for the LP (solved once, on first call). */
  exact(): LpSolution;
}

/** Why the dense simplex's answer cannot stand alone, or undefined when it can. */
function whyDeferred(lp: DenseLp, dense: DenseSimplexResult): string | undefined {
  // Every optimum here is solveAtBasis's, whose point passed violatesAnyRow at SCREEN_FEASIBILITY_TOLERANCE.
  if (dense.status === "optimal") return undefined;
  if (dense.status === "infeasible")
    return denseFarkasMargin(lp, dense.farkas!) >= SCREEN_INFEASIBILITY_MARGIN ? undefined : "thin-certificate";
  return dense.status;
}

/**
 * Screens `lp`. `exactLp` gives the LP the existing solvers solve for the exact figures: the same LP,
 * or the one the search built before screening existed when `lp` is a cheaper construction of it.
 */
export function screenLinearProgram(
  lp: LinearProgram,
  context: ScreenContext,
  exactLp: () => LinearProgram = () => lp,
): ScreenedLp {
  return screenDenseLp(context.referenceOnly ? undefined : denseLp(lp), context, () => lp, exactLp);
}

/**
 * Screens the LP whose numbers `dense` holds (dense-lp.ts; read during the call only, so a search may
 * fill the same storage for its next LP), `lp` building it as a LinearProgram, which is done only for
 * the simplex or the existing solvers. `dense` may be undefined only with context.referenceOnly.
 */
export function screenDenseLp(
  dense: DenseLp | undefined,
  context: ScreenContext,
  lp: () => LinearProgram,
  exactLp: () => LinearProgram = lp,
): ScreenedLp {
  const { solvers, solveStats, screenStats } = context;
  let exactSolution: LpSolution | undefined;
  const solveExact = (): LpSolution => {
    if (!exactSolution) {
      screenStats.referenceSolves++;
      exactSolution = solveLinearProgram(exactLp(), solvers, { stats: solveStats });
    }
    return exactSolution;
  };
  if (context.referenceOnly || !dense) {
    const exact = solveExact();
    return { status: exact.status, values: exact.values, exact: () => exact };
  }
  const warmStart = context.warmStart;
  let answer: DenseSimplexResult | undefined = warmStart ? warmAnswer(dense, warmStart) : undefined;
  if (answer) {
    screenStats.warmStarts++;
    if (warmStart && answer.basis) remember(warmStart, answer);
  } else {
    const solved = solveDenseSimplex(lp());
    // An optimum stands only when its basis passes the optimality test on the LP as written (primal
    // and dual feasible, reuse-basis.ts), which also recomputes the point from the LP's own numbers.
    answer = solved.status === "optimal" ? solved.basis && solveDenseAtBasis(dense, solved.basis) : solved;
    if (answer && warmStart && whyDeferred(dense, answer) === undefined) remember(warmStart, answer);
  }
  const deferred = !answer ? "unverified-optimum" : whyDeferred(dense, answer);
  if (deferred !== undefined || !answer) {
    const reason = deferred ?? "unverified-optimum";
    screenStats.deferred[reason] = (screenStats.deferred[reason] ?? 0) + 1;
    const exact = solveExact();
    return { status: exact.status, values: exact.values, exact: () => exact };
  }
  screenStats.screened++;
  if (answer.status === "infeasible") return { status: "infeasible", values: answer.values, exact: solveExact };
  const checked = answer;
  return {
    status: "optimal",
    values: checked.values,
    exact: () => {
      const exact = solveExact();
      if (exact.status === "optimal") return exact;
      // The existing solvers gave no optimum for an LP the dense simplex solved with a checked point:
      // the search already went on with that point, so it is the answer (counted, never expected).
      screenStats.disagreements++;
      exactSolution = { status: "optimal", values: checked.values, objective: checked.objective, solver: exact.solver };
      return exactSolution;
    },
  };
}

/**
 * a - b, from the screened figures when they differ clearly (by more than SCREEN_COMPARISON_MARGIN of
 * the larger), else from the exact ones: its sign is the exact figures' in either case.
 */
export function screenedDifference(a: number, b: number, exactA: () => number, exactB: () => number): number {
  const difference = a - b;
  if (Math.abs(difference) > SCREEN_COMPARISON_MARGIN * Math.max(Math.abs(a), Math.abs(b))) return difference;
  return exactA() - exactB();
}
