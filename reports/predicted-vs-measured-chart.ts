/**
 * The planner's prediction beside the simulation (and the measured run, when there is one): seconds per
 * phase (prefill, decode) and busy seconds per stream, as grouped bars. Sources are shades of grey so
 * they do not read as resources or tiers.
 */
import type { TopLevelSpec } from "vega-lite";
import { RESOURCE_NAMES, RESOURCES } from "../core/resources.js";
import { RESOURCE_COLOURS } from "./resource-colours.js";

/** Resource names on the axis in their resource's colour (the same as in the timeline). */
const RESOURCE_LABEL_COLOUR = RESOURCES.reduceRight(
  (rest, r) =>
    `datum.label === ${JSON.stringify(RESOURCE_NAMES[r])} ? ${JSON.stringify(RESOURCE_COLOURS[r])} : ${rest}`,
  '"#333"',
);

export interface FiguresForChart {
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly busySeconds?: Readonly<Record<string, number>>;
}

export type FigureSource = "predicted" | "simulated" | "measured";

export interface PredictedVsMeasuredRow {
  readonly group: "phase" | "stream busy";
  readonly figure: string;
  readonly source: FigureSource;
  readonly seconds: number;
}

export const SOURCE_COLOURS: Record<FigureSource, string> = {
  predicted: "#bdbdbd",
  simulated: "#737373",
  measured: "#252525",
};

/**
 * Phases for every source given; a stream's busy seconds for every source that has them, streams idle
 * in all sources left out.
 */
export function predictedVsMeasuredRows(
  figures: Partial<Record<FigureSource, FiguresForChart>>,
): PredictedVsMeasuredRow[] {
  const sources = (["predicted", "simulated", "measured"] as const).filter((s) => figures[s] !== undefined);
  const rows: PredictedVsMeasuredRow[] = [];
  for (const [figure, key] of [
    ["prefill", "prefillSeconds"],
    ["decode", "decodeSeconds"],
  ] as const) {
    for (const source of sources) rows.push({ group: "phase", figure, source, seconds: figures[source]![key] });
  }
  for (const resource of RESOURCES) {
    const withBusy = sources.filter((s) => figures[s]!.busySeconds?.[resource] !== undefined);
    if (!withBusy.some((s) => figures[s]!.busySeconds![resource]! > 0)) continue;
    for (const source of withBusy)
      rows.push({
        group: "stream busy",
        figure: RESOURCE_NAMES[resource],
        source,
        seconds: figures[source]!.busySeconds![resource]!,
      });
  }
  return rows;
}

export function predictedVsMeasuredChart(
  rows: readonly PredictedVsMeasuredRow[],
  about: { title: string },
): TopLevelSpec {
  const sources = (["predicted", "simulated", "measured"] as const).filter((s) => rows.some((r) => r.source === s));
  const panel = (group: PredictedVsMeasuredRow["group"], title: string) => {
    const own = rows.filter((r) => r.group === group);
    const figures = [...new Set(own.map((r) => r.figure))];
    return {
      title: { text: title, fontSize: 12 },
      data: { values: own },
      width: figures.length * (sources.length * 24 + 26),
      height: 260,
      mark: { type: "bar" },
      encoding: {
        x: {
          field: "figure",
          type: "nominal",
          sort: figures,
          title: null,
          axis: {
            labelAngle: figures.length > 3 ? -30 : 0,
            labelFontSize: 11,
            labelColor: { expr: RESOURCE_LABEL_COLOUR },
            labelFontWeight: group === "stream busy" ? "bold" : "normal",
          },
        },
        xOffset: { field: "source", type: "nominal", sort: [...sources] },
        y: { field: "seconds", type: "quantitative", title: "seconds" },
        color: {
          field: "source",
          type: "nominal",
          title: null,
          scale: { domain: [...sources], range: sources.map((s) => SOURCE_COLOURS[s]) },
          legend: { orient: "top" },
        },
        tooltip: [{ field: "figure" }, { field: "source" }, { field: "seconds", format: ".4g" }],
      },
    };
  };
  const groups = (["phase", "stream busy"] as const).filter((g) => rows.some((r) => r.group === g));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: about.title,
      subtitle: [
        "left: seconds per phase; right: seconds each stream is busy over the run",
        "(resource names in their timeline colours)",
      ],
    },
    hconcat: groups.map((g) => panel(g, g === "phase" ? "per phase" : "busy per stream")),
    resolve: { scale: { y: "independent" } },
    spacing: 30,
  } as TopLevelSpec;
}
