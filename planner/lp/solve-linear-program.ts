/**
 * Solves a LinearProgram, deterministically: the answer depends on the LP alone, never on how busy the
 * machine is. javascript-lp-solver is the fast path, bounded by a pivot count (no clock); every answer
 * it gives is checked against the constraints; HiGHS (WebAssembly) is the fallback when the fast path
 * reaches its pivot bound, throws, returns a point that violates a constraint, or claims infeasibility
 * (which HiGHS then confirms). HiGHS runs to its own answer: the only clock is a generous wall-clock
 * safety net per LP (HIGHS_SAFETY_NET_SECONDS, thousands of times what these LPs take), whose hits are
 * counted in SolveStats so that a plan reports them instead of failing.
 *
 * The solvers are state passed in: `loadLpSolvers()` resolves to an LpSolvers (the HiGHS runtime and
 * the model it reloads for each LP) and `solveLinearProgram` takes it. Synchronous once loaded.
 */
import { createRequire } from "node:module";
import { type LinearProgram, type LpSolution, maxViolation, objectiveValue, violatesAnyRow } from "./linear-program.js";

const require = createRequire(import.meta.url);

interface JsLpModel {
  options?: { presolve?: boolean };
  optimize: string;
  opType: "min" | "max";
  constraints: Record<string, { min?: number; max?: number; equal?: number }>;
  variables: Record<string, Record<string, number>>;
}
interface JsLpResult {
  feasible: boolean;
  bounded?: boolean;
  result: number;
  [variable: string]: number | boolean | undefined;
}
interface JsLpSolver {
  Solve(model: JsLpModel): JsLpResult;
  Tableau: { prototype: { pivot: (...args: unknown[]) => unknown } };
}

/** The subset of the `highs` package's persistent API used here. */
interface HighsModel {
  readonly options: { set(values: Record<string, boolean | number | string>): unknown };
  passModel(model: unknown): unknown;
  run(): { modelStatus: number };
  getSolution(): { colValue: Float64Array };
  clearSolver(): unknown;
  /** Restarts the model's run clock: HiGHS's time_limit counts every run since the last reset. */
  zeroAllClocks(): unknown;
}
interface Highs {
  createModel(): HighsModel;
  readonly infinity: number;
  readonly constants: { modelStatus: Record<string, number> };
}

/** The loaded solvers one planning run solves its LPs with (see loadLpSolvers). */
export interface LpSolvers {
  /** The HiGHS WebAssembly runtime. */
  readonly highs: Highs;
  /**
   * The HiGHS model the fallback loads each LP into. Scratch space: every solve replaces the model,
   * clears the solver and restarts the clock, so nothing carries over from one LP to the next.
   */
  readonly highsModel: HighsModel;
}

const jsLp = require("javascript-lp-solver") as JsLpSolver;

/** Relative tolerance when checking a returned point against the constraints. */
export const FEASIBILITY_TOLERANCE = 1e-6;

/**
 * The fast path's pivot bound is this many pivots per row plus column of the LP (540 for FlexGen's
 * 16 x 11 LP, 700 for Spillway's 27 x 8). Measured over the searches' LPs (OPT-175B on the T4 and 160
 * other model x hardware x cost-model plans, about 330,000 LPs of 9-65 rows and 8-11 columns): the
 * fast path finishes every one in at most 45 pivots (1.67 per row plus column; Spillway's LPs at most
 * 20), so this bound (the pivot limit the solver always had, now without a clock beside it) is at
 * least 12 times what any of them needs. 3 FlexGen LPs make javascript-lp-solver cycle (a million
 * pivots in minutes); the bound hands those to HiGHS within milliseconds, as the clock did before.
 */
export const FAST_PATH_PIVOTS_PER_ROW_AND_COLUMN = 20;

/** The fast path's pivot bound for `lp`. */
export function fastPathPivotLimit(lp: LinearProgram): number {
  return FAST_PATH_PIVOTS_PER_ROW_AND_COLUMN * (lp.constraints.length + lp.variables.length);
}

/**
 * HiGHS's wall-clock safety net per LP, seconds: a guard against a runaway solve, not a limit normal
 * planning reaches (HiGHS takes well under 10 ms on these LPs, even on a saturated machine).
 */
export const HIGHS_SAFETY_NET_SECONDS = 30;

class PivotLimitReached extends Error {}

/**
 * The pivot budget of the fast-path solve in progress. javascript-lp-solver has no pivot limit of its
 * own, so one wrapper around its tableau's pivot counts against this budget; `solveFast` sets it just
 * before calling the library and clears it in `finally`, within one synchronous call, so it is never
 * seen by another solve (and the wrapper does nothing outside a solve). This is the module's only
 * mutable state besides the load-once cache of the default solvers.
 */
let pivotBudget: { pivots: number; readonly limit: number } | undefined;
const originalPivot = jsLp.Tableau.prototype.pivot;
jsLp.Tableau.prototype.pivot = function budgetedPivot(this: unknown, ...args: unknown[]) {
  if (pivotBudget && ++pivotBudget.pivots > pivotBudget.limit) throw new PivotLimitReached();
  return originalPivot.apply(this, args);
};

/** Load-once cache: the WebAssembly module is compiled once per process, and `planSync()` finds it. */
let defaultSolvers: LpSolvers | undefined;
let defaultSolversLoading: Promise<LpSolvers> | undefined;

/**
 * Loads the solvers (the HiGHS WebAssembly fallback). The first call loads them; later calls resolve to
 * the same LpSolvers at once. Pass the result to solveLinearProgram (and to planSync, which otherwise
 * uses these).
 */
export function loadLpSolvers(): Promise<LpSolvers> {
  defaultSolversLoading ??= (async () => {
    const loader = (await import("highs")).default as unknown as () => Promise<Highs>;
    const highs = await loader();
    const highsModel = highs.createModel();
    highsModel.options.set({ output_flag: false });
    defaultSolvers = { highs, highsModel };
    return defaultSolvers;
  })();
  return defaultSolversLoading;
}

/** Thrown when an LP needs HiGHS and the solvers given were lazyLpSolvers() before HiGHS was loaded. */
export class HighsNotLoaded extends Error {
  constructor() {
    super("HiGHS is not loaded: await loadLpSolvers(), or plan through withLpSolvers()");
  }
}

/**
 * Solvers that load nothing: their HiGHS is the one loadLpSolvers() loaded, and until then using it
 * throws HighsNotLoaded. Most searches never need HiGHS (javascript-lp-solver answers every LP the
 * screen leaves to the existing solvers), so they can run before its WebAssembly is compiled.
 */
export function lazyLpSolvers(): LpSolvers {
  const loaded = () => {
    if (!defaultSolvers) throw new HighsNotLoaded();
    return defaultSolvers;
  };
  return {
    get highs() {
      return loaded().highs;
    },
    get highsModel() {
      return loaded().highsModel;
    },
  };
}

/**
 * Runs `run`, a deterministic computation, with lazyLpSolvers(); only when an LP needs HiGHS
 * (HighsNotLoaded) does it load HiGHS and run it again from the start, with the same answer as if
 * HiGHS had been loaded first. Spares a command the HiGHS load when no LP falls back to it.
 */
export async function withLpSolvers<T>(run: (solvers: LpSolvers) => T): Promise<T> {
  if (defaultSolvers) return run(defaultSolvers);
  try {
    return run(lazyLpSolvers());
  } catch (error) {
    if (!(error instanceof HighsNotLoaded)) throw error;
  }
  return run(await loadLpSolvers());
}

/** The solvers an earlier `loadLpSolvers()` loaded; throws if it has not resolved yet. */
export function loadedLpSolvers(): LpSolvers {
  if (!defaultSolvers) throw new Error("the LP solvers are not loaded: await loadLpSolvers() before planning");
  return defaultSolvers;
}

export interface SolveOptions {
  /** Force one solver (for tests and comparisons); default "auto", the fast path then the fallback. */
  readonly solver?: "auto" | "highs" | "javascript-lp-solver";
  /** Counters updated by this solve (which path answered, and why the fallback ran). */
  readonly stats?: SolveStats;
  /** The fast path's pivot bound (default: fastPathPivotLimit(lp)). */
  readonly maxPivots?: number;
  /** HiGHS's wall-clock safety net for this LP, seconds (default HIGHS_SAFETY_NET_SECONDS). */
  readonly safetyNetSeconds?: number;
}

export interface SolveStats {
  fastPath: number;
  fallbacks: number;
  confirmedInfeasible: number;
  /** Why the fallback ran: "pivot-limit", "threw", "claimed-unbounded", "violates-constraints", … */
  reasons: Record<string, number>;
  /** LPs left unsolved because HiGHS reached its wall-clock safety net. */
  wallClockLimitHits: number;
}

export function newSolveStats(): SolveStats {
  return { fastPath: 0, fallbacks: 0, confirmedInfeasible: 0, reasons: {}, wallClockLimitHits: 0 };
}

function toJsLp(lp: LinearProgram): JsLpModel {
  const constraints: JsLpModel["constraints"] = {};
  const variables: JsLpModel["variables"] = {};
  const n = lp.variables.length;
  const columns: Record<string, number>[] = [];
  for (let j = 0; j < n; j++) {
    const column: Record<string, number> = { __objective: lp.objective[j]! };
    columns.push(column);
    variables[lp.variables[j]!] = column;
  }
  for (let i = 0; i < lp.constraints.length; i++) {
    const c = lp.constraints[i]!;
    const key = `c${i}`;
    constraints[key] = c.op === "<=" ? { max: c.rhs } : c.op === ">=" ? { min: c.rhs } : { equal: c.rhs };
    for (let j = 0; j < n; j++) {
      const coef = c.coefficients[j]!;
      if (coef !== 0) columns[j]![key] = coef;
    }
  }
  return { optimize: "__objective", opType: "min", constraints, variables, options: { presolve: false } };
}

const NO_VALUES = new Float64Array(0);

/** The fast path's answer, or why it gave none. */
function solveFast(lp: LinearProgram, maxPivots: number): LpSolution | string {
  const model = toJsLp(lp);
  let result: JsLpResult;
  pivotBudget = { pivots: 0, limit: maxPivots };
  try {
    result = jsLp.Solve(model);
  } catch (error) {
    return error instanceof PivotLimitReached ? "pivot-limit" : "threw";
  } finally {
    pivotBudget = undefined;
  }
  if (!result.feasible) return "claimed-infeasible";
  if (result.bounded === false) return "claimed-unbounded";
  const values = new Float64Array(lp.variables.length);
  for (let j = 0; j < values.length; j++) {
    const x = result[lp.variables[j]!];
    values[j] = typeof x === "number" ? x : 0;
  }
  if (violatesAnyRow(lp, values, FEASIBILITY_TOLERANCE)) return "violates-constraints";
  return { status: "optimal", values, objective: objectiveValue(lp, values), solver: "javascript-lp-solver" };
}

function solveHighs(lp: LinearProgram, solvers: LpSolvers, safetyNetSeconds: number): LpSolution {
  const { highs, highsModel: model } = solvers;
  const inf = highs.infinity;
  const starts: number[] = [0];
  const indices: number[] = [];
  const coefficients: number[] = [];
  const rowLower: number[] = [];
  const rowUpper: number[] = [];
  for (const c of lp.constraints) {
    for (let j = 0; j < c.coefficients.length; j++) {
      const coef = c.coefficients[j]!;
      if (coef === 0) continue;
      indices.push(j);
      coefficients.push(coef);
    }
    starts.push(indices.length);
    rowLower.push(c.op === "<=" ? -inf : c.rhs);
    rowUpper.push(c.op === ">=" ? inf : c.rhs);
  }
  const numCols = lp.variables.length;
  const numRows = lp.constraints.length;
  model.clearSolver();
  model.passModel({
    numCols,
    numRows,
    colCost: Array.from(lp.objective),
    colLower: new Array(numCols).fill(0),
    colUpper: new Array(numCols).fill(inf),
    rowLower,
    rowUpper,
    matrix: { format: "csr", numRows, numCols, starts, indices, values: coefficients },
  });
  // Presolve costs more than it saves on LPs this small; if HiGHS cannot classify the LP that way, it
  // tries again with presolve, then with its interior-point solver. HiGHS's time limit counts every run
  // of the model since its clock was last reset, so the clock restarts here: the safety net bounds this
  // LP's attempts together, whatever the LPs before it took.
  const codes = highs.constants.modelStatus;
  const attempts: Record<string, string>[] = [
    { presolve: "off", solver: "simplex" },
    { presolve: "on", solver: "simplex" },
    { presolve: "on", solver: "ipm" },
  ];
  model.zeroAllClocks();
  let status = -1;
  for (const attempt of attempts) {
    model.clearSolver();
    model.options.set({ ...attempt, time_limit: safetyNetSeconds });
    status = model.run().modelStatus;
    if (
      status === codes.optimal ||
      status === codes.infeasible ||
      status === codes.unbounded ||
      status === codes.timeLimit
    )
      break;
  }
  if (status === codes.timeLimit)
    return { status: "wall-clock-limit", values: NO_VALUES, objective: NaN, solver: "highs" };
  if (status === codes.infeasible) return { status: "infeasible", values: NO_VALUES, objective: NaN, solver: "highs" };
  if (status === codes.unbounded || status === codes.unboundedOrInfeasible)
    return { status: "unbounded", values: NO_VALUES, objective: NaN, solver: "highs" };
  if (status !== codes.optimal) throw new Error(`HiGHS could not solve the LP (model status ${status})`);
  const primal = model.getSolution().colValue;
  const values = new Float64Array(numCols);
  for (let j = 0; j < numCols; j++) values[j] = Math.max(0, primal[j] ?? 0);
  const { violation, where } = maxViolation(lp, values);
  if (!(violation <= FEASIBILITY_TOLERANCE * 10))
    throw new Error(`HiGHS returned a point violating ${where} by ${violation}`);
  return { status: "optimal", values, objective: objectiveValue(lp, values), solver: "highs" };
}

/**
 * Solves `lp` with `solvers`. The result's status is "wall-clock-limit" only when HiGHS reached its
 * safety net (counted in `stats.wallClockLimitHits`); callers treat it as "no answer for this LP".
 */
export function solveLinearProgram(lp: LinearProgram, solvers: LpSolvers, options: SolveOptions = {}): LpSolution {
  const stats = options.stats;
  const safetyNetSeconds = options.safetyNetSeconds ?? HIGHS_SAFETY_NET_SECONDS;
  const highs = () => {
    const solution = solveHighs(lp, solvers, safetyNetSeconds);
    if (stats && solution.status === "wall-clock-limit") stats.wallClockLimitHits++;
    return solution;
  };
  if (options.solver === "highs") return highs();
  const fast = solveFast(lp, options.maxPivots ?? fastPathPivotLimit(lp));
  if (typeof fast !== "string") {
    if (stats) stats.fastPath++;
    return fast;
  }
  if (options.solver === "javascript-lp-solver") {
    if (fast === "claimed-infeasible")
      return { status: "infeasible", values: NO_VALUES, objective: NaN, solver: "javascript-lp-solver" };
    throw new Error(`javascript-lp-solver failed: ${fast}`);
  }
  const checked = highs();
  if (stats) {
    if (fast === "claimed-infeasible" && checked.status === "infeasible") stats.confirmedInfeasible++;
    else {
      stats.fallbacks++;
      stats.reasons[fast] = (stats.reasons[fast] ?? 0) + 1;
    }
  }
  return checked;
}
