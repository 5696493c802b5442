/**
 * `buildReport()`: computes every chart a plan, traces and a comparison allow, renders each to SVG and
 * PNG, and writes them with their Vega-Lite specs and a self-contained index.html (no scripts, no
 * network: the page shows the PNGs beside it by relative path) into one folder. Every file is written
 * atomically, index.html last, so an interrupted run leaves no half-written file.
 */
import { mkdirSync } from "node:fs";
import { basename, join } from "node:path";
import type { HardwareProfile } from "../core/hardware-profile.js";
import { withCapacities } from "../core/hardware-profile.js";
import { InputError } from "../core/input-error.js";
import type { Plan } from "../core/plan.js";
import { counted } from "../core/plural.js";
import type { Policy } from "../core/policy.js";
import { TIERS, type Tier } from "../core/tiers.js";
import { writeFileAtomic } from "../core/write-file-atomic.js";
import type { EngineName } from "../engines/engine-names.js";
import { baselines } from "../planner/baselines.js";
import { plan as makePlan, PlanError } from "../planner/plan.js";
import type { LpCandidate } from "../planner/spillway/spillway-search.js";
import type { SweepResult } from "../planner/sweep/sweep.js";
import type { Comparison } from "../runtime/compare.js";
import { MemoryTraceSink } from "../simulator/memory-trace-sink.js";
import { type SimulationResult, simulate } from "../simulator/simulate.js";
import { baselineRows, baselinesChart } from "./baselines-chart.js";
import type { ChartToRender } from "./chart-to-render.js";
import { engineRows, enginesChart } from "./engines-chart.js";
import { frontierChart, frontierPlans, frontierRows } from "./frontier-chart.js";
import { formatRate, landscapeChart, landscapeRows } from "./landscape-chart.js";
import { memoryChart, memoryRows } from "./memory-chart.js";
import { placementChart } from "./placement-chart.js";
import {
  type FiguresForChart,
  predictedVsMeasuredChart,
  predictedVsMeasuredRows,
} from "./predicted-vs-measured-chart.js";
import { parseTrace, type Trace } from "./read-trace.js";
import { renderChart, withChartConfig } from "./render-chart.js";
import { sweepCharts, sweepSummary } from "./sweep-chart.js";
import { chooseWindow, timelineChart, timelineRows } from "./timeline-chart.js";

export interface BuildReportOptions {
  /** A Plan from plan(), or a plan file read with readPlanFile(). */
  readonly plan?: Plan;
  readonly traces?: readonly Trace[];
  readonly comparison?: Comparison;
  /** A sweep (`spillway sweep`): throughput, and with prices cost per million tokens, against GPU count. */
  readonly sweep?: SweepResult;
  /** The profile the plan was made for (capacities are taken from the plan where it has them). */
  readonly hardware: HardwareProfile;
  readonly outDir: string;
  /**
   * Simulate the plan (its trace kept in memory) for the timeline, memory and predicted-vs-simulated
   * charts. Default: whenever a plan is given, so a plan with traces gives every chart the plan alone
   * gives; the simulation's own timeline and memory charts are left out when a simulated trace is given.
   */
  readonly simulate?: boolean;
  /** Re-plan for the search landscape, the frontier sweep and the baselines (default true with a plan). */
  readonly analyses?: boolean;
  /** The engines the engines chart predicts the plan's policy on (default: every engine). */
  readonly engines?: readonly EngineName[];
  /** Progress lines for the long parts ("frontier 3/9 (max block 16)"). */
  readonly onProgress?: (message: string) => void;
}

export interface ReportChart {
  readonly name: string;
  readonly heading: string;
  readonly caption: string;
  readonly files: { readonly spec: string; readonly svg: string; readonly png: string };
  readonly widthPx: number;
  readonly heightPx: number;
}

export interface ReportSummary {
  readonly outDir: string;
  readonly index: string;
  readonly title: string;
  readonly summary: string;
  readonly charts: readonly ReportChart[];
  /** Charts left out and why. */
  readonly notes: readonly string[];
}

function pct(x: number): string {
  return `${(x * 100).toFixed(x > 0 && x < 0.1 ? 1 : 0)}%`;
}

function placementWords(label: string, p: Policy["weights"]): string {
  const parts = TIERS.filter((t) => p[t] > 5e-4).map((t) => `${t.toUpperCase()} ${pct(p[t])}`);
  return `${label} ${parts.join(" / ")}`;
}

/** One line: model, hardware, policy, predicted token/s. */
export function planSummary(p: Plan): string {
  const q = p.policy;
  const extras = [
    q.compressWeight ? "4-bit weights" : "",
    q.compressCache ? "4-bit KV" : "",
    q.cpuAttention ? "CPU attention" : "",
  ].filter(Boolean);
  return `${p.model} on ${p.hardware}, prompt ${p.workload.promptLen} + ${p.workload.genLen} generated: GPU batch ${q.gpuBatchSize} × ${counted(q.numGpuBatches, "batch", "batches")} (block of ${q.gpuBatchSize * q.numGpuBatches}); ${placementWords("weights", q.weights)}; ${placementWords("KV", q.cache)}${extras.length ? `; ${extras.join(", ")}` : ""}; predicted ${formatRate(p.predicted.throughputTokensPerSecond)} token/s${p.predicted.bottleneck ? ` (bottleneck: ${p.predicted.bottleneck})` : ""}`;
}

function chartName(base: string, trace: Trace, many: boolean): string {
  if (!many) return base;
  const stem = basename(trace.path)
    .replace(/\.json$/i, "")
    .replace(/[^A-Za-z0-9._-]+/g, "-");
  return `${base}-${stem}`;
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function traceCharts(
  trace: Trace,
  name: (base: string) => string,
  about: string,
  capacityBytes: Partial<Record<Tier, number>>,
  notes: string[],
): ChartToRender[] {
  const out: ChartToRender[] = [];
  const kind = trace.source === "simulate" ? "simulated" : "measured";
  if (trace.slices.length > 0) {
    const window = chooseWindow(trace.slices);
    out.push({
      name: name("timeline"),
      heading: `Timeline (${kind}): ${window.description}`,
      caption: `Each lane is one stream; bars are tasks coloured by resource, over the time ${window.description} is in flight (faded: tasks of neighbouring layers or steps: prefetches and write-backs). Look for the lane that is busy end to end: it sets the pace; gaps elsewhere are idle links or compute.`,
      spec: timelineChart(timelineRows(trace, window), window, { title: `Timeline (${kind}): ${about}` }),
    });
  } else notes.push(`${trace.path}: no task events, so no timeline`);
  if (trace.memory.length > 0) {
    out.push({
      name: name("memory"),
      heading: `Memory in use (${kind})`,
      caption:
        "Memory in use per tier over the whole run (step lines; long runs keep the largest value in each of 1000 time slices, so peaks survive) against each tier's capacity (dashed). Each tier has its own scale: look at how close each line comes to its dashed capacity.",
      spec: memoryChart(memoryRows(trace.memory), capacityBytes, { title: `Memory in use (${kind}): ${about}` }),
    });
  } else
    notes.push(
      `${trace.path}: no memory counters (the runtime's traces do not record memory in use), so no memory chart`,
    );
  return out;
}

export async function buildReport(options: BuildReportOptions): Promise<ReportSummary> {
  const progress = options.onProgress ?? (() => {});
  const { plan: p, comparison } = options;
  const traces = [...(options.traces ?? [])];
  const notes: string[] = [];
  const charts: ChartToRender[] = [];
  const capacityBytes: Record<Tier, number> = p
    ? { ...p.predicted.capacityBytes }
    : {
        gpu: options.hardware.capacityBytes.gpu.value,
        cpu: options.hardware.capacityBytes.cpu.value,
        disk: options.hardware.capacityBytes.disk.value,
      };
  const hardware = withCapacities(options.hardware, capacityBytes, "plan");
  let simulated: SimulationResult | undefined;
  let simulatedTrace: Trace | undefined;

  if (p) {
    const about = { model: p.model, hardware: p.hardware, promptLen: p.workload.promptLen, genLen: p.workload.genLen };
    charts.push({
      name: "placement",
      heading: "Where the model lives",
      caption:
        "GiB of weights, KV cache and activations on each tier under the chosen policy. Look at what spills past the GPU: everything not blue crosses a link every layer.",
      spec: placementChart(p),
    });
    const request = { model: p.modelSpec, hardware, workload: p.workload, schedule: p.schedule };
    if (options.analyses !== false) {
      if (p.costModel === "flexgen")
        notes.push(
          "the plan was made with FlexGen's cost model: the search landscape, frontier and baselines (Spillway model) are left out",
        );
      else if (p.policy.experts) {
        notes.push(
          "a Mixture-of-Experts plan: the search landscape, frontier and baselines chart the dense LP search, so they are left out; `spillway simulate PLAN --routing TRACE` replays its expert caches",
        );
      } else {
        progress("search landscape");
        const candidates: LpCandidate[] = [];
        try {
          await makePlan({ ...request, onCandidate: (c) => candidates.push(c) });
        } catch (error) {
          if (!(error instanceof PlanError)) throw error;
        }
        if (candidates.length > 0) {
          charts.push({
            name: "landscape",
            heading: "Search landscape",
            caption:
              "The LP's throughput estimate for each block size (GPU batch size × number of GPU batches, log scale), one line per GPU batch size, best over the families of discrete choices. These are the LP's estimates, not exact scores; the red diamond is the chosen policy scored exactly by the cost model. Look for where the lines peak or flatten: past that, bigger blocks stop paying off (their KV cache spills further down the tiers).",
            spec: landscapeChart(
              landscapeRows(candidates, {
                gbs: p.policy.gpuBatchSize,
                nb: p.policy.numGpuBatches,
                throughputTokensPerSecond: p.predicted.throughputTokensPerSecond,
              }),
              p,
            ),
          });
        } else notes.push("the search found no LP point to chart (landscape left out)");

        const block = p.policy.gpuBatchSize * p.policy.numGpuBatches;
        const frontier = await frontierPlans(request, block, (done, total, maxBlock) =>
          progress(`frontier ${done}/${total} (max block ${maxBlock})`),
        );
        if (frontier.length > 0) {
          charts.push({
            name: "frontier",
            heading: "Latency–throughput frontier",
            caption:
              "The best plan when a block may hold at most 1, 2, 4, … sequences: throughput against the seconds a block takes to finish (prefill + decode), both log scales, labelled with the block size. Larger blocks buy throughput with latency; pick the point your latency budget allows.",
            spec: frontierChart(frontierRows(frontier), about),
          });
        }
        progress("baselines");
        const rows = baselineRows(p, await baselines(request));
        charts.push({
          name: "baselines",
          heading: "Spillway against the baselines",
          caption:
            "Predicted throughput of Spillway's plan and of the policies Hugging Face Accelerate, DeepSpeed ZeRO-Inference, llama.cpp and FlexGen would pick, all scored by the same cost model (log scale when they differ by more than 100×). The text names each one's bottleneck resource and GPU batch size × number of batches; a baseline that cannot run shows why instead of a bar.",
          spec: baselinesChart(rows, about),
        });
      }
    }
    progress("engines");
    const engines = engineRows(p, hardware, options.engines);
    for (const s of engines.skipped) notes.push(`engines chart: ${s.engine} cannot run this plan: ${s.reason}`);
    if (engines.bars.length > 0) {
      charts.push({
        name: "engines",
        heading: "The policy on each engine",
        caption:
          "The plan's policy predicted by each engine's own model (how that engine realizes the policy, which operations it performs and how it orders them): seconds of the whole run, split into the terms that cost it time, largest first, with the predicted throughput at the bar's end. Each engine names its own terms. A faded bar marked (does not fit) is an engine whose realization of the policy does not fit its memory; an engine that cannot run the model or the policy shows why instead of a bar. Look for the longest segment of each bar: it is what that engine would spend the run on.",
        spec: enginesChart(engines, { ...about, policy: p.policy }),
      });
    } else notes.push("no selected engine can run the plan's policy, so there is no engines chart");
    if (p.policy.experts)
      notes.push(
        "the stream simulator does not replay expert caches, so there is no simulated timeline or memory chart",
      );
    else if (options.simulate ?? true) {
      progress("simulation");
      const trace = new MemoryTraceSink();
      simulated = simulate(p, hardware, { schedule: p.schedule, capacityBytes, trace });
      progress("reading the simulated trace");
      simulatedTrace = parseTrace(trace.document(), "simulation");
      if (simulated.overflow)
        notes.push(
          `the simulation overflows ${simulated.overflow.tier} memory at ${simulated.overflow.seconds.toFixed(3)} s: the plan does not fit as scheduled`,
        );
    }
  }

  if (!p && options.engines)
    notes.push("engines were named but no plan is among the inputs, so there is no engines chart");
  const policyWords = (q: Policy) => `${q.gpuBatchSize}×${q.numGpuBatches}`;
  const aboutTrace = p ? `${p.model}, ${policyWords(p.policy)} on ${p.hardware}` : undefined;
  // A simulated trace given with the plan is that simulation (checked by checkReportInputsMatch): chart it once.
  const ownSimulationCharts = simulatedTrace !== undefined && !traces.some((t) => t.source === "simulate");
  if (ownSimulationCharts) charts.push(...traceCharts(simulatedTrace!, (b) => b, aboutTrace!, capacityBytes, notes));
  for (const trace of traces)
    charts.push(
      ...traceCharts(
        trace,
        (b) => chartName(b, trace, traces.length > 1 || ownSimulationCharts),
        aboutTrace ?? basename(trace.path),
        capacityBytes,
        notes,
      ),
    );

  const figures: Partial<Record<"predicted" | "simulated" | "measured", FiguresForChart>> = comparison
    ? { predicted: comparison.predicted, simulated: comparison.simulated, measured: comparison.measured }
    : p && simulated
      ? { predicted: p.predicted, simulated }
      : {};
  if (Object.keys(figures).length > 1) {
    const measured = figures.measured !== undefined;
    const label = measured ? "predicted vs simulated vs measured" : "predicted vs simulated";
    charts.push({
      name: measured ? "predicted-vs-measured" : "predicted-vs-simulated",
      heading: label[0]!.toUpperCase() + label.slice(1),
      caption: `The planner's prediction beside the ${measured ? "simulation and the measured run" : "event-by-event simulation"}: seconds per phase and seconds each stream is busy. Bars that differ by more than about 10% point at the cost-model term to distrust.`,
      spec: predictedVsMeasuredChart(predictedVsMeasuredRows(figures), {
        title: `${label[0]!.toUpperCase() + label.slice(1)}: ${comparison ? `${comparison.model}, ${policyWords(comparison.policy)}` : aboutTrace}`,
      }),
    });
  }
  if (options.sweep) charts.push(...sweepCharts(options.sweep, notes));
  if (charts.length === 0)
    throw new InputError("spillway report", undefined, "nothing to chart: give a plan, a trace or a comparison");

  // Every chart is rendered before anything is written (rendering is nearly all the time): an
  // interrupted report leaves no partial folder, and the files go out in milliseconds at the end.
  const rendered: (ChartToRender & Awaited<ReturnType<typeof renderChart>>)[] = [];
  for (let i = 0; i < charts.length; i++) {
    const c = charts[i]!;
    progress(`rendering ${i + 1}/${charts.length} (${c.name})`);
    rendered.push({ ...c, ...(await renderChart(c.spec)) });
  }
  mkdirSync(options.outDir, { recursive: true });
  const written: ReportChart[] = [];
  for (const c of rendered) {
    const files = { spec: `${c.name}.vl.json`, svg: `${c.name}.svg`, png: `${c.name}.png` };
    writeFileAtomic(join(options.outDir, files.spec), JSON.stringify(withChartConfig(c.spec), null, 2) + "\n");
    writeFileAtomic(join(options.outDir, files.svg), c.svg);
    writeFileAtomic(join(options.outDir, files.png), c.png);
    written.push({
      name: c.name,
      heading: c.heading,
      caption: c.caption,
      files,
      widthPx: c.widthPx,
      heightPx: c.heightPx,
    });
  }
  const title = p
    ? `Spillway report: ${p.model} on ${p.hardware}`
    : comparison
      ? `Spillway report: ${comparison.model}`
      : options.sweep && traces.length === 0
        ? `Spillway report: ${options.sweep.model} over ${options.sweep.rows.length} profiles`
        : `Spillway report: ${traces.map((t) => basename(t.path)).join(", ")}`;
  const summary = p
    ? planSummary(p)
    : options.sweep && !comparison && traces.length === 0
      ? sweepSummary(options.sweep)
      : comparison
        ? `${comparison.model}, GPU batch ${policyWords(comparison.policy)}: predicted ${formatRate(comparison.predicted.throughputTokensPerSecond)}, simulated ${formatRate(comparison.simulated.throughputTokensPerSecond)}, measured ${formatRate(comparison.measured.throughputTokensPerSecond)} token/s`
        : `${traces.length} trace${traces.length === 1 ? "" : "s"}: ${traces.map((t) => `${basename(t.path)} (${t.source === "simulate" ? "simulated" : "measured"}, ${t.slices.length} tasks over ${t.endSeconds.toPrecision(3)} s)`).join("; ")}`;
  const index = join(options.outDir, "index.html");
  writeFileAtomic(index, reportHtml(title, summary, written, notes));
  return { outDir: options.outDir, index, title, summary, charts: written, notes };
}

export function reportHtml(
  title: string,
  summary: string,
  charts: readonly ReportChart[],
  notes: readonly string[],
): string {
  const sections = charts.map(
    (c) => `<section id="${escapeHtml(c.name)}">
<h2>${escapeHtml(c.heading)}</h2>
<p class="caption">${escapeHtml(c.caption)}</p>
<img src="${escapeHtml(c.files.png)}" width="${Math.round(c.widthPx / 2)}" height="${Math.round(c.heightPx / 2)}" alt="${escapeHtml(c.heading)}">
<p class="files"><a href="${escapeHtml(c.files.svg)}">SVG</a> · <a href="${escapeHtml(c.files.png)}">PNG</a> · <a href="${escapeHtml(c.files.spec)}">Vega-Lite spec</a></p>
</section>`,
  );
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body { font-family: "DejaVu Sans", system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
.summary { font-size: 1.05em; background: #f4f6f8; padding: 0.6em 0.9em; border-left: 4px solid #4c78a8; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.caption { color: #444; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.files { font-size: 0.85em; color: #666; }
nav a { margin-right: 0.8em; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="summary">${escapeHtml(summary)}</p>
<nav>${charts.map((c) => `<a href="#${escapeHtml(c.name)}">${escapeHtml(c.name)}</a>`).join(" ")}</nav>
${notes.length ? `<ul class="notes">${notes.map((n) => `<li>${escapeHtml(n)}</li>`).join("")}</ul>\n` : ""}${sections.join("\n")}
<p class="files">Made by <code>spillway report</code>. Each chart's data and encoding are in its .vl.json (open it in the Vega editor to explore).</p>
</body>
</html>
`;
}
