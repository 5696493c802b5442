/**
 * A bounded nonlinear least-squares solver for `spillway calibrate`: minimises the sum of squared
 * residuals over a box by a projected Levenberg-Marquardt iteration on forward-difference Jacobians.
 * Deterministic (no randomness, a fixed cap on iterations) and a pure function of its arguments.
 */

/** Forward-difference step in each coordinate. */
const JACOBIAN_STEP = 1e-4;

export const sumSquares = (v: readonly number[]) => v.reduce((a, x) => a + x * x, 0);

/** Solves the symmetric system a x = b (Gaussian elimination with partial pivoting); a is n x n row-major. */
function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[p]![c]!)) p = r;
    [m[c], m[p]] = [m[p]!, m[c]!];
    const pivot = m[c]![c]!;
    if (pivot === 0) continue;
    for (let r = c + 1; r < n; r++) {
      const f = m[r]![c]! / pivot;
      for (let k = c; k <= n; k++) m[r]![k]! -= f * m[c]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= m[r]![k]! * x[k]!;
    x[r] = m[r]![r]! === 0 ? 0 : s / m[r]![r]!;
  }
  return x;
}

/**
 * Minimises sum(residuals(x)^2) over the box [lower, upper]^n from x = 0: Levenberg-Marquardt with
 * Marquardt's diagonal scaling, coordinates at a bound whose gradient points out of the box held
 * there, each step projected into the box and taken only if it lowers the sum.
 */
export function levenbergMarquardt(
  residuals: (x: readonly number[]) => number[],
  n: number,
  lower: number,
  upper: number,
  iterations: number,
): { x: number[]; value: number; iterations: number } {
  let x = new Array<number>(n).fill(0);
  let r = residuals(x);
  let value = sumSquares(r);
  let damping = 1e-3;
  let done = 0;
  for (; done < iterations && value > 0; done++) {
    const jacobian = x.map((xi, i) => {
      const step = xi + JACOBIAN_STEP > upper ? -JACOBIAN_STEP : JACOBIAN_STEP;
      const moved = residuals(x.map((v, k) => (k === i ? v + step : v)));
      return moved.map((m, j) => (m - r[j]!) / step);
    });
    const gradient = jacobian.map((column) => column.reduce((a, c, j) => a + c * r[j]!, 0));
    const normal = jacobian.map((ci) => jacobian.map((ck) => ci.reduce((a, c, j) => a + c * ck[j]!, 0)));
    const free = x
      .map((_, i) => i)
      .filter((i) => !((x[i]! <= lower && gradient[i]! > 0) || (x[i]! >= upper && gradient[i]! < 0)));
    let accepted = false;
    for (let trial = 0; trial < 12 && !accepted; trial++) {
      const a = free.map((i) => free.map((k) => normal[i]![k]! + (i === k ? damping * (normal[i]![i]! + 1e-12) : 0)));
      const delta = solve(
        a,
        free.map((i) => -gradient[i]!),
      );
      const next = [...x];
      free.forEach((i, f) => (next[i] = Math.min(upper, Math.max(lower, x[i]! + delta[f]!))));
      if (next.every((v, i) => v === x[i])) break;
      const nextR = residuals(next);
      const nextValue = sumSquares(nextR);
      if (nextValue < value) {
        const gain = value - nextValue;
        x = next;
        r = nextR;
        value = nextValue;
        damping = Math.max(damping / 4, 1e-12);
        accepted = true;
        if (gain <= 1e-15 * (1 + value)) return { x, value, iterations: done + 1 };
      } else damping *= 8;
    }
    if (!accepted) break;
  }
  return { x, value, iterations: done };
}
