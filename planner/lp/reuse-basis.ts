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

import { AT_LEAST, AT_MOST, type DenseLp, denseLp, denseViolatesAnyRow } from "./dense-lp.js";
import type { DenseSimplexResult, OptimalBasis } from "./dense-simplex.js";
import type { LinearProgram } from "./linear-program.js";

/**
 * Relative slack allowed in the feasibility and optimality tests (rounding, degenerate ties): the LP
 * screen's tolerance for an optimum's rows (screened-lp.ts SCREEN_FEASIBILITY_TOLERANCE).
 */
export const BASIS_TOLERANCE = 1e-9;
const TOLERANCE = BASIS_TOLERANCE;

/**
 * Solves `matrix` (k x k, row-major) `· x = rhs` in place by Gaussian elimination with partial
 * pivoting (zero entries skipped: these LPs' bases are mostly zeros, and a product with zero changes
 * no sum); `x` is left in `rhs`. False when the matrix is singular at this precision. The matrix is
 * left as its LU factors (P·A = L·U: U on and above the diagonal, L's multipliers below it, rows
 * swapped whole) and the row swap of each column in `swaps`, for solveTransposed.
 */
function solveSquare(matrix: Float64Array, rhs: Float64Array, k: number, swaps: Int32Array): boolean {
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
    swaps[col] = pivotRow;
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
    // Column `col` cleared below the diagonal; each row keeps its multiplier in its place (L).
    const p = matrix[col * k + col]!;
    for (let r = col + 1; r < k; r++) {
      const factor = matrix[r * k + col]! / p;
      if (factor === 0) continue;
      for (let c = col + 1; c < k; c++) {
        const u = matrix[col * k + c]!;
        if (u !== 0) matrix[r * k + c]! -= factor * u;
      }
      matrix[r * k + col] = factor;
      rhs[r]! -= factor * rhs[col]!;
    }
  }
  for (let r = k - 1; r >= 0; r--) {
    let sum = rhs[r]!;
    for (let c = r + 1; c < k; c++) {
      const u = matrix[r * k + c]!;
      if (u !== 0) sum -= u * rhs[c]!;
    }
    rhs[r] = sum / matrix[r * k + r]!;
  }
  return true;
}

/**
 * Solves Aᵀ · y = rhs in place with the factors solveSquare left of A (Aᵀ = Uᵀ·Lᵀ·P): Uᵀ·z = rhs
 * forward, Lᵀ·w = z backward, then y = Pᵀ·w (the swaps undone in reverse order).
 */
function solveTransposed(matrix: Float64Array, rhs: Float64Array, k: number, swaps: Int32Array): void {
  for (let i = 0; i < k; i++) {
    let sum = rhs[i]!;
    for (let j = 0; j < i; j++) {
      const u = matrix[j * k + i]!;
      if (u !== 0) sum -= u * rhs[j]!;
    }
    rhs[i] = sum / matrix[i * k + i]!;
  }
  for (let i = k - 1; i >= 0; i--) {
    let sum = rhs[i]!;
    for (let j = i + 1; j < k; j++) {
      const l = matrix[j * k + i]!;
      if (l !== 0) sum -= l * rhs[j]!;
    }
    rhs[i] = sum;
  }
  for (let col = k - 1; col >= 0; col--) {
    const r = swaps[col]!;
    if (r === col) continue;
    const swap = rhs[col]!;
    rhs[col] = rhs[r]!;
    rhs[r] = swap;
  }
}

/**
 * Scratch space for the k x k systems and their right-hand sides, reused from call to call (every
 * entry used is written first): a search tries a basis on thousands of LPs, and fresh arrays for each
 * are garbage to collect.
 */
let scratch = new Float64Array(16 * 16);
let primalScratch = new Float64Array(16);
let dualScratch = new Float64Array(16);
let swapScratch = new Int32Array(16);
let valuesScratch = new Float64Array(0);

function scratchMatrix(k: number): Float64Array {
  if (scratch.length < k * k) scratch = new Float64Array(k * k);
  if (primalScratch.length < k) {
    primalScratch = new Float64Array(k);
    dualScratch = new Float64Array(k);
    swapScratch = new Int32Array(k);
  }
  return scratch;
}

/**
 * The optimum of `lp` at `basis` when that basis is optimal for it (primal and dual feasible, checked
 * as above), else undefined. The LP must have the rows and variables the basis was found on.
 */
export function solveAtBasis(lp: LinearProgram, basis: OptimalBasis): DenseSimplexResult | undefined {
  return solveDenseAtBasis(denseLp(lp), basis);
}

/** solveAtBasis on the LP's dense form (dense-lp.ts), the form a search's hot path fills in place. */
export function solveDenseAtBasis(lp: DenseLp, basis: OptimalBasis): DenseSimplexResult | undefined {
  const n = lp.columns;
  const a = lp.coefficients;
  const k = basis.variables.length;
  const variables = basis.variables;
  const tightRows = basis.tightRows;
  if (tightRows.length !== k || k > n) return undefined;
  for (let r = 0; r < k; r++) if (tightRows[r]! >= lp.rows) return undefined;
  // Primal: the tight rows as equalities in the basic variables.
  const matrix = scratchMatrix(k);
  const x = primalScratch;
  for (let r = 0; r < k; r++) {
    const row = tightRows[r]! * n;
    for (let c = 0; c < k; c++) matrix[r * k + c] = a[row + variables[c]!]!;
    x[r] = lp.rhs[tightRows[r]!]!;
  }
  if (!solveSquare(matrix, x, k, swapScratch)) return undefined;
  // The point in scratch space until it passes every test (most failed tries end before that).
  if (valuesScratch.length !== n) valuesScratch = new Float64Array(n);
  const values = valuesScratch;
  values.fill(0);
  for (let c = 0; c < k; c++) {
    if (x[c]! < -TOLERANCE * Math.max(1, Math.abs(x[c]!))) return undefined;
    values[variables[c]!] = Math.max(0, x[c]!);
  }
  // The point meets every row: the very test the LP screen applies to an optimum (screened-lp.ts), so
  // an answer from here needs no second check.
  if (denseViolatesAnyRow(lp, values, TOLERANCE)) return undefined;
  // Dual: multipliers y of the tight rows with yᵀ A_B = c_B (the transposed system, with A_B's factors).
  const y = dualScratch;
  for (let c = 0; c < k; c++) y[c] = lp.objective[variables[c]!]!;
  solveTransposed(matrix, y, k, swapScratch);
  let yLargest = 0;
  for (let r = 0; r < k; r++) yLargest = Math.max(yLargest, Math.abs(y[r]!));
  for (let r = 0; r < k; r++) {
    const kind = lp.kinds[tightRows[r]!];
    // A tight `<=` row's multiplier is at most 0, a tight `>=` row's at least 0 (its slack's reduced cost).
    if ((kind === AT_MOST && y[r]! > TOLERANCE * yLargest) || (kind === AT_LEAST && y[r]! < -TOLERANCE * yLargest))
      return undefined;
  }
  for (let j = 0; j < n; j++) {
    const cost = lp.objective[j]!;
    let priced = 0;
    let size = Math.abs(cost);
    for (let r = 0; r < k; r++) {
      const coefficient = a[tightRows[r]! * n + j]!;
      if (coefficient === 0) continue;
      const term = y[r]! * coefficient;
      priced += term;
      size += Math.abs(term);
    }
    if (cost - priced < -TOLERANCE * size) return undefined;
  }
  let objective = 0;
  for (let j = 0; j < n; j++) objective += lp.objective[j]! * values[j]!;
  return { status: "optimal", values: values.slice(), objective, basis, pivots: 0 };
}
