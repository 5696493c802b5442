import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { TopLevelSpec } from "vega-lite";
import { STORED_BITS_PER_PARAM } from "../../core/expert-policy.js";
import { InputError } from "../../core/input-error.js";
import type { Plan } from "../../core/plan.js";
import { planIdentity } from "../../core/plan-identity.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { ENGINE_NAMES } from "../../engines/engine-names.js";
import { predictOnEngine } from "../../engines/plan-for-engine.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { baselines } from "../../planner/baselines.js";
import { plan } from "../../planner/plan.js";
import type { LpCandidate } from "../../planner/spillway/spillway-search.js";
import { baselineRows, baselinesChart, needsLogScale } from "../../reports/baselines-chart.js";
import { buildReport } from "../../reports/build-report.js";
import { checkReportInputsMatch } from "../../reports/check-report-inputs.js";
import { type EngineRows, engineRows, enginesChart } from "../../reports/engines-chart.js";
import { frontierCaps, frontierChart, frontierPlans, frontierRows } from "../../reports/frontier-chart.js";
import { landscapeChart, landscapeRows } from "../../reports/landscape-chart.js";
import { memoryChart, memoryRows, peakGib } from "../../reports/memory-chart.js";
import { placementChart, placementRows } from "../../reports/placement-chart.js";
import { predictedVsMeasuredChart, predictedVsMeasuredRows } from "../../reports/predicted-vs-measured-chart.js";
import { readTrace, type Trace, type TraceSlice } from "../../reports/read-trace.js";
import { CHART_FONT, type RenderedChart, renderChart } from "../../reports/render-chart.js";
import { chooseWindow, timelineChart, timelineRows } from "../../reports/timeline-chart.js";
import { type SimulationResult, simulate } from "../../simulator/simulate.js";
import { runCli } from "../helpers.js";

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

test("placement chart: bars add up to each kind's bytes, split by the plan's fractions", async () => {
  const p = await plan({
    model: findCatalogueModel("opt-6.7b")!,
    hardware: resolveHardware("t4"),
    workload: { promptLen: 256, genLen: 16 },
    fixed: { gbs: 8, nb: 2, percent: [40, 60, 0, 100, 100, 0] },
  });
  const rows = placementRows(p);
  const of = (data: string, tier: string) => rows.find((r) => r.data === data && r.tier === tier)!.gib;
  const weights = of("weights", "gpu") + of("weights", "cpu") + of("weights", "disk");
  assert.ok(Math.abs(of("weights", "gpu") / weights - p.policy.weights.gpu) < 1e-12);
  assert.ok(
    Math.abs(weights - (p.modelSpec.numLayers * 12 * 4096 * 4096 * 2) / 2 ** 30) / weights < 0.05,
    "about 6.7B fp16 parameters",
  );
  assert.equal(of("KV cache", "gpu"), 0);
  assert.ok(of("KV cache", "cpu") > 0);
});

test("placement chart of a Mixtral plan: experts at their stored bits, and no more on the GPU than it holds", async () => {
  const hardware = resolveHardware("t4");
  const p = await plan({
    model: findCatalogueModel("mixtral-8x7b")!,
    hardware,
    workload: { promptLen: 128, genLen: 16 },
  });
  const e = p.policy.experts!;
  assert.ok(e.bits < 16, `the T4 plan stores experts below fp16 (${e.bits}-bit)`);
  const rows = placementRows(p);
  const of = (data: string, tier: string) => rows.find((r) => r.data === data && r.tier === tier)?.gib ?? 0;
  const experts = of("experts", "gpu") + of("experts", "cpu") + of("experts", "disk");
  // 32 layers x 8 experts x 3 x 4096 x 14336 values at the stored bits per value (scales included).
  const expected = (32 * 8 * 3 * 4096 * 14336 * STORED_BITS_PER_PARAM[e.bits]) / 8 / 2 ** 30;
  assert.ok(Math.abs(experts - expected) / expected < 1e-9, `${experts} GiB of experts, expected ${expected}`);
  assert.ok(Math.abs(of("experts", "gpu") / experts - e.cacheSize / 8) < 1e-9, "the cached share");
  const onGpu = rows.filter((r) => r.tier === "gpu").reduce((a, r) => a + r.gib, 0);
  assert.ok(
    onGpu * 2 ** 30 <= hardware.capacityBytes.gpu.value,
    `${onGpu.toFixed(1)} GiB drawn on a ${(hardware.capacityBytes.gpu.value / 2 ** 30).toFixed(1)} GiB GPU`,
  );
  const svg = (await renderChart(placementChart(p))).svg;
  assert.ok(svg.includes(`experts ${e.bits}-bit, ${e.cacheSize} of 8 per layer cached`), "the subtitle says so");
});

test("a chart renders headlessly to a valid SVG and PNG with its text", async () => {
  const p = await plan({
    model: findCatalogueModel("opt-1.3b")!,
    hardware: resolveHardware("t4"),
    workload: { promptLen: 64, genLen: 8 },
  });
  const r = await renderChart(placementChart(p));
  assert.match(r.svg, /^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  for (const text of ["Where opt-1.3b lives", "GiB", "weights", "KV cache", "gpu", "disk"])
    assert.ok(r.svg.includes(text), text);
  assert.ok((r.svg.match(/<path/g) ?? []).length >= 3, "bars drawn");
  assert.deepEqual([...r.png.subarray(0, 8)], PNG_SIGNATURE);
  assert.ok(r.widthPx >= 800 && r.heightPx >= 300, `${r.widthPx}x${r.heightPx}`);
  assert.ok(r.png.byteLength > 10_000, "not a blank image");
});

// ---------------------------------------------------------------------------------------------------
// Every chart of the report, from a small model and a short workload so the file stays fast.

const SMALL = {
  model: findCatalogueModel("opt-1.3b")!,
  hardware: resolveHardware("t4"),
  workload: { promptLen: 64, genLen: 8 },
  maxBlock: 32,
} as const;
const dir = mkdtempSync(join(tmpdir(), "spillway-reports-"));
after(() => rmSync(dir, { recursive: true, force: true }));

let small: Promise<{ plan: Plan; candidates: LpCandidate[] }> | undefined;
/** One searched plan shared by the tests, with every LP point its search solved. */
function smallPlan(): Promise<{ plan: Plan; candidates: LpCandidate[] }> {
  small ??= (async () => {
    const candidates: LpCandidate[] = [];
    const p = await plan({ ...SMALL, onCandidate: (c) => candidates.push(c) });
    return { plan: p, candidates };
  })();
  return small;
}

let simulated: { trace: Trace; result: SimulationResult; path: string } | undefined;
async function smallSimulation() {
  if (!simulated) {
    const { plan: p } = await smallPlan();
    const path = join(dir, "small-trace.json");
    const result = simulate(p, SMALL.hardware, {
      schedule: p.schedule,
      capacityBytes: p.predicted.capacityBytes,
      tracePath: path,
    });
    simulated = { trace: readTrace(path), result, path };
  }
  return simulated;
}

/** A rendered chart is a standalone SVG with its text and real marks, and a non-blank PNG of sane size. */
async function assertRenders(spec: TopLevelSpec, texts: readonly string[], minMarks: number): Promise<RenderedChart> {
  const r = await renderChart(spec);
  assert.match(r.svg, /^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  for (const text of texts) assert.ok(r.svg.includes(text), `SVG has "${text}"`);
  const marks = (r.svg.match(/<(path|rect|line|circle)\b/g) ?? []).length;
  assert.ok(marks >= minMarks, `${marks} marks, expected at least ${minMarks}`);
  assert.deepEqual([...r.png.subarray(0, 8)], PNG_SIGNATURE);
  assert.ok(
    r.widthPx >= 600 && r.widthPx <= 4000 && r.heightPx >= 200 && r.heightPx <= 4000,
    `${r.widthPx}x${r.heightPx}`,
  );
  assert.ok(r.png.byteLength > 15_000, `PNG of ${r.png.byteLength} bytes looks blank`);
  return r;
}

test("the search reports every LP point it solves, and the chosen policy is one of them", async () => {
  const { plan: p, candidates } = await smallPlan();
  assert.ok(candidates.length >= 20, `${candidates.length} LP points`);
  assert.ok(candidates.length <= p.search.lpSolves, "only solved points, at most one per LP solve");
  for (const c of candidates) {
    assert.ok(c.gbs * c.nb <= SMALL.maxBlock && c.lpThroughputTokensPerSecond > 0);
    assert.ok(["gpu", "cpu", "disk"].includes(c.activationTier));
  }
  assert.ok(
    candidates.some(
      (c) =>
        c.gbs === p.policy.gpuBatchSize &&
        c.nb === p.policy.numGpuBatches &&
        c.compressWeight === p.policy.compressWeight,
    ),
  );
  // Without an observer the search is unchanged.
  const again = await plan(SMALL);
  assert.deepEqual(again.policy, p.policy);
  assert.equal(again.predicted.throughputTokensPerSecond, p.predicted.throughputTokensPerSecond);
});

test("landscape: one line point per (gbs, nb) with the best LP estimate, exactly one chosen point at the plan's gbs x nb", async () => {
  const { plan: p, candidates } = await smallPlan();
  const rows = landscapeRows(candidates, {
    gbs: p.policy.gpuBatchSize,
    nb: p.policy.numGpuBatches,
    throughputTokensPerSecond: p.predicted.throughputTokensPerSecond,
  });
  assert.equal(rows.chosen.length, 1);
  assert.equal(rows.chosen[0]!.blockSequences, p.policy.gpuBatchSize * p.policy.numGpuBatches);
  assert.equal(rows.chosen[0]!.throughputTokensPerSecond, p.predicted.throughputTokensPerSecond);
  const keys = rows.lines.map((r) => `${r.gbs}x${r.nb}`);
  assert.equal(new Set(keys).size, keys.length, "one point per (gbs, nb)");
  for (const r of rows.lines) {
    const best = Math.max(
      ...candidates.filter((c) => c.gbs === r.gbs && c.nb === r.nb).map((c) => c.lpThroughputTokensPerSecond),
    );
    assert.equal(r.lpThroughputTokensPerSecond, best);
    assert.equal(r.blockSequences, r.gbs * r.nb);
  }
  for (let i = 1; i < rows.lines.length; i++) {
    const a = rows.lines[i - 1]!,
      b = rows.lines[i]!;
    assert.ok(a.gbs < b.gbs || (a.gbs === b.gbs && a.blockSequences < b.blockSequences), "sorted by gbs, then block");
  }
  await assertRenders(
    landscapeChart(rows, p),
    [
      "Search landscape: opt-1.3b on t4",
      "block size",
      "token/s",
      `chosen: ${p.policy.gpuBatchSize}×${p.policy.numGpuBatches}`,
      "GPU batch size",
    ],
    10,
  );
});

test("landscape: an nb that only some families solved (a boundary refinement) is left out, not drawn as a dip", () => {
  const point = (nb: number, cpuAttention: boolean, lp: number): LpCandidate => ({
    gbs: 4,
    nb,
    compressWeight: false,
    compressCache: false,
    cpuAttention,
    activationTier: "gpu",
    lpThroughputTokensPerSecond: lp,
  });
  const rows = landscapeRows(
    [
      point(1, false, 1),
      point(2, false, 2),
      point(3, false, 0.5),
      point(1, true, 1.5),
      point(2, true, 3),
      point(4, true, 4),
      point(6, true, 4.5),
    ],
    { gbs: 4, nb: 4, throughputTokensPerSecond: 4 },
  );
  assert.deepEqual(
    rows.lines.map((r) => [r.nb, r.lpThroughputTokensPerSecond]),
    [
      [1, 1.5],
      [2, 3],
      [4, 4],
      [6, 4.5],
    ],
  );
});

test("frontier: one plan per block cap, rows sorted by block with each plan's own throughput and latency", async () => {
  const { plan: p } = await smallPlan();
  const block = p.policy.gpuBatchSize * p.policy.numGpuBatches;
  assert.deepEqual(frontierCaps(block), [...[1, 2, 4, 8, 16].filter((b) => b < block), block]);
  const seen: string[] = [];
  const plans = await frontierPlans(
    { model: SMALL.model, hardware: SMALL.hardware, workload: SMALL.workload },
    block,
    (done, total, cap) => seen.push(`${done}/${total}:${cap}`),
  );
  assert.equal(seen.length, frontierCaps(block).length);
  const rows = frontierRows(plans);
  for (let i = 1; i < rows.length; i++)
    assert.ok(rows[i - 1]!.blockSequences < rows[i]!.blockSequences, "strictly increasing block");
  for (const r of rows) {
    const source = plans.find((x) => x.maxBlock === r.maxBlock)!.plan;
    assert.ok(r.blockSequences <= r.maxBlock);
    assert.equal(r.throughputTokensPerSecond, source.predicted.throughputTokensPerSecond);
    assert.equal(r.latencySeconds, source.predicted.prefillSeconds + source.predicted.decodeSeconds);
  }
  assert.equal(
    rows[rows.length - 1]!.throughputTokensPerSecond,
    p.predicted.throughputTokensPerSecond,
    "the full cap finds the plan itself",
  );
  assert.ok(rows[0]!.throughputTokensPerSecond < rows[rows.length - 1]!.throughputTokensPerSecond);
  await assertRenders(
    frontierChart(rows, { model: "opt-1.3b", hardware: "t4", promptLen: 64, genLen: 8 }),
    ["Latency–throughput frontier", "latency: seconds", "throughput (token/s", String(block)],
    3,
  );
});

test("baselines: a bar per policy that runs, the reason as text for one that cannot, a log axis past 100x", async () => {
  const { plan: p } = await smallPlan();
  const real = await baselines({ model: SMALL.model, hardware: SMALL.hardware, workload: SMALL.workload });
  const slow = {
    ...p,
    predicted: {
      ...p.predicted,
      throughputTokensPerSecond: p.predicted.throughputTokensPerSecond / 500,
      bottleneck: "disk read",
    },
  };
  const rows = baselineRows(p, [
    ...real,
    { name: "slow-one", plan: slow },
    { name: "impossible", reason: "no batch fits with the KV cache on the GPU" },
  ]);
  assert.equal(rows[0]!.name, "Spillway");
  assert.equal(rows[0]!.throughputTokensPerSecond, p.predicted.throughputTokensPerSecond);
  assert.equal(rows.length, real.length + 3);
  for (const b of real) assert.ok(rows.some((r) => r.name === b.name));
  const impossible = rows.find((r) => r.name === "impossible")!;
  assert.equal(impossible.throughputTokensPerSecond, undefined);
  assert.match(impossible.text, /^cannot run: no batch fits/);
  assert.match(rows.find((r) => r.name === "slow-one")!.text, /disk read-bound · \d+×\d+$/);
  assert.equal(needsLogScale(rows), true);
  assert.equal(needsLogScale(rows.filter((r) => r.name !== "slow-one" && r.name !== "deepspeed-zero")), false);
  const spec = baselinesChart(rows, { model: "opt-1.3b", hardware: "t4", promptLen: 64, genLen: 8 });
  const r = await assertRenders(
    spec,
    [
      "Spillway against the baselines",
      "log scale",
      "cannot run: no batch fits",
      "impossible",
      `${p.policy.gpuBatchSize}×${p.policy.numGpuBatches}`,
    ],
    4,
  );
  // One bar per runnable row and none for the impossible one.
  const bars = (r.svg.match(/aria-roledescription="bar"/g) ?? []).length;
  assert.equal(bars, rows.filter((x) => x.throughputTokensPerSecond !== undefined).length);
});

test("engines: the plan's policy on every engine that runs it, terms end to end summing to each engine's run, reasons for the rest", async () => {
  const { plan: p } = await smallPlan();
  const rows = engineRows(p, SMALL.hardware);
  // OPT runs on Spillway, FlexGen, Accelerate and DeepSpeed; llama.cpp has no OPT and mixtral-offloading is MoE-only.
  assert.deepEqual(
    rows.bars.map((b) => b.engine),
    ["spillway", "flexgen", "accelerate", "deepspeed"],
  );
  assert.deepEqual(
    rows.skipped.map((s) => s.engine),
    ["llama.cpp", "mixtral-offloading"],
  );
  assert.match(rows.skipped[0]!.reason, /^llama\.cpp has no OPT architecture/);
  assert.match(rows.skipped[1]!.reason, /dense model; mixtral-offloading runs Mixture-of-Experts models only/);
  assert.equal(rows.bars.length + rows.skipped.length, ENGINE_NAMES.length);
  for (const bar of rows.bars) {
    const direct = predictOnEngine({
      engine: bar.engine,
      model: p.modelSpec,
      hardware: SMALL.hardware,
      workload: p.workload,
      policy: p.policy,
    });
    assert.equal(bar.totalSeconds, direct.totalSeconds, bar.engine);
    assert.equal(bar.throughputTokensPerSecond, direct.throughputTokensPerSecond, bar.engine);
    assert.equal(bar.feasible, direct.feasible, bar.engine);
    assert.ok(bar.terms.length >= 2, `${bar.engine}: ${bar.terms.length} terms`);
    const sum = bar.terms.reduce((a, t) => a + t.seconds, 0);
    assert.ok(
      Math.abs(sum - bar.totalSeconds) <= 1e-9 * bar.totalSeconds,
      `${bar.engine}: ${sum} vs ${bar.totalSeconds}`,
    );
    assert.equal(bar.terms[0]!.start, 0);
    for (let i = 0; i < bar.terms.length; i++) {
      const t = bar.terms[i]!;
      assert.ok(t.seconds > 0, `${bar.engine} ${t.term}`);
      assert.ok(Math.abs(t.end - t.start - t.seconds) <= 1e-12 * bar.totalSeconds, `${bar.engine} ${t.term}`);
      assert.equal(t.seconds, direct.termSeconds[t.term], `${bar.engine} ${t.term}`);
      if (i > 0) {
        assert.equal(t.start, bar.terms[i - 1]!.end, "segments laid end to end");
        assert.ok(t.seconds <= bar.terms[i - 1]!.seconds, "largest first");
      }
    }
    assert.ok(Math.abs(bar.terms.at(-1)!.end - bar.totalSeconds) <= 1e-9 * bar.totalSeconds);
    assert.equal(bar.terms[0]!.term, direct.bottleneck, `${bar.engine}: the longest segment is its bottleneck term`);
    assert.match(bar.label, /^[0-9.]+ token\/s/);
    assert.equal(bar.label.endsWith(" (does not fit)"), !bar.feasible, bar.engine);
  }
  // Spillway's engine model of the plan's own policy is the plan's prediction.
  assert.equal(rows.bars[0]!.throughputTokensPerSecond, p.predicted.throughputTokensPerSecond);
  // The block of 32 sequences keeps its KV cache off the GPU; Accelerate and DeepSpeed keep it on the GPU.
  assert.equal(rows.bars.find((b) => b.engine === "spillway")!.feasible, true);

  const spec = enginesChart(rows, {
    model: p.model,
    hardware: p.hardware,
    policy: p.policy,
    promptLen: p.workload.promptLen,
    genLen: p.workload.genLen,
  });
  const r = await assertRenders(
    spec,
    [
      `opt-1.3b, GPU batch ${p.policy.gpuBatchSize}×${p.policy.numGpuBatches} on each engine: where the time goes`,
      "cannot run: llama.cpp has no OPT",
      "mixtral-offloading",
      `${rows.bars.find((b) => b.engine === "flexgen")!.label}`,
      // Every term, in the legend.
      ...new Set(rows.bars.flatMap((b) => b.terms.map((t) => t.term.replace(/&/g, "&amp;").replace(/>/g, "&gt;")))),
    ],
    10,
  );
  const segments = rows.bars.reduce((n, b) => n + b.terms.length, 0);
  assert.equal((r.svg.match(/aria-roledescription="bar"/g) ?? []).length, segments, "one bar mark per term segment");
});

test("engines: --engine picks the engines, and the plan's engine knobs go to its own engine only", async () => {
  const { plan: p } = await smallPlan();
  const some = engineRows(p, SMALL.hardware, ["flexgen", "llama.cpp", "flexgen", "spillway"]);
  assert.deepEqual(
    some.bars.map((b) => b.engine),
    ["flexgen", "spillway"],
  );
  assert.deepEqual(
    some.skipped.map((s) => s.engine),
    ["llama.cpp"],
  );
  const plain = predictOnEngine({
    engine: "flexgen",
    model: p.modelSpec,
    hardware: SMALL.hardware,
    workload: p.workload,
    policy: p.policy,
  });
  const fewer = predictOnEngine({
    engine: "flexgen",
    model: p.modelSpec,
    hardware: SMALL.hardware,
    workload: p.workload,
    policy: p.policy,
    knobs: { fewerBatch: true },
  });
  assert.notEqual(fewer.totalSeconds, plain.totalSeconds, "the knob changes FlexGen's prediction");
  const flexgenOf = (r: EngineRows) => r.bars.find((b) => b.engine === "flexgen")!.totalSeconds;
  const knobs = { fewerBatch: true } as const;
  assert.equal(
    flexgenOf(engineRows({ ...p, engine: "flexgen", engineKnobs: knobs }, SMALL.hardware)),
    fewer.totalSeconds,
  );
  assert.equal(flexgenOf(engineRows({ ...p, engineKnobs: knobs }, SMALL.hardware)), plain.totalSeconds);
});

test("read-trace: a simulator trace reads back as slices per resource and memory samples per tier", async () => {
  const { trace, result } = await smallSimulation();
  assert.equal(trace.source, "simulate");
  assert.equal(
    trace.slices.length + trace.memory.length + 15,
    result.traceEvents,
    "every X and C event, besides 15 metadata events",
  );
  assert.ok(Math.abs(trace.endSeconds - result.makespanSeconds) < 1e-9 * result.makespanSeconds);
  for (const tier of ["gpu", "cpu"] as const) {
    const peak = Math.max(...trace.memory.filter((m) => m.tier === tier).map((m) => m.bytes));
    assert.ok(Math.abs(peak - result.peakBytes[tier]) <= 1, `${tier} peak ${peak} vs ${result.peakBytes[tier]}`);
  }
  const busyGpu = trace.slices.filter((s) => s.resource === "gpu").reduce((a, s) => a + s.durationSeconds, 0);
  assert.ok(Math.abs(busyGpu - result.busySeconds.gpu) / result.busySeconds.gpu < 1e-9);
});

test("read-trace: bad files are named with what is wrong", () => {
  const write = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  assert.throws(
    () => readTrace(write("nojson.json", "ph X")),
    (e: Error) => e instanceof InputError && /nojson\.json: not valid JSON/.test(e.message),
  );
  assert.throws(
    () => readTrace(write("noevents.json", '{"events": []}')),
    (e: Error) =>
      e instanceof InputError && /noevents\.json: traceEvents: expected an array of trace events/.test(e.message),
  );
  assert.throws(
    () => readTrace(write("badts.json", '{"traceEvents": [{"ph": "X", "cat": "gpu", "ts": "soon", "dur": 1}]}')),
    (e: Error) => /badts\.json: traceEvents\[0\]\.ts: expected a finite number, got the string "soon"/.test(e.message),
  );
  assert.throws(
    () =>
      readTrace(
        write("badcat.json", '{"traceEvents": [{"ph": "X", "cat": "tpu", "pid": 9, "tid": 9, "ts": 0, "dur": 1}]}'),
      ),
    (e: Error) => /badcat\.json: traceEvents\[0\]\.cat: expected a resource/.test(e.message),
  );
  assert.throws(
    () => readTrace(write("empty.json", '{"traceEvents": []}')),
    (e: Error) => /empty\.json: traceEvents: no task events/.test(e.message),
  );
});

test("timeline: the default window is the middle layer of the first decode step, for simulated and measured tags alike", async () => {
  const { trace, result } = await smallSimulation();
  const window = chooseWindow(trace.slices);
  assert.equal(window.token, 1);
  assert.equal(window.layer, Math.floor((SMALL.model.numLayers - 1) / 2));
  const own = trace.slices.filter((s) => s.token === 1 && s.layer === window.layer);
  assert.equal(window.startSeconds, Math.min(...own.map((s) => s.startSeconds)));
  const rows = timelineRows(trace, window);
  const durationMs = (window.endSeconds - window.startSeconds) * 1e3;
  assert.equal(rows.filter((r) => r.own).length, own.length);
  for (const r of rows) assert.ok(r.startMs >= 0 && r.endMs <= durationMs + 1e-9 && r.startMs <= r.endMs);
  assert.ok(durationMs < (result.makespanSeconds * 1e3) / 10, "a readable slice of the run, not all of it");
  // The runtime tags the embedding -1 and the head numLayers, as the simulator tags the head.
  const runtimeLike: TraceSlice[] = [-1, 0, 1, 2, 3].flatMap((layer) =>
    [0, 1].map((token) => ({
      resource: "gpu" as const,
      name: "compute",
      startSeconds: token + layer / 10 + 0.1,
      durationSeconds: 0.05,
      token,
      layer,
      batch: 0,
      bytes: undefined,
    })),
  );
  const w = chooseWindow(runtimeLike);
  assert.deepEqual([w.token, w.layer], [1, 1]);
  assert.match(w.description, /layer 1 of the first decode step/);
  await assertRenders(
    timelineChart(rows, window, { title: "Timeline (simulated): opt-1.3b" }),
    [
      "Timeline (simulated): opt-1.3b",
      "time in the window (ms)",
      `layer ${window.layer} of the first decode step`,
      ...new Set(rows.map((r) => r.resourceLabel)),
    ],
    own.length,
  );
});

test("memory: downsampled rows keep each tier's peak and its time order, within the bucket budget", async () => {
  const { trace } = await smallSimulation();
  const full = memoryRows(trace.memory, Infinity);
  const coarse = memoryRows(trace.memory, 50);
  for (const tier of ["gpu", "cpu", "disk"] as const) {
    const samples = trace.memory.filter((m) => m.tier === tier);
    if (samples.length === 0) continue;
    const peak = Math.max(...samples.map((m) => m.bytes)) / 2 ** 30;
    assert.equal(peakGib(full, tier), peak);
    assert.equal(peakGib(coarse, tier), peak, `${tier}: the peak survives downsampling`);
    const own = coarse.filter((r) => r.tier === tier);
    assert.ok(own.length <= 51, `${own.length} points`);
    for (let i = 1; i < own.length; i++) assert.ok(own[i - 1]!.seconds <= own[i]!.seconds);
    for (const r of own) assert.ok(r.gib <= peak);
  }
  assert.ok(trace.memory.length > 200, "the trace has more samples than the coarse budget");
  const { plan: p } = await smallPlan();
  await assertRenders(
    memoryChart(coarse, p.predicted.capacityBytes, { title: "Memory in use (simulated)" }),
    ["Memory in use (simulated)", "GPU: peak", "GiB in use", "time since the start of the run (s)"],
    4,
  );
});

test("predicted vs simulated: phases and busy streams side by side with the figures they came from", async () => {
  const { plan: p } = await smallPlan();
  const { result } = await smallSimulation();
  const rows = predictedVsMeasuredRows({ predicted: p.predicted, simulated: result });
  const at = (figure: string, source: string) => rows.find((r) => r.figure === figure && r.source === source)?.seconds;
  assert.equal(at("prefill", "predicted"), p.predicted.prefillSeconds);
  assert.equal(at("decode", "simulated"), result.decodeSeconds);
  assert.equal(at("GPU compute", "simulated"), result.busySeconds.gpu);
  assert.equal(at("GPU compute", "predicted"), p.predicted.busySeconds.gpu);
  assert.ok(rows.every((r) => r.source !== "measured"));
  for (const r of rows.filter((x) => x.group === "stream busy"))
    assert.ok(
      rows.some((x) => x.figure === r.figure && x.seconds > 0),
      "idle streams left out",
    );
  await assertRenders(
    predictedVsMeasuredChart(rows, { title: "Predicted vs simulated: opt-1.3b" }),
    ["Predicted vs simulated: opt-1.3b", "seconds", "prefill", "decode", "GPU compute", "predicted", "simulated"],
    6,
  );
});

test("buildReport writes every chart as .vl.json, .svg and .png, and an index.html that shows every PNG", async () => {
  const { plan: p } = await smallPlan();
  const out = join(dir, "report");
  const progress: string[] = [];
  const summary = await buildReport({
    plan: p,
    hardware: SMALL.hardware,
    outDir: out,
    onProgress: (m) => progress.push(m),
  });
  const names = summary.charts.map((c) => c.name);
  assert.deepEqual(names, [
    "placement",
    "landscape",
    "frontier",
    "baselines",
    "engines",
    "timeline",
    "memory",
    "predicted-vs-simulated",
  ]);
  assert.ok(
    summary.notes.some((n) => /^engines chart: llama\.cpp cannot run this plan: llama\.cpp has no OPT/.test(n)),
  );
  const html = readFileSync(join(out, "index.html"), "utf8");
  assert.match(html, /<title>Spillway report: opt-1\.3b on t4<\/title>/);
  assert.ok(html.includes(summary.summary.replace(/&/g, "&amp;")), "the one-line summary");
  assert.match(
    summary.summary,
    new RegExp(`GPU batch ${p.policy.gpuBatchSize} × ${p.policy.numGpuBatches}.*predicted [0-9.]+ token/s`),
  );
  assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/, "no scripts, nothing fetched");
  for (const c of summary.charts) {
    assert.ok(html.includes(`<img src="${c.name}.png"`), `index shows ${c.name}.png`);
    assert.ok(html.includes(`<h2>${c.heading.replace(/&/g, "&amp;")}</h2>`));
    const png = readFileSync(join(out, `${c.name}.png`));
    assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE);
    assert.match(readFileSync(join(out, `${c.name}.svg`), "utf8"), /^<svg/);
    const spec = JSON.parse(readFileSync(join(out, `${c.name}.vl.json`), "utf8")) as { config?: { font?: string } };
    assert.equal(spec.config?.font, CHART_FONT);
  }
  assert.deepEqual(
    readdirSync(out).filter((f) => f.includes(".tmp-") || f.endsWith(".spillway-tmp")),
    [],
    "no temporary files left",
  );
  assert.ok(progress.some((m) => /^frontier 1\/\d+ \(max block 1\)$/.test(m)));
  assert.ok(
    progress.includes("baselines") &&
      progress.includes("engines") &&
      progress.includes("simulation") &&
      progress.some((m) => m.startsWith("rendering ")),
  );
});

test("spillway report: traces and comparisons by content; a file of another kind exits 2 naming it", async () => {
  const { path } = await smallSimulation();
  const out = join(dir, "cli-report");
  const ok = runCli(["report", path, "--out", out, "--json"]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stderr, "", "--json prints no progress");
  const written = JSON.parse(ok.stdout) as { charts: { name: string; files: { png: string } }[] };
  assert.deepEqual(
    written.charts.map((c) => c.name),
    ["timeline", "memory"],
  );
  for (const c of written.charts) assert.ok(existsSync(join(out, c.files.png)));
  const other = join(dir, "profile.json");
  writeFileSync(other, JSON.stringify({ name: "t4", gpu: {} }));
  const bad = runCli(["report", other, "--out", join(dir, "never")]);
  assert.equal(bad.status, 2);
  assert.match(
    bad.stderr,
    /^spillway: .*profile\.json: expected a plan \(spillway plan --out or --json\), a trace .* or a comparison .*; found an object with keys name, gpu\n$/,
  );
  assert.equal(existsSync(join(dir, "never")), false, "nothing written");
  // A plan of another policy beside the trace: refused before any work, naming both files.
  const { plan: p } = await smallPlan();
  const otherPlan = join(dir, "other-plan.json");
  writeFileSync(
    otherPlan,
    JSON.stringify({ ...p, policy: { ...p.policy, numGpuBatches: p.policy.numGpuBatches + 1 } }),
  );
  const mismatched = runCli(["report", otherPlan, path, "--out", join(dir, "never-mismatched")]);
  assert.equal(mismatched.status, 2);
  assert.match(
    mismatched.stderr,
    /^spillway: .*small-trace\.json: made from another plan than .*other-plan\.json \(numGpuBatches: \d+ vs \d+\); give the files of one plan per report\n$/,
  );
  assert.equal(existsSync(join(dir, "never-mismatched")), false, "nothing written");
  const missing = runCli(["report", "--out", join(dir, "x"), join(dir, "missing.json")]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /missing\.json: no such file/);
});

test("a trace records the plan it came from, and report refuses files of different plans, naming them", async () => {
  const { plan: p } = await smallPlan();
  const { trace, path } = await smallSimulation();
  assert.deepEqual(trace.plan, planIdentity(p.model, p.workload, p.policy));
  const asPlan = { kind: "plan", path: "p.json", plan: p } as const;
  const asTrace = { kind: "trace", path, trace } as const;
  checkReportInputsMatch([asPlan, asTrace]);
  const other: Plan = { ...p, policy: { ...p.policy, gpuBatchSize: p.policy.gpuBatchSize + 1 } };
  assert.throws(
    () => checkReportInputsMatch([{ kind: "plan", path: "other.json", plan: other }, asTrace]),
    (e: unknown) =>
      e instanceof InputError &&
      e.message.includes("small-trace.json") &&
      e.message.includes("made from another plan than other.json") &&
      e.message.includes(`gpuBatchSize: ${p.policy.gpuBatchSize + 1} vs ${p.policy.gpuBatchSize}`),
  );
  const comparison = {
    model: "opt-6.7b",
    workload: p.workload,
    policy: p.policy,
    predicted: result0(p),
    simulated: result0(p),
    measured: result0(p),
    relativeError: { throughput: 0, prefill: 0, decode: 0, simulatedThroughput: 0 },
    matchesReference: undefined,
  };
  assert.throws(
    () => checkReportInputsMatch([asPlan, { kind: "comparison", path: "c.json", comparison }]),
    /c\.json: made from another plan than p\.json \(model: "opt-1\.3b" vs "opt-6\.7b"\)/,
  );
  // A trace written before traces named their plan cannot be checked and is taken as it is.
  const { plan: _dropped, ...legacy } = trace;
  checkReportInputsMatch([
    { kind: "plan", path: "other.json", plan: other },
    { kind: "trace", path, trace: legacy },
  ]);
});

function result0(p: Plan) {
  return { ...p.predicted, busySeconds: {} };
}

test("a plan with traces gives every chart the plan alone gives, and the traces' own", async () => {
  const { plan: p } = await smallPlan();
  const { trace } = await smallSimulation();
  const names = async (traces: Trace[], out: string) =>
    (
      await buildReport({ plan: p, traces, hardware: SMALL.hardware, outDir: join(dir, out), analyses: false })
    ).charts.map((c) => c.name);
  // What the plan alone gives without the analyses (the buildReport test above lists them with analyses).
  const alone = ["placement", "engines", "timeline", "memory", "predicted-vs-simulated"];
  // Its simulated trace is the same simulation: charted once.
  assert.deepEqual(await names([trace], "with-simulation"), alone);
  // A measured trace (the runtime's: task slices, no memory counters) adds its own timeline.
  const measured: Trace = { ...trace, path: join(dir, "run-trace.json"), source: "run", memory: [] };
  assert.deepEqual(await names([measured], "with-run"), [
    "placement",
    "engines",
    "timeline",
    "memory",
    "timeline-run-trace",
    "predicted-vs-simulated",
  ]);
});

test("spillway report --engine: a MoE plan's engines chart shows the engines named, and the reason for one that cannot run it", async () => {
  const moe = await plan({
    model: findCatalogueModel("mixtral-8x7b")!,
    hardware: SMALL.hardware,
    workload: { promptLen: 64, genLen: 8 },
    maxBlock: 8,
  });
  assert.ok(moe.policy.experts, "an expert policy");
  const path = join(dir, "moe-plan.json");
  writeFileSync(path, JSON.stringify(moe));
  const out = join(dir, "moe-report");
  const args = ["report", path, "--out", out, "--json", "--engine", "llama.cpp", "spillway", "--engine", "flexgen"];
  const ok = runCli(args);
  assert.equal(ok.status, 0, ok.stderr);
  const written = JSON.parse(ok.stdout) as { charts: { name: string }[]; notes: string[] };
  assert.deepEqual(
    written.charts.map((c) => c.name),
    ["placement", "engines"],
  );
  assert.ok(written.notes.some((n) => /^engines chart: flexgen cannot run this plan: .*runs OPT models only/.test(n)));
  assert.match(readFileSync(join(out, "engines.svg"), "utf8"), /^<svg/);
  const spec = JSON.parse(readFileSync(join(out, "engines.vl.json"), "utf8")) as {
    data: { values: { kind: string; engine: string; seconds?: number; totalSeconds?: number }[] };
  };
  const values = spec.data.values;
  const engines = (kind: string) => [...new Set(values.filter((v) => v.kind === kind).map((v) => v.engine))];
  assert.deepEqual(engines("total"), ["llama.cpp", "spillway"]);
  assert.deepEqual(engines("cannot run"), ["flexgen"]);
  for (const engine of ["llama.cpp", "spillway"]) {
    const total = values.find((v) => v.kind === "total" && v.engine === engine)!.totalSeconds!;
    const sum = values.filter((v) => v.kind === "term" && v.engine === engine).reduce((a, v) => a + v.seconds!, 0);
    assert.ok(Math.abs(sum - total) <= 1e-9 * total, `${engine}: ${sum} vs ${total}`);
  }
  const bad = runCli(["report", path, "--out", join(dir, "never-engine"), "--engine", "vllm"]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /vllm/);
});
