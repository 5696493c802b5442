/**
 * Timeline of a trace (simulated or measured): one lane per stream, bars per task coloured by resource,
 * over a readable window: by default every task that runs while the middle layer of the first decode
 * step is in flight. Both the simulator and the runtime tag each task with its token (0 is the prefill)
 * and layer, so the same window works for both.
 */
import type { TopLevelSpec } from "vega-lite";
import { RESOURCE_NAMES, RESOURCES, type Resource } from "../core/resources.js";
import { TRACE_LANES } from "../simulator/chrome-trace-writer.js";
import type { Trace, TraceSlice } from "./read-trace.js";
import { RESOURCE_COLOURS } from "./resource-colours.js";

export interface TimelineWindow {
  readonly startSeconds: number;
  readonly endSeconds: number;
  readonly token: number | undefined;
  readonly layer: number | undefined;
  /** What the window is, in words. */
  readonly description: string;
}

export interface TimelineRow {
  readonly lane: string;
  readonly resource: Resource;
  readonly resourceLabel: string;
  readonly task: string;
  /** Milliseconds from the window's start, clipped to the window. */
  readonly startMs: number;
  readonly endMs: number;
  readonly token: number | undefined;
  readonly layer: number | undefined;
  readonly batch: number | undefined;
  /** Whether the task belongs to the window's own token and layer (others are prefetches, write-backs, neighbours). */
  readonly own: boolean;
}

const MAX_FALLBACK_TASKS = 60;
const WIDTH_PX = 640;

export function laneOf(resource: Resource): string {
  const lane = TRACE_LANES[resource];
  return `${lane.process} ${lane.thread}`;
}

/**
 * The window: the span from the first start to the last end of the tasks of one layer of one token
 * (default: the first decode token, or the prefill when nothing was decoded; the middle layer among
 * those the token has). A trace without token/layer tags gets its first few dozen tasks.
 */
export function chooseWindow(
  slices: readonly TraceSlice[],
  want: { token?: number; layer?: number } = {},
): TimelineWindow {
  const tagged = slices.filter((s) => s.token !== undefined && s.layer !== undefined);
  if (tagged.length === 0) {
    const first = [...slices].sort((a, b) => a.startSeconds - b.startSeconds).slice(0, MAX_FALLBACK_TASKS);
    const start = first[0]?.startSeconds ?? 0;
    const end = Math.max(start, ...first.map((s) => s.startSeconds + s.durationSeconds));
    return {
      startSeconds: start,
      endSeconds: end,
      token: undefined,
      layer: undefined,
      description: `the first ${first.length} tasks`,
    };
  }
  const tokens = [...new Set(tagged.map((s) => s.token!))].sort((a, b) => a - b);
  const token = want.token ?? (tokens.includes(1) ? 1 : tokens[0]!);
  // Layers of the model proper: the head and embedding are tagged past the last layer or below 0.
  const layers = [...new Set(tagged.filter((s) => s.token === token && s.layer! >= 0).map((s) => s.layer!))].sort(
    (a, b) => a - b,
  );
  const body = layers.length > 2 ? layers.slice(0, -1) : layers;
  const layer = want.layer ?? body[Math.floor((body.length - 1) / 2)] ?? 0;
  const own = tagged.filter((s) => s.token === token && s.layer === layer);
  if (own.length === 0) return chooseWindow(slices.filter((s) => s.token === undefined));
  const start = Math.min(...own.map((s) => s.startSeconds));
  const end = Math.max(...own.map((s) => s.startSeconds + s.durationSeconds));
  const step =
    token === 0 ? "the prefill (token 0)" : token === 1 ? "the first decode step (token 1)" : `decode step ${token}`;
  return { startSeconds: start, endSeconds: end, token, layer, description: `layer ${layer} of ${step}` };
}

export function timelineRows(trace: Pick<Trace, "slices">, window: TimelineWindow): TimelineRow[] {
  const rows: TimelineRow[] = [];
  for (const s of trace.slices) {
    const end = s.startSeconds + s.durationSeconds;
    if (end <= window.startSeconds || s.startSeconds >= window.endSeconds) continue;
    rows.push({
      lane: laneOf(s.resource),
      resource: s.resource,
      resourceLabel: RESOURCE_NAMES[s.resource],
      task: s.name,
      startMs: (Math.max(s.startSeconds, window.startSeconds) - window.startSeconds) * 1e3,
      endMs: (Math.min(end, window.endSeconds) - window.startSeconds) * 1e3,
      token: s.token,
      layer: s.layer,
      batch: s.batch,
      own: window.token === undefined || (s.token === window.token && s.layer === window.layer),
    });
  }
  return rows;
}

export function timelineChart(
  rows: readonly TimelineRow[],
  window: TimelineWindow,
  about: { title: string },
): TopLevelSpec {
  const durationMs = (window.endSeconds - window.startSeconds) * 1e3;
  const lanes = RESOURCES.filter((r) => rows.some((row) => row.resource === r));
  // Task names inside bars wide enough to hold them (about 6 px a character at 10 px).
  const labelled = rows
    .filter((r) => ((r.endMs - r.startMs) / durationMs) * WIDTH_PX > r.task.length * 6 + 8)
    .map((r) => ({ ...r, mid: (r.startMs + r.endMs) / 2 }));
  const y = {
    field: "lane",
    type: "nominal",
    title: null,
    sort: lanes.map(laneOf),
    axis: { labelFontSize: 12 },
  } as const;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: about.title,
      subtitle: [
        `${window.description}: ${durationMs.toPrecision(3)} ms from ${window.startSeconds.toFixed(3)} s into the run`,
        "faded: tasks of other layers or steps running meanwhile (prefetches, write-backs)",
      ],
    },
    width: WIDTH_PX,
    height: { step: 34 },
    layer: [
      {
        data: { values: rows },
        mark: { type: "bar", height: 24, stroke: "white", strokeWidth: 0.5 },
        encoding: {
          y,
          x: {
            field: "startMs",
            type: "quantitative",
            title: "time in the window (ms)",
            scale: { domain: [0, durationMs], nice: false },
          },
          x2: { field: "endMs" },
          color: {
            field: "resourceLabel",
            type: "nominal",
            title: "resource",
            scale: { domain: lanes.map((r) => RESOURCE_NAMES[r]), range: lanes.map((r) => RESOURCE_COLOURS[r]) },
          },
          opacity: { condition: { test: "datum.own", value: 1 }, value: 0.35 },
          tooltip: [
            { field: "task" },
            { field: "token" },
            { field: "layer" },
            { field: "batch" },
            { field: "startMs", format: ".3f" },
            { field: "endMs", format: ".3f" },
          ],
        },
      },
      {
        data: { values: labelled },
        mark: { type: "text", fontSize: 10, clip: true },
        encoding: {
          y,
          x: { field: "mid", type: "quantitative" },
          text: { field: "task" },
          color: { condition: { test: "datum.own", value: "white" }, value: "#333" },
        },
      },
    ],
  } as TopLevelSpec;
}
