/** Tick values for a log axis: 1, 2, 3, 5 × 10^k inside [min, max] (vega's own log ticks drop labels unevenly). */
export function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  if (!(min > 0) || !(max >= min)) return ticks;
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 3, 5]) {
      const v = Number((m * 10 ** e).toPrecision(1));
      if (v >= min && v <= max) ticks.push(v);
    }
  }
  return ticks;
}

/** A quantitative position channel on a log scale over [min, max], ticked by logTicks. */
export function logPosition(field: string, min: number, max: number, title: string) {
  return {
    field,
    type: "quantitative",
    scale: { type: "log", domain: [min, max] as number[], nice: false },
    axis: { values: logTicks(min, max), format: "~g" },
    title,
  } as const;
}
