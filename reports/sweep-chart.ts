/**
 * A sweep's charts: throughput against GPU count, and cost per million generated tokens against GPU
 * count (given prices), one point per profile that fits, labelled with its name; profiles whose points
 * coincide (the same GPU count and value to 3 significant figures, e.g. two profiles of one GPU) share
 * a point and a label. Both axes logarithmic (GPU counts base 2, ticks at the counts swept).
 */
import type { TopLevelSpec } from "vega-lite";
import type { SweepResult } from "../planner/sweep/sweep.js";
import type { ChartToRender } from "./chart-to-render.js";
import { formatRate } from "./landscape-chart.js";
import { logPosition } from "./log-ticks.js";

export type SweepMeasure = "throughput" | "cost";

export interface SweepPoint {
  readonly gpus: number;
  /** token/s (throughput) or dollars per million generated tokens (cost). */
  readonly value: number;
  /** The profiles at this point, comma-separated. */
  readonly label: string;
}

const measureOf = (measure: SweepMeasure) => (r: SweepResult["rows"][number]) =>
  measure === "throughput" ? r.throughputTokensPerSecond : r.dollarsPerMillionTokens;

/** One point per profile that fits (and, for cost, has a price), coinciding profiles merged; by GPUs, then value. */
export function sweepPoints(result: SweepResult, measure: SweepMeasure): SweepPoint[] {
  const value = measureOf(measure);
  const points = new Map<string, { gpus: number; value: number; profiles: string[] }>();
  for (const r of result.rows) {
    const v = value(r);
    if (!r.fits || v === undefined) continue;
    const key = `${r.gpus} ${v.toPrecision(3)}`;
    const point = points.get(key);
    if (point) point.profiles.push(r.profile);
    else points.set(key, { gpus: r.gpus, value: v, profiles: [r.profile] });
  }
  return [...points.values()]
    .map((p) => ({ gpus: p.gpus, value: p.value, label: p.profiles.join(", ") }))
    .sort((a, b) => a.gpus - b.gpus || a.value - b.value);
}

/** The profiles left off a chart: those that do not fit, and (cost) those without a price. */
export function sweepLeftOut(result: SweepResult, measure: SweepMeasure): string[] {
  const value = measureOf(measure);
  return result.rows.filter((r) => !r.fits || value(r) === undefined).map((r) => r.profile);
}

/** The plot's height in pixels: label positions are worked out in it. */
const HEIGHT_PX = 320;
/** The least vertical distance between two labels of one GPU count, pixels (11 px text). */
const LABEL_GAP_PX = 13;

export interface SweepChartRow extends SweepPoint {
  /** Where the label's baseline middle goes, pixels from the plot's top: at its point, or pushed down clear of the label above. */
  readonly labelYPx: number;
}

/**
 * The points with their labels placed: on a log axis over [min, max] `heightPx` high, the labels of one
 * GPU count from the top down, each at its point unless that is within LABEL_GAP_PX of the one above.
 */
export function placeLabels(
  points: readonly SweepPoint[],
  min: number,
  max: number,
  heightPx = HEIGHT_PX,
): SweepChartRow[] {
  const yPx = (v: number) => (heightPx * Math.log(max / v)) / Math.log(max / min);
  const lastInColumn = new Map<number, number>();
  return [...points]
    .sort((a, b) => a.gpus - b.gpus || b.value - a.value)
    .map((p) => {
      const above = lastInColumn.get(p.gpus);
      const labelYPx = above === undefined ? yPx(p.value) : Math.max(yPx(p.value), above + LABEL_GAP_PX);
      lastInColumn.set(p.gpus, labelYPx);
      return { ...p, labelYPx };
    });
}

export function sweepChart(result: SweepResult, measure: SweepMeasure): TopLevelSpec {
  const points = sweepPoints(result, measure);
  const gpuCounts = [...new Set(points.map((p) => p.gpus))];
  const values = points.map((p) => p.value);
  const [x0, x1] = [Math.min(...gpuCounts) / 1.6, Math.max(...gpuCounts) * 2.5];
  const [y0, y1] = [Math.min(...values) / 1.3, Math.max(...values) * 1.3];
  const rows = placeLabels(points, y0, y1);
  const left = sweepLeftOut(result, measure);
  const what =
    measure === "throughput" ? "throughput (token/s, log scale)" : "$ per million generated tokens (log scale)";
  const x = {
    field: "gpus",
    type: "quantitative",
    scale: { type: "log", base: 2, domain: [x0, x1] as number[], nice: false },
    axis: { values: gpuCounts, format: "d" },
    title: "GPUs in the profile (log scale)",
  } as const;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: `${measure === "throughput" ? "Throughput" : "Cost per million tokens"} against GPU count: ${result.model}`,
      subtitle: [
        `prompt ${result.workload.promptLen}, ${result.workload.genLen} generated; each profile's best plan (${result.costModel} cost model)`,
        measure === "throughput" ? "up is better" : "every GPU of a profile paid for; down is better",
        ...(left.length
          ? [
              `left out (${measure === "cost" ? "no plan that fits, or no price" : "no plan that fits"}): ${left.join(", ")}`,
            ]
          : []),
      ],
    },
    width: 520,
    height: HEIGHT_PX,
    data: { values: rows },
    layer: [
      {
        mark: { type: "point", filled: true, size: 70, color: "#3d3d3d" },
        encoding: {
          x,
          y: logPosition("value", y0, y1, what),
          tooltip: [
            { field: "label", title: "profiles" },
            { field: "gpus", title: "GPUs" },
            { field: "value", format: ".4g", title: measure === "throughput" ? "token/s" : "$/M tokens" },
          ],
        },
      },
      {
        mark: { type: "text", align: "left", baseline: "middle", dx: 8, fontSize: 11, color: "#333" },
        // scale null: the label's pixel position itself (placeLabels), so labels of one column never overlap.
        encoding: { x, y: { field: "labelYPx", type: "quantitative", scale: null }, text: { field: "label" } },
      },
    ],
  } as TopLevelSpec;
}

/** The report's charts of a sweep: throughput, and cost where any profile that fits has a price; `notes` says what is left out. */
export function sweepCharts(result: SweepResult, notes: string[]): ChartToRender[] {
  const charts: ChartToRender[] = [];
  if (sweepPoints(result, "throughput").length === 0) {
    notes.push(`sweep: ${result.model} fits none of the ${result.rows.length} profiles, so there is no sweep chart`);
    return charts;
  }
  charts.push({
    name: "sweep-throughput",
    heading: "Throughput against GPU count",
    caption:
      "Each profile's best plan: predicted generated tokens per second against the GPUs in the profile (both log scales), labelled with the profile (profiles on one point share it). A cluster's plan may be a pipeline over its GPUs or one GPU alone. Look at how throughput grows with GPUs: a point well below its neighbours spends its GPUs on offloading or pipeline bubbles.",
    spec: sweepChart(result, "throughput"),
  });
  if (sweepPoints(result, "cost").length > 0)
    charts.push({
      name: "sweep-cost",
      heading: "Cost per million tokens against GPU count",
      caption:
        "Dollars per million generated tokens (the profile's GPUs × dollars per GPU-hour / 3600 / token/s × 10⁶, at the prices given to spillway sweep) against the GPUs in the profile. Every GPU of a profile is paid for. The lowest point is the cheapest way to generate; compare it with the throughput chart for what it costs in speed.",
      spec: sweepChart(result, "cost"),
    });
  else
    notes.push(
      "sweep: no profile that fits has a price (spillway sweep --price or --prices), so there is no cost chart",
    );
  return charts;
}

/** One line: the model, the workload, the profiles that fit and the fastest and cheapest of them. */
export function sweepSummary(result: SweepResult): string {
  const fits = result.rows.filter((r) => r.fits);
  const fastest = fits.reduce<(typeof fits)[number] | undefined>(
    (best, r) => (!best || r.throughputTokensPerSecond! > best.throughputTokensPerSecond! ? r : best),
    undefined,
  );
  const priced = fits.filter((r) => r.dollarsPerMillionTokens !== undefined);
  const cheapest = priced.reduce<(typeof priced)[number] | undefined>(
    (best, r) => (!best || r.dollarsPerMillionTokens! < best.dollarsPerMillionTokens! ? r : best),
    undefined,
  );
  return `${result.model}, prompt ${result.workload.promptLen} + ${result.workload.genLen} generated, over ${result.rows.length} profiles: ${fits.length} fit${fastest ? `; fastest ${fastest.profile} (${formatRate(fastest.throughputTokensPerSecond!)} token/s on ${fastest.gpus} GPU${fastest.gpus === 1 ? "" : "s"})` : ""}${cheapest ? `; cheapest ${cheapest.profile} ($${cheapest.dollarsPerMillionTokens!.toPrecision(3)} per million tokens)` : ""}`;
}
