import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { InputError } from "../../core/input-error.js";
import { loadShippedProfile } from "../../core/resolve-hardware.js";
import {
  MAX_RUNS_FILE_BYTES,
  parseRunsCsv,
  readMeasuredRuns,
  readRunsFile,
  runFromComparison,
  runsOfEngine,
} from "../../engines/measured-runs.js";
import { parseRunFlags } from "../../engines/run-flags.js";
import { predictRun } from "../../engines/score-runs.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { planSync } from "../../planner/plan.js";
import { compareRuns } from "../../runtime/compare.js";
import type { RunResult } from "../../runtime/run.js";
import { simulate } from "../../simulator/simulate.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-runs-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};

const HEADER = "engine,model,flags,prompt_len,gen_len,tokens_per_second";

test("a runs CSV: columns in any order, comments and blank lines skipped, each run's source is FILE:LINE", () => {
  const text = [
    "# runs on the T4",
    "note,tokens_per_second,gen_len,prompt_len,flags,model,engine,hardware",
    "baseline,7.5,32,512,--gbs 48 --nb 3 --percent 20 80 0 100 0 100 --cpu-attention --pin-weight 0,opt-30b,spillway,t4",
    "",
    '"quoted, with a comma",2.25,64,256,--ngl 20 --gguf-type Q4_K_M,facebook/opt-13b,llama.cpp,',
    ",1.5,16,128,--gbs 4 --no-overlap --compress-weight --compress-cache --fewer-batch,opt-6.7b,flexgen,",
  ].join("\n");
  const [a, b, c] = parseRunsCsv(text, "runs.csv");
  assert.equal(a!.source, "runs.csv:3");
  assert.equal(b!.source, "runs.csv:5");
  assert.equal(c!.source, "runs.csv:6");
  assert.equal(a!.engine, "spillway");
  assert.equal(a!.model, findCatalogueModel("opt-30b"));
  assert.deepEqual(a!.workload, { promptLen: 512, genLen: 32 });
  assert.equal(a!.measuredTokensPerSecond, 7.5);
  assert.equal(a!.hardware, "t4");
  assert.equal(a!.note, "baseline");
  assert.deepEqual(a!.policy, {
    gpuBatchSize: 48,
    numGpuBatches: 3,
    weights: { gpu: 0.2, cpu: 0.8, disk: 0 },
    cache: { gpu: 0, cpu: 1, disk: 0 },
    activations: { gpu: 0, cpu: 1, disk: 0 },
    compressWeight: false,
    compressCache: false,
    cpuAttention: true,
    overlap: true,
    pinWeight: false,
  });
  assert.deepEqual(a!.knobs, {});
  assert.equal(b!.model.name, "opt-13b");
  assert.deepEqual(b!.knobs, { nGpuLayers: 20, ggufType: "Q4_K_M" });
  assert.equal(b!.note, "quoted, with a comma");
  assert.equal(b!.hardware, undefined);
  assert.deepEqual(c!.knobs, { fewerBatch: true });
  assert.equal(c!.policy.overlap, false);
  assert.equal(c!.policy.compressWeight && c!.policy.compressCache, true);
});

test("flags a run leaves out: one sequence, one batch, everything on the GPU, overlap and pinned weights on", () => {
  const { policy, knobs } = parseRunFlags("", "spillway", "f", "flags");
  assert.deepEqual(policy, {
    gpuBatchSize: 1,
    numGpuBatches: 1,
    weights: { gpu: 1, cpu: 0, disk: 0 },
    cache: { gpu: 1, cpu: 0, disk: 0 },
    activations: { gpu: 1, cpu: 0, disk: 0 },
    compressWeight: false,
    compressCache: false,
    cpuAttention: false,
    overlap: true,
    pinWeight: true,
  });
  assert.deepEqual(knobs, {});
  assert.deepEqual(parseRunFlags("--ngl 20 --no-kv-offload --ubatch-size 2048", "llama.cpp", "f", "flags").knobs, {
    nGpuLayers: 20,
    noKvOffload: true,
    ubatchTokens: 2048,
  });
  assert.throws(
    () => parseRunFlags("--ubatch-size 0", "llama.cpp", "f", "flags"),
    /--ubatch-size: expected an integer >= 1, got 0/,
  );
  assert.throws(
    () => parseRunFlags("--no-kv-offload", "flexgen", "f", "flags"),
    /--no-kv-offload: a knob of the llama\.cpp engine; this run's engine is flexgen/,
  );
  assert.equal(parseRunFlags("--pin-weight 1 --overlap false", "spillway", "f", "flags").policy.overlap, false);
  assert.equal(parseRunFlags("--pin-weight --gbs 2", "spillway", "f", "flags").policy.pinWeight, true);
  // Disk gets what GPU and CPU leave.
  assert.deepEqual(parseRunFlags("--percent 0 50 0 0 100 0", "spillway", "f", "flags").policy.cache, {
    gpu: 0,
    cpu: 0,
    disk: 1,
  });
});

const ROW_ERRORS: { name: string; row: string; expect: RegExp }[] = [
  {
    name: "an unknown engine",
    row: "vllm,opt-30b,,512,32,5",
    expect: /runs\.csv: line 3, engine: expected one of spillway, flexgen/,
  },
  {
    name: "a model path (never opened)",
    row: "spillway,/etc/passwd,,512,32,5",
    expect: /runs\.csv: line 3, model: unknown model "\/etc\/passwd"; expected a catalogue name .* does not open files/,
  },
  {
    name: "a fractional prompt_len",
    row: "spillway,opt-30b,,51.2,32,5",
    expect: /line 3, prompt_len: expected an integer >= 1, got "51\.2"/,
  },
  {
    name: "a zero gen_len",
    row: "spillway,opt-30b,,512,0,5",
    expect: /line 3, gen_len: expected an integer >= 1, got "0"/,
  },
  {
    name: "too many positions",
    row: "spillway,opt-30b,,2000,100,5",
    expect: /line 3, gen_len: prompt 2000 \+ generated 100 tokens exceed opt-30b's 2048 positions/,
  },
  {
    name: "a zero throughput",
    row: "spillway,opt-30b,,512,32,0",
    expect: /line 3, tokens_per_second: expected a number > 0, got "0"/,
  },
  {
    name: "a missing throughput",
    row: "spillway,opt-30b,,512,32,",
    expect: /line 3, tokens_per_second: expected a number > 0, got ""/,
  },
  {
    name: "an unknown flag",
    row: "spillway,opt-30b,--gbs 4 --turbo,512,32,5",
    expect: /line 3, flags: --turbo: unknown flag; expected one of --gbs/,
  },
  {
    name: "a flag given twice",
    row: "spillway,opt-30b,--gbs 4 --gbs 8,512,32,5",
    expect: /line 3, flags: --gbs: given twice/,
  },
  {
    name: "a flag and its negation",
    row: "spillway,opt-30b,--overlap --no-overlap,512,32,5",
    expect: /flags: --no-overlap: given twice/,
  },
  {
    name: "a missing value",
    row: "spillway,opt-30b,--gbs,512,32,5",
    expect: /line 3, flags: --gbs: expected an integer, got nothing/,
  },
  {
    name: "a zero batch",
    row: "spillway,opt-30b,--gbs 0,512,32,5",
    expect: /flags: --gbs: expected an integer >= 1, got 0/,
  },
  {
    name: "a stray value",
    row: "spillway,opt-30b,--gbs 4 8,512,32,5",
    expect: /flags: 8: expected a flag \(--name\), found a value/,
  },
  {
    name: "five percentages",
    row: "spillway,opt-30b,--percent 20 80 0 100 0 --gbs 4,512,32,5",
    expect: /flags: --percent: expected six percentages \(wg wc cg cc hg hc\), got 20 80 0 100 0 --gbs/,
  },
  {
    name: "an over-full percentage pair",
    row: "spillway,opt-30b,--percent 60 50 0 100 0 100,512,32,5",
    expect: /flags: --percent: wg\+wc: GPU and CPU shares add up to 110, more than 100/,
  },
  {
    name: "a negative percentage",
    row: "spillway,opt-30b,--percent 20 80 0 100 -1 100,512,32,5",
    expect: /flags: --percent: hg: expected a percentage 0\.\.100, got -1/,
  },
  {
    name: "another engine's knob",
    row: "spillway,opt-30b,--ngl 10,512,32,5",
    expect: /line 3, flags: --ngl: a knob of the llama\.cpp engine; this run's engine is spillway/,
  },
];

test("each bad row is an InputError naming the file, the line and the column or flag", () => {
  for (const { name, row, expect } of ROW_ERRORS) {
    const text = `${HEADER}\nspillway,opt-30b,--gbs 4,512,32,5\n${row}\n`;
    assert.throws(
      () => parseRunsCsv(text, "runs.csv"),
      (e: unknown) => e instanceof InputError && expect.test(e.message),
      name,
    );
  }
});

test("bad headers and empty tables are refused with the line and what was expected", () => {
  const cases: [string, RegExp][] = [
    [`${HEADER},speed\n`, /runs\.csv: line 1, column 7: unknown column "speed"; expected engine, model/],
    [
      "engine,model,flags,prompt_len,gen_len\nspillway,opt-30b,,512,32\n",
      /runs\.csv: line 1: missing column "tokens_per_second"/,
    ],
    [`${HEADER},engine\n`, /line 1, column 7: column "engine" given twice/],
    [`${HEADER}\n`, /runs\.csv: no runs: a header row and no rows below it/],
    [`${HEADER}\nspillway,opt-30b\n`, /runs\.csv:2: not valid CSV: .*line 2/],
  ];
  for (const [text, expect] of cases) assert.throws(() => parseRunsCsv(text, "runs.csv"), expect);
});

test("runs files: only regular files up to the size limit; a missing one is named", () => {
  assert.throws(() => readRunsFile(join(dir, "none.csv")), /none\.csv: no such file/);
  const folder = join(dir, "folder.csv");
  mkdirSync(folder);
  assert.throws(() => readRunsFile(folder), /folder\.csv: not a regular file/);
  const big = file("big.csv", "");
  truncateSync(big, MAX_RUNS_FILE_BYTES + 1);
  assert.throws(
    () => readRunsFile(big),
    new RegExp(`big\\.csv: ${MAX_RUNS_FILE_BYTES + 1} bytes; a runs file may hold at most`),
  );
  assert.throws(() => readRunsFile(file("empty.csv", "\n \n")), /empty\.csv: empty/);
  let fifo: string | undefined = join(dir, "fifo.csv");
  try {
    execFileSync("mkfifo", [fifo]);
  } catch {
    fifo = undefined; // no mkfifo here: the directory case covers non-regular files
  }
  // Refused before it is opened: opening a FIFO for reading would wait for a writer.
  if (fifo) assert.throws(() => readRunsFile(fifo), /fifo\.csv: not a regular file/);
  const csv = file("ok.csv", `${HEADER}\nspillway,opt-1.3b,--gbs 2,64,8,100\n`);
  assert.deepEqual(
    readMeasuredRuns([csv, csv]).map((r) => r.source),
    [`${csv}:2`, `${csv}:2`],
  );
});

test("a compare --json file is one run of Spillway's runtime, predicted as compare's plan predicted it", () => {
  const hardware = loadShippedProfile("t4");
  const model = findCatalogueModel("opt-1.3b")!;
  const planned = planSync({
    model,
    hardware,
    workload: { promptLen: 64, genLen: 8 },
    fixed: {
      gbs: 4,
      nb: 2,
      percent: [50, 50, 100, 0, 100, 0],
      compressWeight: false,
      compressCache: false,
      cpuAttention: false,
    },
  });
  const simulated = simulate(planned, hardware, {
    schedule: planned.schedule,
    capacityBytes: planned.predicted.capacityBytes,
  });
  // Only the figures compareRuns reads: what a run measures.
  const measured = { ...simulated, throughputTokensPerSecond: 123.5, matchesReference: true } as unknown as RunResult;
  const comparison = JSON.parse(JSON.stringify(compareRuns(planned, simulated, measured)));
  const path = file("c.json", JSON.stringify(comparison));
  const [run] = readRunsFile(path);
  assert.equal(run!.source, path);
  assert.equal(run!.engine, "spillway");
  assert.deepEqual(run!.model, planned.modelSpec);
  assert.deepEqual(run!.workload, { promptLen: 64, genLen: 8 });
  assert.deepEqual(run!.policy, planned.policy);
  assert.equal(run!.measuredTokensPerSecond, 123.5);
  assert.equal(run!.hardware, "t4");
  // The engine reads the policy back to the prediction compare made.
  const predicted = predictRun(run!, hardware).throughputTokensPerSecond;
  assert.ok(Math.abs(predicted / planned.predicted.throughputTokensPerSecond - 1) < 1e-9, `${predicted}`);

  const { workload: _w, ...older } = comparison;
  assert.throws(
    () => runFromComparison(older, "old.json"),
    /old\.json: workload: missing: .*run spillway compare again/,
  );
  assert.throws(() => runFromComparison({ model: "x" }, "p.json"), /p\.json: expected a runs CSV or a comparison/);
});

test("runsOfEngine keeps one engine's runs and refuses a run measured on another machine", () => {
  const text = `${HEADER},hardware\nspillway,opt-30b,,512,32,5,t4\nllama.cpp,opt-30b,--ngl 4,512,32,5,t4\nspillway,opt-30b,,512,32,5,\n`;
  const runs = parseRunsCsv(text, "r.csv");
  const chosen = runsOfEngine(runs, "spillway", { name: "T4" }, "r.csv");
  assert.deepEqual(
    chosen.runs.map((r) => r.source),
    ["r.csv:2", "r.csv:4"],
  );
  assert.equal(chosen.setAside, 1);
  assert.throws(
    () => runsOfEngine(runs, "spillway", { name: "rtx3090" }, "r.csv"),
    /r\.csv:2: hardware: measured on "t4", but the profile is "rtx3090"/,
  );
  assert.throws(
    () => runsOfEngine(runs, "deepspeed", { name: "t4" }, "r.csv"),
    /r\.csv: no runs of the deepspeed engine \(found 3 runs of spillway, llama\.cpp\)/,
  );
});
