/**
 * A LinearProgram's numbers in flat typed arrays (row-major coefficients, right-hand sides, row kinds,
 * objective): the form the LP screen's hot path reads (reuse-basis.ts, dense-simplex.ts farkasMargin).
 * A search fills one such LP in place for each of thousands of LPs of the same shape (lp-family.ts
 * LinearProgramFamily.fill), where a LinearProgram is hundreds of small objects and arrays per LP to
 * allocate and collect. The numbers are the LinearProgram's own, so every test on it gives, to the
 * last bit, what the same test on the LinearProgram gives.
 */
import type { ConstraintOp, LinearProgram } from "./linear-program.js";

/** Row kinds: `<=`, `>=`, `=`. */
export const AT_MOST = 0;
export const AT_LEAST = 1;
export const EQUAL = 2;

export interface DenseLp {
  readonly rows: number;
  readonly columns: number;
  /** rows x columns, row-major. */
  readonly coefficients: Float64Array;
  readonly rhs: Float64Array;
  /** AT_MOST, AT_LEAST or EQUAL per row. */
  readonly kinds: Uint8Array;
  readonly objective: Float64Array;
}

export function rowKind(op: ConstraintOp): number {
  return op === "<=" ? AT_MOST : op === ">=" ? AT_LEAST : EQUAL;
}

/** Storage for an LP of `rows` x `columns`, every number 0 and every row `<=` until filled. */
export function emptyDenseLp(rows: number, columns: number): DenseLp {
  return {
    rows,
    columns,
    coefficients: new Float64Array(rows * columns),
    rhs: new Float64Array(rows),
    kinds: new Uint8Array(rows),
    objective: new Float64Array(columns),
  };
}

/** `lp` as a DenseLp (its numbers copied). */
export function denseLp(lp: LinearProgram): DenseLp {
  const n = lp.variables.length;
  const dense = emptyDenseLp(lp.constraints.length, n);
  lp.constraints.forEach((c, i) => {
    for (let j = 0; j < n; j++) dense.coefficients[i * n + j] = c.coefficients[j]!;
    dense.rhs[i] = c.rhs;
    dense.kinds[i] = rowKind(c.op);
  });
  for (let j = 0; j < n; j++) dense.objective[j] = lp.objective[j]!;
  return dense;
}

/**
 * Whether `values` (one per column) breaks any row or bound by more than `tolerance`, relative to each
 * row's scale: linear-program.ts violatesAnyRow's test, term for term, on the dense form.
 */
export function denseViolatesAnyRow(lp: DenseLp, values: Float64Array, tolerance: number): boolean {
  const n = lp.columns;
  for (let i = 0; i < n; i++) {
    const x = values[i]!;
    if (!Number.isFinite(x) || -x > tolerance) return true;
  }
  const a = lp.coefficients;
  for (let r = 0; r < lp.rows; r++) {
    let lhs = 0;
    const rhs = lp.rhs[r]!;
    let scale = Math.abs(rhs);
    const base = r * n;
    for (let i = 0; i < n; i++) {
      const coefficient = a[base + i]!;
      // A zero coefficient adds nothing to the row (the values are finite, checked above).
      if (coefficient === 0) continue;
      const term = coefficient * values[i]!;
      lhs += term;
      scale = Math.max(scale, Math.abs(term));
    }
    const diff = lhs - rhs;
    const kind = lp.kinds[r];
    const excess = kind === AT_MOST ? diff : kind === AT_LEAST ? -diff : Math.abs(diff);
    if (excess / Math.max(1, scale) > tolerance) return true;
  }
  return false;
}

/** c·x: linear-program.ts objectiveValue, term for term, on the dense form. */
export function denseObjectiveValue(lp: DenseLp, values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < lp.columns; i++) sum += lp.objective[i]! * (values[i] ?? 0);
  return sum;
}
