/**
 * A family of LPs whose rows are affine in one parameter (the block size, the number of GPU batches):
 * built twice, at x1 and x2, and instantiated at any x by interpolating every coefficient and
 * right-hand side, c(x) = c(x1) + (x - x1) · (c(x2) - c(x1)) / (x2 - x1), instead of being rebuilt term
 * by term. The objective is the caller's (it is rarely affine in the parameter itself). An instance is
 * either a LinearProgram (at) or written into a DenseLp in place (fill), with the same numbers.
 */
import { type DenseLp, denseLp, emptyDenseLp } from "./dense-lp.js";
import type { LinearConstraint, LinearProgram } from "./linear-program.js";

export class LinearProgramFamily {
  private readonly first: LinearProgram;
  private readonly slope: readonly LinearConstraint[];
  /** The same numbers as `first` and `slope`, flat (dense-lp.ts). */
  private readonly firstDense: DenseLp;
  private readonly slopeCoefficients: Float64Array;
  private readonly slopeRhs: Float64Array;
  /** The coefficients that change with x (non-zero slope): the only ones fill writes. */
  private readonly changing: Int32Array;
  /** The objectives of the LPs built at x1 and x2 (for a caller that interpolates a scaled objective). */
  readonly objectives: readonly [readonly number[], readonly number[]];

  /** `build(x)` builds the family's LP at x; it is called at x1 and x2 only. */
  constructor(
    build: (x: number) => LinearProgram,
    private readonly x1: number,
    x2: number,
  ) {
    this.first = build(x1);
    const second = build(x2);
    this.objectives = [this.first.objective, second.objective];
    const step = x2 - x1;
    this.slope = second.constraints.map((c, i) => {
      const o = this.first.constraints[i]!;
      return {
        ...c,
        coefficients: c.coefficients.map((x, j) => (x - o.coefficients[j]!) / step),
        rhs: (c.rhs - o.rhs) / step,
      };
    });
    this.firstDense = denseLp(this.first);
    const slopeDense = denseLp({
      variables: this.first.variables,
      objective: this.first.objective,
      constraints: this.slope,
    });
    this.slopeCoefficients = slopeDense.coefficients;
    this.slopeRhs = slopeDense.rhs;
    const changing: number[] = [];
    this.slopeCoefficients.forEach((slope, i) => {
      if (slope !== 0) changing.push(i);
    });
    this.changing = Int32Array.from(changing);
  }

  /** The LP at `x`, with `objective`. */
  at(x: number, objective: readonly number[]): LinearProgram {
    const d = x - this.x1;
    const constraints: LinearConstraint[] = [];
    for (let i = 0; i < this.first.constraints.length; i++) {
      const c = this.first.constraints[i]!;
      const s = this.slope[i]!;
      const coefficients: number[] = [];
      for (let j = 0; j < c.coefficients.length; j++) coefficients.push(c.coefficients[j]! + d * s.coefficients[j]!);
      constraints.push({ name: c.name, op: c.op, coefficients, rhs: c.rhs + d * s.rhs });
    }
    return { variables: this.first.variables, objective, constraints };
  }

  /**
   * Storage of the family's shape for fill: its row kinds, and the coefficients that do not change with
   * x (c + (x - x1) · 0, as at() computes them), already set.
   */
  emptyDenseLp(): DenseLp {
    const first = this.firstDense;
    const dense = emptyDenseLp(first.rows, first.columns);
    dense.kinds.set(first.kinds);
    for (let i = 0; i < first.coefficients.length; i++) dense.coefficients[i] = first.coefficients[i]! + 0;
    return dense;
  }

  /**
   * Writes the LP at `x` (x ≥ x1), with `objective`, into `into`, which must come from this family's
   * emptyDenseLp: at(x, objective)'s numbers (up to the sign of a zero), writing only what changes with x.
   */
  fill(x: number, objective: ArrayLike<number>, into: DenseLp): void {
    const d = x - this.x1;
    const first = this.firstDense;
    const a = first.coefficients;
    const s = this.slopeCoefficients;
    const out = into.coefficients;
    const changing = this.changing;
    for (let c = 0; c < changing.length; c++) {
      const i = changing[c]!;
      out[i] = a[i]! + d * s[i]!;
    }
    for (let i = 0; i < first.rows; i++) into.rhs[i] = first.rhs[i]! + d * this.slopeRhs[i]!;
    for (let j = 0; j < first.columns; j++) into.objective[j] = objective[j]!;
  }
}
