import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { compile } from "vega-lite";
import { pricesFromFlags } from "../../cli/price-flags.js";
import { withCapacities } from "../../core/hardware-profile.js";
import { InputError } from "../../core/input-error.js";
import type { Progress } from "../../core/progress.js";
import { loadShippedCluster } from "../../core/resolve-cluster.js";
import { loadShippedProfile } from "../../core/resolve-hardware.js";
import { GIB } from "../../core/units.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { loadLpSolvers } from "../../planner/lp/solve-linear-program.js";
import { planSync } from "../../planner/plan.js";
import { dollarsPerGpuHourOf, dollarsPerMillionTokens } from "../../planner/sweep/gpu-hour-prices.js";
import { parseSweepResult } from "../../planner/sweep/parse-sweep.js";
import { planOnTarget } from "../../planner/sweep/plan-on-target.js";
import { parsePricesCsv, parsePricesJson, readPricesFile } from "../../planner/sweep/read-prices-file.js";
import { type SweepRequest, type SweepResult, sweep } from "../../planner/sweep/sweep.js";
import { parseSweepCsv, sweepToCsv } from "../../planner/sweep/sweep-csv.js";
import { readSweepFile, sweepJson, writeSweepFile } from "../../planner/sweep/sweep-file.js";
import { sweepRow } from "../../planner/sweep/sweep-row.js";
import { placeLabels, type SweepChartRow, sweepChart, sweepLeftOut, sweepPoints } from "../../reports/sweep-chart.js";

const model = findCatalogueModel("opt-1.3b")!;
const workload = { promptLen: 512, genLen: 32 };
const t4 = loadShippedProfile("t4");
const l4 = loadShippedProfile("l4");
const cluster = loadShippedCluster("4x1-t4-gcp");
/** A T4 with too little memory of every kind for opt-1.3b's 2.45 GiB of weights: no policy fits. */
const starved = {
  ...withCapacities(t4, { gpu: 0.1 * GIB, cpu: 0.1 * GIB, disk: 0 }),
  name: "t4-starved",
};
/** The cluster first: with two workers it finishes after the single GPUs, yet its row stays first. */
const request: SweepRequest = {
  model,
  workload,
  maxBlock: 2,
  hardware: [cluster, t4, starved, l4],
  prices: { all: 0.5, byProfile: { t4: 0.35 } },
};
let one: SweepResult;
let two: SweepResult;
const progress: Progress[] = [];
const dir = mkdtempSync(join(tmpdir(), "spillway-sweep-"));
after(() => rmSync(dir, { recursive: true, force: true }));

before(async () => {
  one = await sweep({ ...request, threads: 1, onProgress: (p) => progress.push(p) });
  two = await sweep({ ...request, threads: 2 });
});

test("sweep: one row per profile in the order given, whatever the threads; the same rows on 1 and 2 threads", () => {
  assert.deepEqual(
    one.rows.map((r) => r.profile),
    ["4x1-t4-gcp", "t4", "t4-starved", "l4"],
  );
  assert.deepEqual(two, one);
  assert.equal(one.kind, "sweep");
  assert.equal(one.model, "opt-1.3b");
  assert.deepEqual(one.workload, workload);
  assert.deepEqual(
    progress.map((p) => [p.phase, p.done, p.total]),
    [0, 1, 2, 3, 4].map((d) => ["sweep", d, 4]),
  );
  assert.match(progress.at(-1)!.detail!, /^l4: [\d.]+ token\/s$/);
});

test("sweep: each row is the plan the planner makes on that profile, and a cluster row its pipeline", async () => {
  const solvers = await loadLpSolvers();
  const t4Plan = planSync({ model, hardware: t4, workload, maxBlock: 2 }, solvers);
  const t4Row = one.rows[1]!;
  assert.equal(t4Row.fits, true);
  assert.equal(t4Row.throughputTokensPerSecond, t4Plan.predicted.throughputTokensPerSecond);
  assert.deepEqual(
    [t4Row.gpuBatchSize, t4Row.numGpuBatches, t4Row.stages, t4Row.microBatches, t4Row.bottleneck],
    [t4Plan.policy.gpuBatchSize, t4Plan.policy.numGpuBatches, 1, 1, t4Plan.predicted.bottleneck],
  );
  assert.deepEqual([t4Row.kind, t4Row.gpu, t4Row.nodes, t4Row.gpusPerNode, t4Row.gpus], ["gpu", "Tesla T4", 1, 1, 1]);
  const c = one.rows[0]!;
  assert.deepEqual([c.kind, c.nodes, c.gpusPerNode, c.gpus, c.fits], ["cluster", 4, 1, 4, true]);
  const clusterOutcome = planOnTarget({ model, workload, maxBlock: 2 }, cluster, solvers);
  assert.ok("plan" in clusterOutcome);
  const pipeline = clusterOutcome.plan.pipeline;
  assert.equal(c.stages, pipeline ? pipeline.stages.length : 1);
  assert.equal(c.microBatches, pipeline ? pipeline.microBatches : 1);
  assert.equal(c.tensorParallelSize, pipeline?.tensorParallelSize ?? 1);
  assert.equal(t4Row.tensorParallelSize, 1);
  assert.equal(c.throughputTokensPerSecond, clusterOutcome.plan.predicted.throughputTokensPerSecond);
  assert.ok(c.gpuBatchSize! * c.numGpuBatches! <= 2, "--max-block bounds the sequences in flight");
});

test("sweep: a profile that cannot plan gives a row with the reason, priced but without a cost", () => {
  const r = one.rows[2]!;
  assert.equal(r.fits, false);
  assert.match(r.reason!, /^no policy fits opt-1\.3b .* into GPU 102\.4 MiB, CPU 102\.4 MiB, disk 0 B/);
  assert.equal(r.throughputTokensPerSecond, undefined);
  assert.equal(r.gpuBatchSize, undefined);
  assert.equal(r.dollarsPerGpuHour, 0.5);
  assert.equal(r.dollarsPerMillionTokens, undefined);
});

test("cost per million tokens: GPUs x $/GPU-hour / 3600 / (token/s) x 1e6, every GPU of a cluster paid for", () => {
  // 4 GPUs at $2/h = $8/h; 100 token/s = 360,000 tokens/h: $8 / 0.36 M tokens = $22.22 per million.
  assert.ok(Math.abs(dollarsPerMillionTokens(4, 2, 100) - 22.2222222) < 1e-6);
  const [c, t] = one.rows;
  assert.equal(t!.dollarsPerGpuHour, 0.35, "a profile's own price beats the price for all");
  assert.equal(c!.dollarsPerGpuHour, 0.5);
  assert.ok(Math.abs(t!.dollarsPerMillionTokens! - ((0.35 / 3600) * 1e6) / t!.throughputTokensPerSecond!) < 1e-9);
  assert.ok(Math.abs(c!.dollarsPerMillionTokens! - ((4 * 0.5) / 3600 / c!.throughputTokensPerSecond!) * 1e6) < 1e-9);
  assert.equal(dollarsPerGpuHourOf(undefined, "t4"), undefined);
  assert.equal(dollarsPerGpuHourOf({ byProfile: { l4: 1 } }, "t4"), undefined);
});

test("a scored policy that does not fit is a row that does not fit, with its figures and no cost", async () => {
  const solvers = await loadLpSolvers();
  const outcome = planOnTarget(
    { model, workload, fixed: { gbs: 64, nb: 64, percent: [100, 0, 100, 0, 100, 0] } },
    t4,
    solvers,
  );
  const row = sweepRow(t4, outcome, { all: 1 });
  assert.equal(row.fits, false);
  assert.match(row.reason!, /^the policy does not fit: gpu/);
  assert.equal(row.gpuBatchSize, 64);
  assert.ok(row.throughputTokensPerSecond! > 0);
  assert.equal(row.dollarsPerMillionTokens, undefined);
});

test("sweep files: CSV and JSON round-trip exactly, written atomically and read back by extension", () => {
  assert.deepEqual(parseSweepCsv(sweepToCsv(one), "s.csv"), one);
  assert.deepEqual(parseSweepResult(JSON.parse(sweepJson(one)), "s.json"), one);
  for (const name of ["s.csv", "s.json"]) {
    const path = join(dir, name);
    writeSweepFile(path, one);
    assert.deepEqual(readSweepFile(path), one);
  }
  const csv = sweepToCsv(one).split("\n");
  assert.equal(csv.length, one.rows.length + 2);
  assert.match(csv[3]!, /,"no policy fits opt-1\.3b \(2\.45 GiB of weights\) with prompt 512 \+ 32 tokens into GPU/);
});

test("sweep files: each bad field is an InputError naming the file, line or field, and what was expected", () => {
  const csv = sweepToCsv(one);
  const lines = csv.split("\n");
  const bad = (edit: (l: string[]) => void) => {
    const copy = [...lines];
    edit(copy);
    return copy.join("\n");
  };
  const cases: [string, RegExp][] = [
    [
      bad((l) => (l[2] = l[2]!.replace(",gpu,Tesla T4,1,1,1,", ",gpu,Tesla T4,1,1,2,"))),
      /^s\.csv:3: gpus: expected nodes x gpusPerNode = 1, got 2$/,
    ],
    [
      bad((l) => (l[2] = l[2]!.replace(",0.35,", ",0.36,"))),
      /^s\.csv:3: dollarsPerMillionTokens: expected gpus x dollarsPerGpuHour/,
    ],
    [
      bad((l) => (l[3] = l[3]!.replace(/"no policy[^"]*"/, ""))),
      /^s\.csv:4: reason: missing: a row that does not fit says why$/,
    ],
    [
      bad((l) => (l[4] = l[4]!.replace("opt-1.3b", "opt-6.7b"))),
      /^s\.csv:5: model, workload or cost model differ from the first row's/,
    ],
    [bad((l) => (l[0] = l[0]!.replace("gpus,", "gpu_count,"))), /^s\.csv:1: column 11: unknown column "gpu_count"/],
    [
      bad((l) => (l[1] = l[1]!.replace(",true,", ",yes,"))),
      /^s\.csv:2: fits: expected true or false, got the string "yes"$/,
    ],
    [bad((l) => (l[4] = l[1]!)), /^s\.csv:5: profile: "4x1-t4-gcp" is in the sweep twice/],
    [lines[0]!, /^s\.csv: no rows/],
  ];
  for (const [text, message] of cases)
    assert.throws(
      () => parseSweepCsv(text, "s.csv"),
      (e: unknown) => e instanceof InputError && message.test(e.message),
      String(message),
    );
  const json = JSON.parse(sweepJson(one));
  assert.throws(
    () => parseSweepResult({ ...json, rows: [{ ...json.rows[0], stages: 5 }] }, "s.json"),
    /^InputError: s\.json: rows\[0\]\.stages: expected a number >= 1 and <= 4, got 5$/,
  );
  assert.throws(() => parseSweepResult({ ...json, kind: "plan" }, "s.json"), /s\.json: kind: expected "sweep"/);
  assert.throws(() => parseSweepResult({ ...json, rows: [] }, "s.json"), /s\.json: rows: expected a non-empty array/);
});

test("prices: a file (JSON or CSV) and --price flags, a flag over the file, a flag's unknown name refused", () => {
  assert.deepEqual(parsePricesJson({ t4: 0.35, "*": 2 }, "p.json"), { all: 2, byProfile: { t4: 0.35 } });
  assert.deepEqual(parsePricesCsv("profile,dollarsPerGpuHour\n# GCP\nt4,0.35\nl4,0.7\n", "p.csv"), {
    byProfile: { t4: 0.35, l4: 0.7 },
  });
  assert.throws(
    () => parsePricesJson({ t4: "cheap" }, "p.json"),
    /^InputError: p\.json: t4: expected a finite number >= 0/,
  );
  assert.throws(
    () => parsePricesCsv("profile,dollarsPerGpuHour\nt4,-1\n", "p.csv"),
    /p\.csv:2: dollarsPerGpuHour: expected a number >= 0/,
  );
  assert.throws(
    () => parsePricesCsv("name,price\nt4,1\n", "p.csv"),
    /p\.csv:1: expected the header row profile,dollarsPerGpuHour/,
  );
  assert.throws(
    () => parsePricesCsv("profile,dollarsPerGpuHour\nt4,1\nt4,2\n", "p.csv"),
    /p\.csv:3: dollarsPerGpuHour: "t4" is priced twice/,
  );
  const file = join(dir, "prices.json");
  writeFileSync(file, JSON.stringify({ t4: 0.35, l4: 0.7, h100: 3 }));
  assert.deepEqual(readPricesFile(file), { byProfile: { t4: 0.35, l4: 0.7, h100: 3 } });
  assert.deepEqual(pricesFromFlags(["l4=0.9", "1.5"], file, ["t4", "l4"]), {
    all: 1.5,
    byProfile: { t4: 0.35, l4: 0.9, h100: 3 },
  });
  assert.throws(
    () => pricesFromFlags(["t5=1"], undefined, ["t4", "l4"]),
    /--price: "t5" is not a profile of this sweep/,
  );
  assert.throws(() => pricesFromFlags(["t4=abc"], undefined, ["t4"]), /--price: expected a number \(\$ per GPU-hour\)/);
});

test("sweep charts: one point per profile that fits, coinciding profiles sharing one, the rest named as left out", () => {
  const t4Row = one.rows[1]!;
  const twin = { ...t4Row, profile: "t4-twin", dollarsPerGpuHour: undefined, dollarsPerMillionTokens: undefined };
  const result: SweepResult = { ...one, rows: [...one.rows, twin] };
  const throughput = sweepPoints(result, "throughput");
  const byLabel = new Map(throughput.map((p) => [p.label, p]));
  assert.deepEqual([...byLabel.keys()].sort(), ["4x1-t4-gcp", "l4", "t4, t4-twin"]);
  assert.deepEqual(byLabel.get("4x1-t4-gcp"), {
    gpus: 4,
    value: one.rows[0]!.throughputTokensPerSecond!,
    label: "4x1-t4-gcp",
  });
  assert.equal(byLabel.get("t4, t4-twin")!.value, t4Row.throughputTokensPerSecond);
  assert.deepEqual(sweepLeftOut(result, "throughput"), ["t4-starved"]);
  const cost = sweepPoints(result, "cost");
  assert.deepEqual(
    cost.map((p) => [p.label, p.value]),
    [one.rows[1]!, one.rows[3]!, one.rows[0]!]
      .map((r) => [r.profile, r.dollarsPerMillionTokens!] as [string, number])
      .sort((a, b) => (a[0] === "4x1-t4-gcp" ? 1 : b[0] === "4x1-t4-gcp" ? -1 : a[1] - b[1])),
  );
  assert.deepEqual(sweepLeftOut(result, "cost"), ["t4-starved", "t4-twin"]);
  for (const measure of ["throughput", "cost"] as const) {
    const spec = sweepChart(result, measure) as { data: { values: unknown }; title: { subtitle: string[] } };
    const rows = spec.data.values as SweepChartRow[];
    assert.deepEqual(
      rows.map(({ labelYPx: _y, ...point }) => point).sort((a, b) => a.label.localeCompare(b.label)),
      sweepPoints(result, measure).sort((a, b) => a.label.localeCompare(b.label)),
    );
    assert.match(spec.title.subtitle.at(-1)!, /^left out .*t4-starved/);
    assert.ok(compile(spec as never).spec, "the spec compiles");
  }
});

test("sweep chart labels: at their points, pushed down only when one of the same GPU count is within 13 px above", () => {
  // A log axis over [10, 1000] 200 px high: 100 px per decade. 500 sits at 30.1 px, 480 at 31.9 px, 10 at 200 px.
  const rows = placeLabels(
    [
      { gpus: 1, value: 480, label: "b" },
      { gpus: 1, value: 500, label: "a" },
      { gpus: 1, value: 10, label: "c" },
      { gpus: 4, value: 480, label: "d" },
    ],
    10,
    1000,
    200,
  );
  const y = Object.fromEntries(rows.map((r) => [r.label, r.labelYPx]));
  assert.ok(Math.abs(y.a! - 100 * Math.log10(1000 / 500)) < 1e-9);
  assert.ok(Math.abs(y.b! - (y.a! + 13)) < 1e-9, "b's own place is 1.8 px under a's label: pushed to 13 px under");
  assert.ok(Math.abs(y.c! - 200) < 1e-9, "far below: at its point");
  assert.ok(Math.abs(y.d! - 100 * Math.log10(1000 / 480)) < 1e-9, "another GPU count: not pushed");
});
