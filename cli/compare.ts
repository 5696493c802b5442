/** `spillway compare`: the plan's prediction, the simulation and the measured run side by side. */
import { formatBytes, formatSeconds } from "../core/units.js";
import type { Plan } from "../planner/plan.js";
import type { RunResult } from "../runtime/run.js";
import type { SimulationResult } from "../simulator/simulate.js";
import { SIM_RESOURCES } from "../simulator/task.js";

export interface Figures {
  readonly throughputTokensPerSecond: number;
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly busySeconds: Readonly<Record<string, number>>;
  readonly peakBytes: { readonly gpu: number; readonly cpu: number; readonly disk: number };
}

export interface Comparison {
  readonly model: string;
  readonly policy: Plan["policy"];
  readonly predicted: Figures;
  readonly simulated: Figures;
  readonly measured: Figures;
  /** (measured - predicted) / predicted, signed, per figure; `throughput` is the headline. */
  readonly relativeError: { readonly throughput: number; readonly prefill: number; readonly decode: number; readonly simulatedThroughput: number };
  readonly matchesReference: boolean | undefined;
}

const figures = (x: { throughputTokensPerSecond: number; prefillSeconds: number; decodeSeconds: number; busySeconds?: Readonly<Record<string, number>>; peakBytes: Figures["peakBytes"] }): Figures => ({
  throughputTokensPerSecond: x.throughputTokensPerSecond, prefillSeconds: x.prefillSeconds, decodeSeconds: x.decodeSeconds, busySeconds: x.busySeconds ?? {}, peakBytes: x.peakBytes,
});

export function compareRuns(plan: Plan, simulated: SimulationResult, measured: RunResult): Comparison {
  const rel = (m: number, p: number) => (m - p) / p;
  return {
    model: plan.model,
    policy: plan.policy,
    predicted: figures(plan.predicted),
    simulated: figures(simulated),
    measured: figures(measured),
    relativeError: {
      throughput: rel(measured.throughputTokensPerSecond, plan.predicted.throughputTokensPerSecond),
      prefill: rel(measured.prefillSeconds, plan.predicted.prefillSeconds),
      decode: rel(measured.decodeSeconds, plan.predicted.decodeSeconds),
      simulatedThroughput: rel(simulated.throughputTokensPerSecond, plan.predicted.throughputTokensPerSecond),
    },
    matchesReference: measured.matchesReference,
  };
}

export function formatComparison(c: Comparison): string {
  const pct = (x: number) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`;
  const row = (name: string, p: string, s: string, m: string, e: string) => `${name.padEnd(22)}${p.padStart(14)}${s.padStart(14)}${m.padStart(14)}${e.padStart(10)}`;
  const lines = [row("", "predicted", "simulated", "measured", "error")];
  const P = c.predicted, S = c.simulated, M = c.measured;
  lines.push(row("throughput (token/s)", P.throughputTokensPerSecond.toPrecision(4), S.throughputTokensPerSecond.toPrecision(4), M.throughputTokensPerSecond.toPrecision(4), pct(c.relativeError.throughput)));
  lines.push(row("prefill", formatSeconds(P.prefillSeconds), formatSeconds(S.prefillSeconds), formatSeconds(M.prefillSeconds), pct(c.relativeError.prefill)));
  lines.push(row("decode", formatSeconds(P.decodeSeconds), formatSeconds(S.decodeSeconds), formatSeconds(M.decodeSeconds), pct(c.relativeError.decode)));
  for (const r of SIM_RESOURCES) {
    const p = P.busySeconds[r] ?? 0, s = S.busySeconds[r] ?? 0, m = M.busySeconds[r] ?? 0;
    if (p + s + m === 0) continue;
    lines.push(row(`busy ${r}`, formatSeconds(p), formatSeconds(s), formatSeconds(m), p > 0 ? pct((m - p) / p) : ""));
  }
  for (const t of ["gpu", "cpu", "disk"] as const) {
    lines.push(row(`peak ${t}`, formatBytes(P.peakBytes[t]), formatBytes(S.peakBytes[t]), formatBytes(M.peakBytes[t]), P.peakBytes[t] > 0 ? pct((M.peakBytes[t] - P.peakBytes[t]) / P.peakBytes[t]) : ""));
  }
  if (c.matchesReference !== undefined) lines.push(`tokens ${c.matchesReference ? "match" : "DIFFER FROM"} the all-on-device reference`);
  return lines.join("\n");
}
