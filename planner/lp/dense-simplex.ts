/**
 * A dense two-phase primal simplex for the searches' small LPs (8-11 columns, 9-65 rows), written from
 * the textbook method (e.g. Chvátal, "Linear Programming", ch. 2-3 and 8; Bertsimas & Tsitsiklis,
 * "Introduction to Linear Optimization", 3.3-3.5): rows scaled to unit size and oriented so every
 * right-hand side is non-negative; a slack per `<=` row, a surplus per `>=` row, an artificial per
 * `>=` and `=` row; phase 1 minimises the artificials' sum, phase 2 the objective; the entering column
 * by Dantzig's rule (most negative reduced cost) until pivots stall, then Bland's rule (smallest index),
 * which cannot cycle; a pivot bound as a last guard.
 *
 * It answers with evidence a caller can check against the LP itself: an optimal point (checked with
 * violatesAnyRow by the caller), or for an infeasible LP the phase-1 row multipliers, a Farkas
 * certificate (farkasMargin checks it). Pure and deterministic: the answer depends on the LP alone.
 */
import { AT_LEAST, AT_MOST, type DenseLp, denseLp } from "./dense-lp.js";
import type { LinearProgram } from "./linear-program.js";

export type DenseSimplexStatus = "optimal" | "infeasible" | "unbounded" | "pivot-limit";

export interface DenseSimplexResult {
  readonly status: DenseSimplexStatus;
  /** Variable values in variable order (optimal only; empty otherwise). */
  readonly values: Float64Array;
  /** c·x at `values` (optimal only; NaN otherwise). */
  readonly objective: number;
  /**
   * Infeasible only: one multiplier per row of the LP as written, a Farkas certificate (y ≥ 0 on `>=`
   * rows, y ≤ 0 on `<=` rows, free on `=` rows, yᵀA ≤ 0 and yᵀb > 0): see farkasMargin.
   */
  readonly farkas?: Float64Array;
  /** Optimal only, when no artificial is left in the basis: the optimal basis, to try first on a similar LP (reuse-basis.ts). */
  readonly basis?: OptimalBasis;
  readonly pivots: number;
}

/**
 * An optimal basis by what it names in the LP as written: the basic variables, and the rows held tight
 * (equalities, and inequalities whose slack is not basic); as many of each.
 */
export interface OptimalBasis {
  readonly variables: Int32Array;
  readonly tightRows: Int32Array;
}

/** The working tableau: rows 0..m-1 the constraints, row m the reduced costs; the last column the right-hand sides. */
interface Tableau {
  readonly t: Float64Array;
  readonly basis: Int32Array;
  readonly m: number;
  readonly width: number;
  pivots: number;
  readonly pivotLimit: number;
  /** Scratch: the pivot row's nonzero columns. */
  readonly nonzero: Int32Array;
}

/** Pivots on (row, column): the row scaled to a 1 there, the column cleared from every other row. */
function pivot(tableau: Tableau, row: number, column: number): void {
  const { t, m, width, nonzero } = tableau;
  const pr = row * width;
  const inverse = 1 / t[pr + column]!;
  let count = 0;
  for (let j = 0; j < width; j++) {
    const a = t[pr + j]!;
    if (a === 0) continue;
    t[pr + j] = a * inverse;
    nonzero[count++] = j;
  }
  t[pr + column] = 1;
  for (let i = 0; i <= m; i++) {
    if (i === row) continue;
    const ir = i * width;
    const factor = t[ir + column]!;
    if (factor === 0) continue;
    for (let k = 0; k < count; k++) {
      const j = nonzero[k]!;
      t[ir + j]! -= factor * t[pr + j]!;
    }
    t[ir + column] = 0;
  }
  tableau.basis[row] = column;
  tableau.pivots++;
}

/**
 * Runs the simplex on the tableau's current objective row over the columns [0, enterable): Dantzig's
 * rule until STALL_PIVOTS degenerate pivots in a row, then Bland's. "optimal", "unbounded" or "pivot-limit".
 */
function iterate(
  tableau: Tableau,
  enterable: number,
  keepArtificialsAtZero = false,
): "optimal" | "unbounded" | "pivot-limit" {
  const { t, basis, m, width } = tableau;
  const rhs = width - 1;
  const objectiveRow = m * width;
  let bland = false;
  let stalled = 0;
  for (;;) {
    let entering = -1;
    let best = -ZERO;
    for (let j = 0; j < enterable; j++) {
      const d = t[objectiveRow + j]!;
      if (d < best) {
        entering = j;
        if (bland) break;
        best = d;
      }
    }
    if (entering < 0) return "optimal";
    if (tableau.pivots >= tableau.pivotLimit) return "pivot-limit";
    // Harris's two-pass ratio test: the largest step any row allows with a slack of HARRIS_SLACK, then
    // among the rows that bind within it the largest pivot element (numerically the safest); under
    // Bland's rule the exact smallest ratio, ties to the smallest basic index. Right-hand sides a
    // rounding error below zero count as zero: a negative ratio would step backwards.
    let leaving = -1;
    let ratio = Infinity;
    let element = 0;
    if (!bland) {
      let bound = Infinity;
      for (let i = 0; i < m; i++) {
        const a = t[i * width + entering]!;
        if (a > PIVOT_ELEMENT) bound = Math.min(bound, (Math.max(0, t[i * width + rhs]!) + HARRIS_SLACK) / a);
      }
      for (let i = 0; i < m; i++) {
        const a = t[i * width + entering]!;
        if (a <= PIVOT_ELEMENT) continue;
        const r = Math.max(0, t[i * width + rhs]!) / a;
        if (r <= bound && a > element) {
          leaving = i;
          ratio = r;
          element = a;
        }
      }
    } else {
      for (let i = 0; i < m; i++) {
        const a = t[i * width + entering]!;
        if (a <= PIVOT_ELEMENT) continue;
        const r = Math.max(0, t[i * width + rhs]!) / a;
        if (leaving < 0 || r < ratio || (r === ratio && basis[i]! < basis[leaving]!)) {
          leaving = i;
          ratio = r;
          element = a;
        }
      }
    }
    if (keepArtificialsAtZero)
      for (let i = 0; i < m; i++) {
        if (basis[i]! < enterable || Math.abs(t[i * width + entering]!) <= PIVOT_ELEMENT) continue;
        // An artificial left in the basis (at zero, in a row the others imply) leaves it now, at zero,
        // before the entering column could move it off zero.
        leaving = i;
        ratio = 0;
        break;
      }
    if (leaving < 0) return "unbounded";
    stalled = ratio <= ZERO ? stalled + 1 : 0;
    if (stalled >= STALL_PIVOTS) bland = true;
    pivot(tableau, leaving, entering);
  }
}

/** Reduced costs smaller than this (rows and objective are scaled to unit size) count as zero. */
const ZERO = 1e-11;
/** The smallest pivot element the ratio test takes. */
const PIVOT_ELEMENT = 1e-9;
/** Harris's ratio test lets a basic variable go this far below zero, to pick a larger pivot element. */
const HARRIS_SLACK = 1e-10;
/** The smallest pivot element used to drive an artificial out of the basis after phase 1. */
const SOUND_PIVOT = 1e-7;
/** Phase 1 ends infeasible when the artificials' scaled sum stays above this. */
const PHASE1_FEASIBLE = 1e-9;
/** Pivots in a row that do not move the objective before Dantzig's rule gives way to Bland's. */
const STALL_PIVOTS = 8;

const EMPTY = new Float64Array(0);

/** Pivots allowed per row plus column of the LP (the same bound the javascript-lp-solver path has). */
export const DENSE_SIMPLEX_PIVOTS_PER_ROW_AND_COLUMN = 20;

/**
 * The tableau's storage, reused from solve to solve (cleared first): a search solves thousands of LPs,
 * and a fresh tableau for each is garbage to collect. Nothing of it outlives a solve.
 */
let tableauStorage = new Float64Array(64 * 64);

function scratchTableau(size: number): Float64Array {
  if (tableauStorage.length < size) tableauStorage = new Float64Array(size);
  tableauStorage.fill(0, 0, size);
  return tableauStorage;
}

export function solveDenseSimplex(lp: LinearProgram, maxPivots?: number): DenseSimplexResult {
  const n = lp.variables.length;
  const rows = lp.constraints;
  const m = rows.length;
  const pivotLimit = maxPivots ?? DENSE_SIMPLEX_PIVOTS_PER_ROW_AND_COLUMN * (m + n);

  // Orientation (+1/-1) and scale of each row, so that the stored row has rhs >= 0 and entries <= 1.
  const orientation = new Float64Array(m);
  const scale = new Float64Array(m);
  /** 0: `<=` after orientation, 1: `>=`, 2: `=`. */
  const kind = new Uint8Array(m);
  let inequalities = 0;
  let artificials = 0;
  for (let i = 0; i < m; i++) {
    const c = rows[i]!;
    let biggest = Math.abs(c.rhs);
    for (let j = 0; j < n; j++) biggest = Math.max(biggest, Math.abs(c.coefficients[j]!));
    if (!(biggest > 0) || !Number.isFinite(biggest)) biggest = 1;
    scale[i] = biggest;
    const flip = c.rhs < 0 || (c.rhs === 0 && c.op === ">=");
    orientation[i] = flip ? -1 : 1;
    const op = flip ? (c.op === "<=" ? ">=" : c.op === ">=" ? "<=" : "=") : c.op;
    kind[i] = op === "<=" ? 0 : op === ">=" ? 1 : 2;
    if (kind[i] !== 2) inequalities++;
    if (kind[i] !== 0) artificials++;
  }
  // Columns: structural, then slack/surplus (one per inequality), then artificials; then the rhs.
  const firstSlack = n;
  const firstArtificial = n + inequalities;
  const columns = firstArtificial + artificials;
  const width = columns + 1;
  const rhs = columns;
  const t = scratchTableau((m + 1) * width);
  const basis = new Int32Array(m);
  /** The column that was basic in each row at the start (its unit column): it reads the row's multiplier. */
  const unitColumn = new Int32Array(m);
  let slack = firstSlack;
  let artificial = firstArtificial;
  /** The row of each slack or surplus column (by column - firstSlack). */
  const slackRow = new Int32Array(inequalities);
  /** The row of each artificial column (by column - firstArtificial). */
  const artificialRow = new Int32Array(artificials);
  for (let i = 0; i < m; i++) {
    const c = rows[i]!;
    const f = orientation[i]! / scale[i]!;
    const base = i * width;
    for (let j = 0; j < n; j++) t[base + j] = c.coefficients[j]! * f;
    t[base + rhs] = c.rhs * f;
    if (kind[i] === 0) {
      t[base + slack] = 1;
      basis[i] = slack;
      slackRow[slack - firstSlack] = i;
      unitColumn[i] = slack++;
    } else {
      if (kind[i] === 1) {
        slackRow[slack - firstSlack] = i;
        t[base + slack++] = -1;
      }
      t[base + artificial] = 1;
      artificialRow[artificial - firstArtificial] = i;
      basis[i] = artificial;
      unitColumn[i] = artificial++;
    }
  }
  const objectiveRow = m * width;
  const tableau: Tableau = { t, basis, m, width, pivots: 0, pivotLimit, nonzero: new Int32Array(width) };
  // Phase 1: minimise the sum of the artificials (each costs 1): reduced costs are minus the column
  // sums over the rows an artificial starts in.
  if (artificials > 0) {
    for (let i = 0; i < m; i++) {
      if (kind[i] === 0) continue;
      const ir = i * width;
      for (let j = 0; j < firstArtificial; j++) t[objectiveRow + j]! -= t[ir + j]!;
      t[objectiveRow + rhs]! -= t[ir + rhs]!;
    }
    const phase1 = iterate(tableau, firstArtificial);
    if (phase1 === "pivot-limit")
      return { status: "pivot-limit", values: EMPTY, objective: NaN, pivots: tableau.pivots };
    // -t[rhs] of the objective row is the artificials' sum at the optimum.
    if (-t[objectiveRow + rhs]! > PHASE1_FEASIBLE) {
      // Multipliers: an artificial's reduced cost is 1 - y_i, a slack's -y_i (oriented, scaled rows).
      const farkas = new Float64Array(m);
      for (let i = 0; i < m; i++) {
        const u = unitColumn[i]!;
        const y = (u >= firstArtificial ? 1 : 0) - t[objectiveRow + u]!;
        farkas[i] = (y * orientation[i]!) / scale[i]!;
      }
      return { status: "infeasible", values: EMPTY, objective: NaN, farkas, pivots: tableau.pivots };
    }
    // Drive artificials still basic (at zero) out of the basis where a structural or slack column can
    // replace them with a pivot element of a sound size; a row where none can keeps its artificial, which
    // phase 2 keeps at zero.
    for (let i = 0; i < m; i++) {
      if (basis[i]! < firstArtificial) continue;
      const ir = i * width;
      let column = -1;
      let biggest = SOUND_PIVOT;
      for (let j = 0; j < firstArtificial; j++) {
        const a = Math.abs(t[ir + j]!);
        if (a > biggest) {
          biggest = a;
          column = j;
        }
      }
      if (column >= 0) pivot(tableau, i, column);
    }
  }

  // Phase 2: the objective, scaled to unit size, priced out over the current basis.
  let costScale = 0;
  for (let j = 0; j < n; j++) costScale = Math.max(costScale, Math.abs(lp.objective[j]!));
  if (!(costScale > 0) || !Number.isFinite(costScale)) costScale = 1;
  for (let j = 0; j < width; j++) t[objectiveRow + j] = j < n ? lp.objective[j]! / costScale : 0;
  for (let i = 0; i < m; i++) {
    const b = basis[i]!;
    const cost = b < n ? lp.objective[b]! / costScale : 0;
    if (cost === 0) continue;
    const ir = i * width;
    for (let j = 0; j < width; j++) t[objectiveRow + j]! -= cost * t[ir + j]!;
  }
  const phase2 = iterate(tableau, firstArtificial, true);
  if (phase2 !== "optimal") return { status: phase2, values: EMPTY, objective: NaN, pivots: tableau.pivots };
  const values = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    const b = basis[i]!;
    if (b < n) values[b] = Math.max(0, t[i * width + rhs]!);
  }
  let objective = 0;
  for (let j = 0; j < n; j++) objective += lp.objective[j]! * values[j]!;
  return { status: "optimal", values, objective, pivots: tableau.pivots, ...optimalBasis() };

  function optimalBasis(): { basis?: OptimalBasis } {
    const variables: number[] = [];
    const notTight = new Uint8Array(m);
    for (let i = 0; i < m; i++) {
      const b = basis[i]!;
      if (b < n) variables.push(b);
      else if (b < firstArtificial) notTight[slackRow[b - firstSlack]!] = 1;
      // An artificial still basic marks a row the others imply (phase 1 could not clear it): it is not
      // among the rows that define the point, and the optimality test checks that it holds.
      else notTight[artificialRow[b - firstArtificial]!] = 1;
    }
    const tightRows: number[] = [];
    for (let i = 0; i < m; i++) if (!notTight[i]) tightRows.push(i);
    if (tightRows.length !== variables.length) return {};
    variables.sort((a, b) => a - b);
    return { basis: { variables: Int32Array.from(variables), tightRows: Int32Array.from(tightRows) } };
  }
}

/** Multipliers this small next to the largest are rounding noise (the simplex works to about 1e-16). */
const NEGLIGIBLE_MULTIPLIER = 1e-12;
/** yᵀA_j may be this far above 0, relative to Σ|y_i a_ij|, and still count as ≤ 0 (rounding). */
const COLUMN_ROUNDING = 1e-9;

/**
 * How strongly `y` proves `lp` infeasible: yᵀb over Σ|y_i b_i| when y is a Farkas certificate (signs
 * right on every inequality row, yᵀA_j ≤ 0 for every column up to rounding), else 0. For any x ≥ 0 that
 * met every row, yᵀAx ≥ yᵀb > 0 would contradict yᵀAx ≤ 0; a margin of δ means the right-hand sides
 * would have to move by about a fraction δ of their size for the LP to become feasible.
 */
export function farkasMargin(lp: LinearProgram, y: ArrayLike<number>): number {
  return denseFarkasMargin(denseLp(lp), y);
}

/** farkasMargin on the LP's dense form (dense-lp.ts). */
export function denseFarkasMargin(lp: DenseLp, y: ArrayLike<number>): number {
  const n = lp.columns;
  const m = lp.rows;
  const a = lp.coefficients;
  let yb = 0;
  let ybSize = 0;
  const column = new Float64Array(n);
  const columnSize = new Float64Array(n);
  let largest = 0;
  for (let i = 0; i < m; i++) largest = Math.max(largest, Math.abs(y[i] ?? 0));
  if (!Number.isFinite(largest)) return 0;
  for (let i = 0; i < m; i++) {
    const kind = lp.kinds[i];
    let yi = y[i] ?? 0;
    // A multiplier of the wrong sign on an inequality, or one at the rounding level of the largest, is
    // dropped (set to 0): what remains is checked as a certificate on its own.
    if (
      (kind === AT_MOST && yi > 0) ||
      (kind === AT_LEAST && yi < 0) ||
      Math.abs(yi) <= NEGLIGIBLE_MULTIPLIER * largest
    )
      yi = 0;
    if (yi === 0) continue;
    const rhs = lp.rhs[i]!;
    yb += yi * rhs;
    ybSize += Math.abs(yi * rhs);
    for (let j = 0; j < n; j++) {
      const term = yi * a[i * n + j]!;
      column[j]! += term;
      columnSize[j]! += Math.abs(term);
    }
  }
  // yᵀA_j may exceed 0 by rounding (the simplex's, and this sum's): about 1e-12 of the terms' size.
  for (let j = 0; j < n; j++) if (column[j]! > COLUMN_ROUNDING * columnSize[j]!) return 0;
  if (!(yb > 0) || !(ybSize > 0)) return 0;
  return yb / ybSize;
}
