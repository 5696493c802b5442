/**
 * Where a run's time went against where the simulation put it, slice kind by slice kind: the simulator and
 * the runtime write one trace format (simulator/chrome-trace-writer.ts), so lining them up is a pure
 * function of the two event lists. A slice kind is a trace slice's name ("compute", "load-cache", ...) in
 * one phase (prefill: token 0; decode: the later tokens).
 */
import type { ChromeTraceEvent } from "./chrome-trace-writer.js";

export type SlicePhase = "prefill" | "decode";

export interface SliceFigures {
  readonly count: number;
  readonly medianSeconds: number;
  readonly totalSeconds: number;
}

export interface SliceComparison {
  readonly name: string;
  readonly phase: SlicePhase;
  readonly simulated?: SliceFigures;
  readonly measured?: SliceFigures;
}

/** Each slice kind's count, median and total duration, in seconds. */
export function traceSlices(events: readonly ChromeTraceEvent[]): Map<string, SliceFigures> {
  const durations = new Map<string, number[]>();
  for (const e of events) {
    if (e.ph !== "X" || e.dur === undefined) continue;
    const key = sliceKey(e.name, e.args.token === 0 ? "prefill" : "decode");
    let list = durations.get(key);
    if (!list) durations.set(key, (list = []));
    list.push(e.dur);
  }
  const out = new Map<string, SliceFigures>();
  for (const [key, list] of durations) {
    list.sort((a, b) => a - b);
    const middle = list.length >> 1;
    const median = list.length % 2 === 1 ? list[middle]! : (list[middle - 1]! + list[middle]!) / 2;
    // Trace times are microseconds: seconds at the end, so that a median or total is one rounding away.
    out.set(key, {
      count: list.length,
      medianSeconds: median / 1e6,
      totalSeconds: list.reduce((a, b) => a + b, 0) / 1e6,
    });
  }
  return out;
}

/** The slice kinds of either trace, the largest measured total first (then the largest simulated one). */
export function compareTraceSlices(
  simulated: readonly ChromeTraceEvent[],
  measured: readonly ChromeTraceEvent[],
): SliceComparison[] {
  const s = traceSlices(simulated);
  const m = traceSlices(measured);
  const rows: SliceComparison[] = [];
  for (const key of new Set([...s.keys(), ...m.keys()])) {
    const [name, phase] = splitKey(key);
    rows.push({
      name,
      phase,
      ...(s.has(key) ? { simulated: s.get(key)! } : {}),
      ...(m.has(key) ? { measured: m.get(key)! } : {}),
    });
  }
  const total = (f?: SliceFigures) => f?.totalSeconds ?? 0;
  return rows.sort(
    (a, b) =>
      total(b.measured) - total(a.measured) ||
      total(b.simulated) - total(a.simulated) ||
      a.name.localeCompare(b.name) ||
      a.phase.localeCompare(b.phase),
  );
}

function sliceKey(name: string, phase: SlicePhase): string {
  return `${phase}\u0000${name}`;
}

function splitKey(key: string): [string, SlicePhase] {
  const at = key.indexOf("\u0000");
  return [key.slice(at + 1), key.slice(0, at) as SlicePhase];
}
