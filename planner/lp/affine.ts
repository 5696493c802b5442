/**
 * Affine expressions (constant + Σ coefficient·variable) over a fixed, small set of LP variables,
 * stored densely so that building thousands of LPs in a search stays cheap.
 */
export class VariableSpace {
  readonly names: readonly string[];
  private readonly index: ReadonlyMap<string, number>;

  constructor(names: readonly string[]) {
    this.names = names;
    this.index = new Map(names.map((n, i) => [n, i]));
  }

  indexOf(name: string): number {
    const i = this.index.get(name);
    if (i === undefined) throw new Error(`unknown LP variable ${name}`);
    return i;
  }

  constant(value: number): Affine {
    const coefficients: number[] = [];
    for (let i = 0; i < this.names.length; i++) coefficients.push(0);
    return new Affine(this, value, coefficients);
  }

  /** factor · variable */
  term(factor: number, name: string): Affine {
    const e = this.constant(0);
    e.coefficients[this.indexOf(name)] = factor;
    return e;
  }

  /** Σ factor · variable over the given names. */
  sum(factor: number, ...names: string[]): Affine {
    const e = this.constant(0);
    for (const n of names) e.coefficients[this.indexOf(n)]! += factor;
    return e;
  }
}

export class Affine {
  /** Plain arrays: small typed arrays cost far more to allocate than they save here. */
  constructor(
    readonly space: VariableSpace,
    public constant: number,
    readonly coefficients: number[],
  ) {}

  plus(...others: Affine[]): Affine {
    const c = this.coefficients.slice();
    let k = this.constant;
    for (const o of others) {
      k += o.constant;
      for (let i = 0; i < c.length; i++) c[i]! += o.coefficients[i]!;
    }
    return new Affine(this.space, k, c);
  }

  times(factor: number): Affine {
    const from = this.coefficients;
    const c: number[] = [];
    for (let i = 0; i < from.length; i++) c.push(from[i]! * factor);
    return new Affine(this.space, this.constant * factor, c);
  }

  /** this + other · (-1), term by term (the same arithmetic as this.plus(other.times(-1))). */
  minus(other: Affine): Affine {
    const c = this.coefficients.slice();
    for (let i = 0; i < c.length; i++) c[i]! += other.coefficients[i]! * -1;
    return new Affine(this.space, this.constant + other.constant * -1, c);
  }

  evaluate(values: ArrayLike<number>): number {
    let sum = this.constant;
    for (let i = 0; i < this.coefficients.length; i++) sum += this.coefficients[i]! * (values[i] ?? 0);
    return sum;
  }
}
