/**
 * Spillway's plan beside the baselines users would otherwise pick, all scored by the same cost model:
 * horizontal bars of predicted throughput, each with its bottleneck resource and policy (gbs x nb) as
 * text. A baseline that cannot run gets its reason as text on an empty row, never a bar. The axis is
 * logarithmic when the bars span more than 100x.
 */

import type { TopLevelSpec } from "vega-lite";
import type { Plan } from "../core/plan.js";
import { formatRate } from "./landscape-chart.js";
import { wrap } from "./wrap-words.js";

export interface BaselineRow {
  readonly name: string;
  /** Predicted token/s; undefined when the baseline cannot run. */
  readonly throughputTokensPerSecond: number | undefined;
  readonly bottleneck: string | undefined;
  readonly policy: string | undefined;
  readonly text: string;
}

/** A scored policy: a Plan, or a plan file's policy and figures. */
type Scored = {
  readonly policy: Plan["policy"];
  readonly predicted: { readonly throughputTokensPerSecond: number; readonly bottleneck?: string | undefined };
};

/** Spillway's row first, then the baselines in the order given. */
export function baselineRows(
  spillway: Scored,
  baselines: readonly { name: string; plan?: Scored; reason?: string }[],
): BaselineRow[] {
  const row = (name: string, p: Scored): BaselineRow => {
    const policy = `${p.policy.gpuBatchSize}×${p.policy.numGpuBatches}`;
    return {
      name,
      throughputTokensPerSecond: p.predicted.throughputTokensPerSecond,
      bottleneck: p.predicted.bottleneck,
      policy,
      text: `${formatRate(p.predicted.throughputTokensPerSecond)} token/s · ${p.predicted.bottleneck ? `${p.predicted.bottleneck}-bound` : "bottleneck not recorded"} · ${policy}`,
    };
  };
  return [
    row("Spillway", spillway),
    ...baselines.map((b) =>
      b.plan
        ? row(b.name, b.plan)
        : {
            name: b.name,
            throughputTokensPerSecond: undefined,
            bottleneck: undefined,
            policy: undefined,
            text: `cannot run: ${b.reason ?? "no feasible policy"}`,
          },
    ),
  ];
}

/** Whether the bars need a log axis (values span more than 100x). */
export function needsLogScale(rows: readonly BaselineRow[]): boolean {
  const values = rows.map((r) => r.throughputTokensPerSecond).filter((v): v is number => v !== undefined && v > 0);
  return values.length > 1 && Math.max(...values) / Math.min(...values) > 100;
}

const WIDTH_PX = 600;

export function baselinesChart(
  rows: readonly BaselineRow[],
  about: { model: string; hardware: string; promptLen: number; genLen: number },
): TopLevelSpec {
  const log = needsLogScale(rows);
  const values = rows.map((r) => r.throughputTokensPerSecond).filter((v): v is number => v !== undefined && v > 0);
  const max = Math.max(...values, 1e-9);
  const min = Math.min(...values, max);
  // Room on the right for the longest bar text (about 6.6 px a character at 11 px, of a 600 px axis);
  // a log axis starts a decade or so below the smallest bar.
  const textShare = Math.min(
    0.6,
    (Math.max(...rows.filter((r) => r.throughputTokensPerSecond !== undefined).map((r) => r.text.length), 0) * 6.6 +
      16) /
      WIDTH_PX,
  );
  const floor = log ? 10 ** Math.floor(Math.log10(min) - 0.3) : 0;
  const top = log
    ? 10 ** (Math.log10(floor) + (Math.log10(max) - Math.log10(floor)) / (1 - textShare))
    : max / (1 - textShare);
  const domain = [floor, top];
  const decades: number[] = [];
  if (log) for (let e = Math.ceil(Math.log10(floor)); e <= Math.floor(Math.log10(top)); e++) decades.push(10 ** e);
  const data = rows.map((r, i) => ({
    ...r,
    order: i,
    kind: r.throughputTokensPerSecond === undefined ? "cannot run" : r.name === "Spillway" ? "Spillway" : "baseline",
    x: r.throughputTokensPerSecond ?? floor,
    floor,
    lines: r.throughputTokensPerSecond === undefined ? wrap(r.text, 80) : [r.text],
  }));
  const y = {
    field: "name",
    type: "nominal",
    sort: rows.map((r) => r.name),
    title: null,
    axis: { labelFontSize: 12, labelFontWeight: "bold" },
  } as const;
  const x = {
    field: "x",
    type: "quantitative",
    scale: { type: log ? "log" : "linear", domain, nice: false },
    title: `predicted throughput (token/s${log ? ", log scale" : ""})`,
    axis: log ? { values: decades, format: "~g" } : { format: "~r" },
  } as const;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: `Spillway against the baselines: ${about.model} on ${about.hardware}`,
      subtitle: `predicted by the same cost model; prompt ${about.promptLen}, ${about.genLen} generated; text: throughput · bottleneck · gbs×nb`,
    },
    width: WIDTH_PX,
    height: { step: 46 },
    data: { values: data },
    encoding: { y },
    layer: [
      {
        transform: [{ filter: "datum.kind !== 'cannot run'" }],
        mark: { type: "bar", height: 26 },
        encoding: {
          x,
          x2: { field: "floor" },
          color: {
            field: "kind",
            type: "nominal",
            scale: { domain: ["Spillway", "baseline"], range: ["#3d3d3d", "#bdbdbd"] },
            legend: null,
          },
        },
      },
      {
        transform: [{ filter: "datum.kind !== 'cannot run'" }],
        mark: { type: "text", align: "left", dx: 5, fontSize: 11, color: "#222" },
        encoding: { x, text: { field: "text" } },
      },
      {
        transform: [{ filter: "datum.kind === 'cannot run'" }],
        mark: {
          type: "text",
          align: "left",
          dx: 5,
          fontSize: 11,
          fontStyle: "italic",
          color: "#b22222",
          lineHeight: 13,
        },
        encoding: { x, text: { field: "lines" } },
      },
    ],
  } as TopLevelSpec;
}
