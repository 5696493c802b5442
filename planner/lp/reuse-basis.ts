/**
 * Warm start by basis reuse: a search solves runs of LPs that differ only a little (one GPU batch size,
 * the number of GPU batches stepping up), and the optimal basis of one is often optimal for the next.
 * Given a basis (dense-simplex.ts OptimalBasis: the basic variables and the rows held tight), the point
 * it defines solves a k x k linear system (k basic variables, k tight rows, every other variable 0),
 * and its row multipliers solve the transposed system. When the point meets every row (primal
 * feasible) and the multipliers price every column out (dual feasible: no reduced cost below zero, the
 * right sign on every tight inequality), the point is optimal by LP duality: the textbook optimality
 * test of the simplex method (e.g. Bertsimas & Tsitsiklis, "Introduction to Linear Optimization",
 * 3.1). Otherwise the caller solves from scratch.
 */
import type { DenseSimplexResult, OptimalBasis } from "./dense-simplex.js";
import { type LinearProgram, violatesAnyRow } from "./linear-program.js";

/**
 * Relative slack allowed in the feasibility and optimality tests (rounding, degenerate ties): the LP
 * screen's tolerance for an optimum's rows (screened-lp.ts SCREEN_FEASIBILITY_TOLERANCE).
 */
export const BASIS_TOLERANCE = 1e-9;
const TOLERANCE = BASIS_TOLERANCE;

/**
 * Solves `matrix` (k x k, row-major) `· x = rhs` in place by Gaussian elimination with partial
 * pivoting; `x` is left in `rhs`. False when the matrix is singular at this precision.
 */
function solveSquare(matrix: Float64Array, rhs: Float64Array, k: number): boolean {
  let size = 0;
  for (let i = 0; i < k * k; i++) size = Math.max(size, Math.abs(matrix[i]!));
  if (!(size > 0) || !Number.isFinite(size)) return false;
  for (let col = 0; col < k; col++) {
    let pivotRow = col;
    let biggest = Math.abs(matrix[col * k + col]!);
    for (let r = col + 1; r < k; r++) {
      const a = Math.abs(matrix[r * k + col]!);
      if (a > biggest) {
        biggest = a;
        pivotRow = r;
      }
    }
    if (biggest <= 1e-12 * size) return false;
    if (pivotRow !== col) {
      for (let c = 0; c < k; c++) {
        const swap = matrix[col * k + c]!;
        matrix[col * k + c] = matrix[pivotRow * k + c]!;
        matrix[pivotRow * k + c] = swap;
      }
      const swap = rhs[col]!;
      rhs[col] = rhs[pivotRow]!;
      rhs[pivotRow] = swap;
    }
    const p = matrix[col * k + col]!;
    for (let r = col + 1; r < k; r++) {
      const factor = matrix[r * k + col]! / p;
      if (factor === 0) continue;
      for (let c = col; c < k; c++) matrix[r * k + c]! -= factor * matrix[col * k + c]!;
      rhs[r]! -= factor * rhs[col]!;
    }
  }
  for (let r = k - 1; r >= 0; r--) {
    let sum = rhs[r]!;
    for (let c = r + 1; c < k; c++) sum -= matrix[r * k + c]! * rhs[c]!;
    rhs[r] = sum / matrix[r * k + r]!;
  }
  return true;
}

/**
 * Scratch space for the k x k systems, reused from call to call (every entry used is written first):
 * a search tries a basis on thousands of LPs, and a fresh matrix for each is garbage to collect.
 */
let scratch = new Float64Array(16 * 16);

function scratchMatrix(k: number): Float64Array {
  if (scratch.length < k * k) scratch = new Float64Array(k * k);
  return scratch;
}

/**
 * The optimum of `lp` at `basis` when that basis is optimal for it (primal and dual feasible, checked
 * as above), else undefined. The LP must have the rows and variables the basis was found on.
 */
export function solveAtBasis(lp: LinearProgram, basis: OptimalBasis): DenseSimplexResult | undefined {
  const n = lp.variables.length;
  const rows = lp.constraints;
  const k = basis.variables.length;
  if (basis.tightRows.length !== k || k > n) return undefined;
  for (let r = 0; r < k; r++) if (basis.tightRows[r]! >= rows.length) return undefined;
  // Primal: the tight rows as equalities in the basic variables.
  const matrix = scratchMatrix(k);
  const x = new Float64Array(k);
  for (let r = 0; r < k; r++) {
    const row = rows[basis.tightRows[r]!]!;
    for (let c = 0; c < k; c++) matrix[r * k + c] = row.coefficients[basis.variables[c]!]!;
    x[r] = row.rhs;
  }
  if (!solveSquare(matrix, x, k)) return undefined;
  const values = new Float64Array(n);
  for (let c = 0; c < k; c++) {
    if (x[c]! < -TOLERANCE * Math.max(1, Math.abs(x[c]!))) return undefined;
    values[basis.variables[c]!] = Math.max(0, x[c]!);
  }
  // The point meets every row: the very test the LP screen applies to an optimum (screened-lp.ts), so
  // an answer from here needs no second check.
  if (violatesAnyRow(lp, values, TOLERANCE)) return undefined;
  // Dual: multipliers y of the tight rows with yᵀ A_B = c_B (the transposed system).
  const y = new Float64Array(k);
  for (let r = 0; r < k; r++) {
    const row = rows[basis.tightRows[r]!]!;
    for (let c = 0; c < k; c++) matrix[c * k + r] = row.coefficients[basis.variables[c]!]!;
  }
  for (let c = 0; c < k; c++) y[c] = lp.objective[basis.variables[c]!]!;
  if (!solveSquare(matrix, y, k)) return undefined;
  let yLargest = 0;
  for (let r = 0; r < k; r++) yLargest = Math.max(yLargest, Math.abs(y[r]!));
  for (let r = 0; r < k; r++) {
    const op = rows[basis.tightRows[r]!]!.op;
    // A tight `<=` row's multiplier is at most 0, a tight `>=` row's at least 0 (its slack's reduced cost).
    if ((op === "<=" && y[r]! > TOLERANCE * yLargest) || (op === ">=" && y[r]! < -TOLERANCE * yLargest))
      return undefined;
  }
  for (let j = 0; j < n; j++) {
    let priced = 0;
    let size = Math.abs(lp.objective[j]!);
    for (let r = 0; r < k; r++) {
      const term = y[r]! * rows[basis.tightRows[r]!]!.coefficients[j]!;
      priced += term;
      size += Math.abs(term);
    }
    if (lp.objective[j]! - priced < -TOLERANCE * size) return undefined;
  }
  let objective = 0;
  for (let j = 0; j < n; j++) objective += lp.objective[j]! * values[j]!;
  return { status: "optimal", values, objective, basis, pivots: 0 };
}
