/**
 * Solves a LinearProgram: javascript-lp-solver as the fast path, under a deadline it cannot overrun
 * (every simplex pivot checks it), every answer checked against the constraints, and HiGHS (WebAssembly)
 * as the fallback when the fast path runs out of time, throws, returns a point that violates a
 * constraint, or claims infeasibility (which HiGHS then confirms). Synchronous once `loadLpSolvers()`
 * has resolved.
 */
import { createRequire } from "node:module";
import { type LinearProgram, type LpSolution, maxViolation, objectiveValue } from "./linear-program.js";

const require = createRequire(import.meta.url);

interface JsLpModel {
  options?: { presolve?: boolean };
  optimize: string;
  opType: "min" | "max";
  constraints: Record<string, { min?: number; max?: number; equal?: number }>;
  variables: Record<string, Record<string, number>>;
}
interface JsLpResult { feasible: boolean; bounded?: boolean; result: number; [variable: string]: number | boolean | undefined }
interface JsLpSolver { Solve(model: JsLpModel): JsLpResult; Tableau: { prototype: { pivot: (...args: unknown[]) => unknown } } }

/** The subset of the `highs` package's persistent API used here. */
interface HighsModel {
  readonly options: { set(values: Record<string, boolean | number | string>): unknown };
  passModel(model: unknown): unknown;
  run(): { modelStatus: number };
  getSolution(): { colValue: Float64Array };
  clearSolver(): unknown;
}
interface Highs {
  createModel(): HighsModel;
  readonly infinity: number;
  readonly constants: { modelStatus: Record<string, number> };
}

const jsLp = require("javascript-lp-solver") as JsLpSolver;

/** Relative tolerance when checking a returned point against the constraints. */
export const FEASIBILITY_TOLERANCE = 1e-6;

class DeadlineExceeded extends Error {}

// The deadline guard: one wrapper around the tableau's pivot, active only while a solve is running.
let pivotDeadline = Infinity;
let pivots = 0;
let pivotLimit = Infinity;
const originalPivot = jsLp.Tableau.prototype.pivot;
jsLp.Tableau.prototype.pivot = function guardedPivot(this: unknown, ...args: unknown[]) {
  // The clock is read on the first pivot and every 64th after it; the pivot count bounds the rest.
  if (++pivots > pivotLimit || ((pivots & 63) === 1 && performance.now() > pivotDeadline)) throw new DeadlineExceeded();
  return originalPivot.apply(this, args);
};

let highs: { runtime: Highs; model: HighsModel } | undefined;
let highsLoading: Promise<Highs> | undefined;

/** Loads the HiGHS fallback (WebAssembly). Call once before solving; later calls are free. */
export async function loadLpSolvers(): Promise<void> {
  if (highs) return;
  highsLoading ??= (async () => {
    const loader = (await import("highs")).default as unknown as () => Promise<Highs>;
    return loader();
  })();
  const runtime = await highsLoading;
  if (highs) return;
  const model = runtime.createModel();
  model.options.set({ output_flag: false });
  highs = { runtime, model };
}

export interface SolveOptions {
  /** Wall-clock budget for the fast path, milliseconds. */
  readonly deadlineMs?: number;
  /** Force the fallback (for tests and comparisons). */
  readonly solver?: "auto" | "highs" | "javascript-lp-solver";
  /** Counters updated by this solve (which path answered, and why the fallback ran). */
  readonly stats?: SolveStats;
}

export interface SolveStats {
  fastPath: number;
  fallbacks: number;
  confirmedInfeasible: number;
  reasons: Record<string, number>;
}

export function newSolveStats(): SolveStats {
  return { fastPath: 0, fallbacks: 0, confirmedInfeasible: 0, reasons: {} };
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

function solveFast(lp: LinearProgram, deadlineMs: number): LpSolution | string {
  pivotDeadline = performance.now() + deadlineMs;
  pivots = 0;
  pivotLimit = 20 * (lp.constraints.length + lp.variables.length);
  let result: JsLpResult;
  try {
    result = jsLp.Solve(toJsLp(lp));
  } catch (error) {
    return error instanceof DeadlineExceeded ? "deadline" : "threw";
  } finally {
    pivotDeadline = Infinity;
    pivotLimit = Infinity;
  }
  if (!result.feasible) return "claimed-infeasible";
  if (result.bounded === false) return "claimed-unbounded";
  const values = new Float64Array(lp.variables.length);
  for (let j = 0; j < values.length; j++) {
    const x = result[lp.variables[j]!];
    values[j] = typeof x === "number" ? x : 0;
  }
  const { violation } = maxViolation(lp, values);
  if (!(violation <= FEASIBILITY_TOLERANCE)) return "violates-constraints";
  return { status: "optimal", values, objective: objectiveValue(lp, values), solver: "javascript-lp-solver" };
}

function solveHighs(lp: LinearProgram, deadlineMs: number): LpSolution {
  if (!highs) throw new Error("HiGHS is not loaded: await loadLpSolvers() before planning");
  const { runtime, model } = highs;
  const inf = runtime.infinity;
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
    numCols, numRows,
    colCost: Array.from(lp.objective),
    colLower: new Array(numCols).fill(0),
    colUpper: new Array(numCols).fill(inf),
    rowLower, rowUpper,
    matrix: { format: "csr", numRows, numCols, starts, indices, values: coefficients },
  });
  // Presolve costs more than it saves on LPs this small; if HiGHS cannot classify the LP or runs out of
  // time that way, it tries again with presolve, then with its interior-point solver.
  const codes = runtime.constants.modelStatus;
  const attempts: Record<string, string>[] = [{ presolve: "off", solver: "simplex" }, { presolve: "on", solver: "simplex" }, { presolve: "on", solver: "ipm" }];
  let status = -1;
  for (const attempt of attempts) {
    model.clearSolver();
    model.options.set({ ...attempt, time_limit: Math.max(2, (deadlineMs / 1000) * 100) });
    status = model.run().modelStatus;
    if (status === codes.optimal || status === codes.infeasible || status === codes.unbounded) break;
  }
  if (status === codes.infeasible) return { status: "infeasible", values: NO_VALUES, objective: NaN, solver: "highs" };
  if (status === codes.unbounded || status === codes.unboundedOrInfeasible) return { status: "unbounded", values: NO_VALUES, objective: NaN, solver: "highs" };
  if (status !== codes.optimal) throw new Error(`HiGHS could not solve the LP (model status ${status})`);
  const primal = model.getSolution().colValue;
  const values = new Float64Array(numCols);
  for (let j = 0; j < numCols; j++) values[j] = Math.max(0, primal[j] ?? 0);
  const { violation, where } = maxViolation(lp, values);
  if (!(violation <= FEASIBILITY_TOLERANCE * 10)) throw new Error(`HiGHS returned a point violating ${where} by ${violation}`);
  return { status: "optimal", values, objective: objectiveValue(lp, values), solver: "highs" };
}

export function solveLinearProgram(lp: LinearProgram, options: SolveOptions = {}): LpSolution {
  const deadlineMs = options.deadlineMs ?? 50;
  if (options.solver === "highs") return solveHighs(lp, deadlineMs);
  const fast = solveFast(lp, deadlineMs);
  if (typeof fast !== "string") {
    if (options.stats) options.stats.fastPath++;
    return fast;
  }
  if (options.solver === "javascript-lp-solver") {
    if (fast === "claimed-infeasible") return { status: "infeasible", values: NO_VALUES, objective: NaN, solver: "javascript-lp-solver" };
    throw new Error(`javascript-lp-solver failed: ${fast}`);
  }
  const checked = solveHighs(lp, deadlineMs);
  const stats = options.stats;
  if (stats) {
    if (fast === "claimed-infeasible" && checked.status === "infeasible") stats.confirmedInfeasible++;
    else {
      stats.fallbacks++;
      stats.reasons[fast] = (stats.reasons[fast] ?? 0) + 1;
    }
  }
  return checked;
}
