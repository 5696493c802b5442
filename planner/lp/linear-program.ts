/**
 * A small linear program in a solver-neutral, dense form: minimise c·x subject to linear rows, all
 * variables non-negative. Built by the cost models, solved by solve-linear-program.ts.
 */
import { PlanError } from "../plan-error.js";
import { type Affine, VariableSpace } from "./affine.js";

export type ConstraintOp = "<=" | ">=" | "=";

export interface LinearConstraint {
  readonly name: string;
  /** Dense coefficients, one per variable. */
  readonly coefficients: readonly number[];
  readonly op: ConstraintOp;
  readonly rhs: number;
}

export interface LinearProgram {
  readonly variables: readonly string[];
  /** Minimised; dense, one per variable. */
  readonly objective: readonly number[];
  readonly constraints: readonly LinearConstraint[];
}

/** "wall-clock-limit": no answer, the fallback solver reached its safety net (see solve-linear-program.ts). */
export type LpStatus = "optimal" | "infeasible" | "unbounded" | "wall-clock-limit";

export interface LpSolution {
  readonly status: LpStatus;
  /** Variable values in variable order (empty unless optimal). */
  readonly values: Float64Array;
  readonly objective: number;
  /** Which solver produced the accepted answer. */
  readonly solver: "javascript-lp-solver" | "highs";
}

function nonFinite(what: string): PlanError {
  return new PlanError(
    `the cost model's linear program cannot be built: ${what} (the model's sizes or the hardware's rates are too extreme for the arithmetic)`,
  );
}

/** Collects rows written as `lhs op rhs` with affine sides. */
export class LinearProgramBuilder {
  readonly space: VariableSpace;
  private readonly rows: LinearConstraint[] = [];
  private objective: number[];

  constructor(variables: readonly string[]) {
    for (const name of variables)
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`bad LP variable name ${name}`);
    this.space = new VariableSpace(variables);
    this.objective = variables.map(() => 0);
  }

  minimise(e: Affine): this {
    e.coefficients.forEach((c, i) => {
      if (!Number.isFinite(c)) throw nonFinite(`the objective has a coefficient ${c} on ${this.space.names[i]}`);
    });
    this.objective = e.coefficients.slice();
    return this;
  }

  /**
   * Adds `lhs op rhs`, moving every constant to the right-hand side. A row with a coefficient or a
   * right-hand side that is not finite (sizes or rates so extreme that the arithmetic overflows) is
   * refused with a PlanError naming the row: no solver is handed it.
   */
  add(name: string, lhs: Affine, op: ConstraintOp, rhs: Affine | number): this {
    const right = typeof rhs === "number" ? this.space.constant(rhs) : rhs;
    const diff = lhs.minus(right);
    diff.coefficients.forEach((c, i) => {
      if (!Number.isFinite(c)) throw nonFinite(`row ${name} has a coefficient ${c} on ${this.space.names[i]}`);
    });
    if (!Number.isFinite(diff.constant)) throw nonFinite(`row ${name} has a right-hand side ${-diff.constant}`);
    this.rows.push({ name, coefficients: diff.coefficients, op, rhs: -diff.constant });
    return this;
  }

  build(): LinearProgram {
    return { variables: this.space.names, objective: this.objective, constraints: [...this.rows] };
  }
}

/** Largest violation of any row or bound by `values`, relative to each row's scale. */
export function maxViolation(lp: LinearProgram, values: ArrayLike<number>): { violation: number; where: string } {
  let worst = 0;
  let where = "";
  for (let i = 0; i < lp.variables.length; i++) {
    const x = values[i] ?? 0;
    if (!Number.isFinite(x)) return { violation: Infinity, where: `${lp.variables[i]} is ${x}` };
    if (-x > worst) {
      worst = -x;
      where = `${lp.variables[i]} >= 0`;
    }
  }
  for (const c of lp.constraints) {
    let lhs = 0;
    let scale = Math.abs(c.rhs);
    for (let i = 0; i < c.coefficients.length; i++) {
      const term = c.coefficients[i]! * (values[i] ?? 0);
      lhs += term;
      scale = Math.max(scale, Math.abs(term));
    }
    const diff = lhs - c.rhs;
    const excess = c.op === "<=" ? diff : c.op === ">=" ? -diff : Math.abs(diff);
    const relative = excess / Math.max(1, scale);
    if (relative > worst) {
      worst = relative;
      where = c.name;
    }
  }
  return { violation: worst, where };
}

/**
 * Whether `values` breaks any row or bound by more than `tolerance`: the same test as
 * `maxViolation(lp, values).violation > tolerance` (rows whose violation is NaN count as not broken,
 * as there), without building the answer's description; the fast path runs it on every LP it solves.
 */
export function violatesAnyRow(lp: LinearProgram, values: ArrayLike<number>, tolerance: number): boolean {
  const n = lp.variables.length;
  for (let i = 0; i < n; i++) {
    const x = values[i] ?? 0;
    if (!Number.isFinite(x) || -x > tolerance) return true;
  }
  for (const c of lp.constraints) {
    let lhs = 0;
    let scale = Math.abs(c.rhs);
    const coefficients = c.coefficients;
    for (let i = 0; i < coefficients.length; i++) {
      const term = coefficients[i]! * (values[i] ?? 0);
      lhs += term;
      scale = Math.max(scale, Math.abs(term));
    }
    const diff = lhs - c.rhs;
    const excess = c.op === "<=" ? diff : c.op === ">=" ? -diff : Math.abs(diff);
    if (excess / Math.max(1, scale) > tolerance) return true;
  }
  return false;
}

export function objectiveValue(lp: LinearProgram, values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < lp.objective.length; i++) sum += lp.objective[i]! * (values[i] ?? 0);
  return sum;
}
