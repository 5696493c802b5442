/**
 * The largest value in [low, high) for which `ok` holds, where `ok` holds up to some value and not beyond it:
 * `ok(low)` is taken as true and `ok(high)` as false (neither is called). Binary search, about log2(high - low)
 * calls of `ok`.
 */
export function lastTrue(low: number, high: number, ok: (value: number) => boolean): number {
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (ok(mid)) low = mid;
    else high = mid;
  }
  return low;
}
