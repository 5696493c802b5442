/**
 * One policy on every engine: the plan's policy predicted by each engine's own model (engines/), as one
 * horizontal stacked bar per engine of the seconds the whole run takes, split into the terms that cost
 * it time (each engine names its own: "weights I/O", "CPU attention", "GPU GEMM", ...), coloured by term
 * with a legend, and the predicted throughput as text at the bar's end. An engine whose realization of
 * the policy does not fit its memory is drawn faded and marked "(does not fit)"; one that cannot run the
 * model or the policy at all gets its reason as text on an empty row, never a bar.
 */

import type { TopLevelSpec } from "vega-lite";
import type { HardwareProfile } from "../core/hardware-profile.js";
import type { Plan } from "../core/plan.js";
import type { Placement, Policy } from "../core/policy.js";
import { RESOURCE_NAMES, RESOURCES } from "../core/resources.js";
import { TIERS } from "../core/tiers.js";
import { ENGINE_NAMES, type EngineName } from "../engines/engine-names.js";
import { EngineUnsupportedError, predictPlanOnEngine } from "../engines/plan-for-engine.js";
import { formatRate } from "./landscape-chart.js";
import { RESOURCE_COLOURS } from "./resource-colours.js";
import { wrap } from "./wrap-words.js";

/** What of a plan the chart reads. */
export type EnginesChartPlan = Pick<
  Plan,
  "model" | "hardware" | "modelSpec" | "workload" | "policy" | "engine" | "engineKnobs"
>;

/** One term of one engine's bar: `seconds` of the run, drawn from `start` to `end`. */
export interface EngineTermSegment {
  readonly term: string;
  readonly seconds: number;
  readonly start: number;
  readonly end: number;
}

/** One engine that can run the policy. */
export interface EngineBar {
  readonly engine: EngineName;
  readonly throughputTokensPerSecond: number;
  readonly totalSeconds: number;
  /** Whether the engine's realization of the policy fits its memory. */
  readonly feasible: boolean;
  readonly infeasibleReasons: readonly string[];
  /** The term that costs the most wall time. */
  readonly bottleneck: string;
  /** The terms with time charged to them, largest first, laid end to end from 0 to totalSeconds. */
  readonly terms: readonly EngineTermSegment[];
  /** The text at the bar's end: throughput, and "(does not fit)" when it does not. */
  readonly label: string;
}

/** One engine that cannot run the model or the policy, and why (the engine model's words). */
export interface EngineSkipped {
  readonly engine: EngineName;
  readonly reason: string;
}

export interface EngineRows {
  readonly bars: readonly EngineBar[];
  readonly skipped: readonly EngineSkipped[];
}

/**
 * The plan's policy predicted on each engine of `engines` (default: all, in ENGINE_NAMES order; repeats
 * dropped). The plan's engine knobs (`--ngl`, `--gguf-type`, ...) go to the plan's engine only; every
 * other engine scores the policy with its own defaults.
 */
export function engineRows(
  plan: EnginesChartPlan,
  hardware: HardwareProfile,
  engines: readonly EngineName[] = ENGINE_NAMES,
): EngineRows {
  const bars: EngineBar[] = [];
  const skipped: EngineSkipped[] = [];
  for (const engine of [...new Set(engines)]) {
    let prediction: ReturnType<typeof predictPlanOnEngine>;
    try {
      prediction = predictPlanOnEngine(plan, engine, hardware);
    } catch (error) {
      if (!(error instanceof EngineUnsupportedError)) throw error;
      skipped.push({ engine, reason: error.reason });
      continue;
    }
    const terms: EngineTermSegment[] = [];
    let at = 0;
    for (const [term, seconds] of Object.entries(prediction.termSeconds)
      .filter(([, s]) => s > 0)
      .sort((a, b) => b[1] - a[1])) {
      terms.push({ term, seconds, start: at, end: at + seconds });
      at += seconds;
    }
    bars.push({
      engine,
      throughputTokensPerSecond: prediction.throughputTokensPerSecond,
      totalSeconds: prediction.totalSeconds,
      feasible: prediction.feasible,
      infeasibleReasons: prediction.infeasibleReasons,
      bottleneck: prediction.bottleneck,
      terms,
      label: `${formatRate(prediction.throughputTokensPerSecond)} token/s${prediction.feasible ? "" : " (does not fit)"}`,
    });
  }
  return { bars, skipped };
}

function pct(x: number): string {
  return `${(x * 100).toFixed(x > 0 && x < 0.1 ? 1 : 0)}%`;
}

function placementWords(label: string, p: Placement): string {
  return `${label} ${TIERS.filter((t) => p[t] > 5e-4)
    .map((t) => `${t.toUpperCase()} ${pct(p[t])}`)
    .join(" / ")}`;
}

/** The policy in a few words for the chart's title. */
export function policyShortWords(policy: Policy): string {
  return `GPU batch ${policy.gpuBatchSize}×${policy.numGpuBatches}`;
}

/** Where the policy puts things, then what else it fixes (absent when nothing), for the subtitle. */
export function policyWords(policy: Policy): { placement: string; extras?: string } {
  const e = policy.experts;
  const extras = [
    policy.compressWeight ? "4-bit weights" : "",
    policy.compressCache ? "4-bit KV" : "",
    policy.cpuAttention ? "CPU attention" : "",
    e
      ? `${e.cacheSize} expert slots a layer on the GPU (${e.eviction}), experts ${e.bits}-bit from ${e.offloadTier.toUpperCase()}`
      : "",
  ].filter(Boolean);
  return {
    placement: `${placementWords("weights", policy.weights)}; ${placementWords("KV", policy.cache)}`,
    ...(extras.length ? { extras: extras.join(", ") } : {}),
  };
}

/** Term colours: Spillway's resource terms in the house resource colours, every other term its own. */
const TERM_PALETTE = [
  "#72b7b2",
  "#eeca3b",
  "#ff9da6",
  "#79706e",
  "#9ecae9",
  "#ffbf79",
  "#88d27a",
  "#d6a5c9",
  "#b79a20",
  "#393b79",
  "#d67195",
  "#d8b5a5",
  "#637939",
  "#843c39",
  "#7b4173",
  "#439894",
  "#8c6d31",
  "#5254a3",
  "#bab0ac",
  "#f2cf5b",
  "#fcbfd2",
  "#83bcb6",
  "#ff9d98",
  "#8ca252",
];

/** The colour scale over every term the bars use: first the resource terms, then the rest as they come. */
export function termColourScale(bars: readonly EngineBar[]): { domain: string[]; range: string[] } {
  const terms = [...new Set(bars.flatMap((b) => b.terms.map((t) => t.term)))];
  const byName = new Map<string, string>(RESOURCES.map((r) => [RESOURCE_NAMES[r], RESOURCE_COLOURS[r]]));
  const resourceTerms = terms.filter((t) => byName.has(t));
  const others = terms.filter((t) => !byName.has(t));
  return {
    domain: [...resourceTerms, ...others],
    range: [
      ...resourceTerms.map((t) => byName.get(t)!),
      ...others.map((_, i) => TERM_PALETTE[i % TERM_PALETTE.length]!),
    ],
  };
}

const WIDTH_PX = 600;
/** A reason's line length (about 6.6 px a character at 11 px: the plot's width). */
const REASON_WRAP_CHARS = 84;
const LINE_HEIGHT_PX = 13;

export function enginesChart(
  rows: EngineRows,
  about: {
    readonly model: string;
    readonly hardware: string;
    readonly policy: Policy;
    readonly promptLen: number;
    readonly genLen: number;
  },
): TopLevelSpec {
  const { bars, skipped } = rows;
  const order = [...bars.map((b) => b.engine), ...skipped.map((s) => s.engine)];
  const max = Math.max(...bars.map((b) => b.totalSeconds), 1e-9);
  // Room on the right for the longest bar text (about 6.6 px a character at 11 px, of a 600 px axis).
  const textShare = Math.min(0.6, (Math.max(...bars.map((b) => b.label.length), 0) * 6.6 + 16) / WIDTH_PX);
  const domain = [0, max / (1 - textShare)];
  const reasonRows = skipped.map((s) => ({
    kind: "cannot run",
    engine: s.engine,
    start: 0,
    lines: wrap(`cannot run: ${s.reason}`, REASON_WRAP_CHARS),
  }));
  const values = [
    ...bars.flatMap((b) =>
      b.terms.map((t) => ({
        kind: "term",
        engine: b.engine,
        term: t.term,
        seconds: t.seconds,
        share: t.seconds / b.totalSeconds,
        start: t.start,
        end: t.end,
        fits: b.feasible ? "fits" : "does not fit",
      })),
    ),
    ...bars.map((b) => ({
      kind: "total",
      engine: b.engine,
      totalSeconds: b.totalSeconds,
      throughputTokensPerSecond: b.throughputTokensPerSecond,
      bottleneck: b.bottleneck,
      label: b.label,
      fits: b.feasible ? "fits" : "does not fit",
    })),
    ...reasonRows,
  ];
  // Rows tall enough for the longest reason, so that wrapped lines never reach the next row.
  const maxLines = Math.max(1, ...reasonRows.map((r) => r.lines.length));
  const step = Math.max(40, maxLines * LINE_HEIGHT_PX + 12);
  const words = policyWords(about.policy);
  const block = about.policy.gpuBatchSize * about.policy.numGpuBatches;
  const x = {
    type: "quantitative",
    scale: { domain, nice: false },
    title: `predicted seconds for the whole run (${block} sequences, prompt ${about.promptLen} + ${about.genLen} generated)`,
    axis: { format: "~r" },
  } as const;
  const y = {
    field: "engine",
    type: "nominal",
    sort: order,
    title: null,
    axis: { labelFontSize: 12, labelFontWeight: "bold" },
  } as const;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: `${about.model}, ${policyShortWords(about.policy)} on each engine: where the time goes`,
      subtitle: [
        `the same policy, predicted by each engine's own model on ${about.hardware}:`,
        words.placement,
        ...(words.extras ? [words.extras] : []),
        "bars: seconds of the run by term · text: throughput · faded: does not fit",
      ],
      anchor: "start",
    },
    width: WIDTH_PX,
    height: { step },
    data: { values },
    encoding: { y },
    layer: [
      {
        transform: [{ filter: "datum.kind === 'term'" }],
        mark: { type: "bar", height: 24, stroke: "white", strokeWidth: 0.5 },
        encoding: {
          x: { ...x, field: "start" },
          x2: { field: "end" },
          color: {
            field: "term",
            type: "nominal",
            scale: termColourScale(bars),
            legend: { title: "term", orient: "bottom", columns: 2, labelLimit: 320, symbolType: "square" },
          },
          opacity: { condition: { test: "datum.fits === 'does not fit'", value: 0.4 }, value: 1 },
          tooltip: [
            { field: "engine", type: "nominal" },
            { field: "term", type: "nominal" },
            { field: "seconds", type: "quantitative", format: ".4~g" },
            { field: "share", type: "quantitative", format: ".1%" },
          ],
        },
      },
      {
        transform: [{ filter: "datum.kind === 'total'" }],
        mark: { type: "text", align: "left", dx: 5, fontSize: 11, color: "#222" },
        encoding: { x: { ...x, field: "totalSeconds" }, text: { field: "label" } },
      },
      // One layer per number of lines, each moved up by half its extra lines so the block centres on its row.
      ...[...new Set(reasonRows.map((r) => r.lines.length))].map((n) => ({
        transform: [{ filter: `datum.kind === 'cannot run' && length(datum.lines) === ${n}` }],
        mark: {
          type: "text",
          align: "left",
          baseline: "middle",
          dx: 5,
          dy: (-(n - 1) * LINE_HEIGHT_PX) / 2,
          fontSize: 11,
          fontStyle: "italic",
          color: "#b22222",
          lineHeight: LINE_HEIGHT_PX,
        },
        encoding: { x: { ...x, field: "start" }, text: { field: "lines" } },
      })),
    ],
  } as TopLevelSpec;
}
