/**
 * `--engine` through the CLI: plan scores a policy on an engine's model (its realization, its knobs),
 * simulate replays the engine's schedule from the plan file, run and Spillway's simulator refuse plans
 * made for another engine, and the engines' own flags are checked. The FlexGen figure below is FlexGen's
 * published single-T4 result, cited as validation data only (no rate is derived from it).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { Plan } from "../../core/plan.js";
import type { EngineSimulation } from "../../simulator/simulate-engine.js";
import { runCli } from "../helpers.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-engine-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** FlexGen's README / benchmark/flexgen table, OPT-30B, prompt 512, gen 32, one T4: 7.32 token/s (validation only). */
const FLEXGEN_PUBLISHED_OPT30B_P512 = 7.32;

test("plan --engine flexgen with FlexGen's own 30B flags: FlexGen's placement, feasible, within 25% of its published result; simulate replays it", () => {
  const out = join(dir, "p30.json");
  const args = ["plan", "--engine", "flexgen", "--model", "opt-30b", "--hardware", "t4", "--gbs", "48", "--nb", "3"];
  const flags = ["--percent", "20", "80", "0", "100", "0", "100", "--cpu-attention", "--fewer-batch"];
  const r = runCli([...args, ...flags, "--json", "--out", out]);
  assert.equal(r.status, 0, r.stderr);
  const plan = JSON.parse(r.stdout) as Plan;
  assert.equal(plan.engine, "flexgen");
  assert.deepEqual(plan.engineKnobs, { fewerBatch: true });
  // The policy as asked for (so the exported flags are the user's), FlexGen's realization beside it.
  assert.equal(plan.policy.weights.gpu, 0.2);
  assert.match(plan.flexgenArgs, /--percent 20 80 0 100 0 100/);
  const realized = plan.enginePrediction!.realizedPolicy.weights.gpu;
  assert.ok(realized > 0.05 && realized < 0.1, `only out_proj (and vectors) on the GPU: ${realized}`);
  assert.equal(plan.predicted.feasible, true, plan.predicted.infeasibleReasons.join("; "));
  const ratio = plan.predicted.throughputTokensPerSecond / FLEXGEN_PUBLISHED_OPT30B_P512;
  assert.ok(Math.abs(ratio - 1) <= 0.25, `predicted ${plan.predicted.throughputTokensPerSecond} vs published 7.32`);
  assert.equal(plan.predicted.throughputTokensPerSecond, plan.enginePrediction!.throughputTokensPerSecond);
  assert.ok(plan.enginePrediction!.rates.length > 0);

  const sim = runCli(["simulate", out, "--json"]);
  assert.equal(sim.status, 0, sim.stderr);
  const s = JSON.parse(sim.stdout) as EngineSimulation;
  assert.equal(s.engine, "flexgen");
  assert.ok(Math.abs(s.relativeError) < 1e-9, `replay ${s.throughputTokensPerSecond} vs plan`);
  for (const link of ["h2d", "d2h", "diskRead", "diskWrite"] as const)
    assert.ok(Math.abs(s.bytes[link] - plan.predicted.bytes[link]) <= 1e-9 * Math.max(1, s.bytes[link]), link);
  const seconds = s.steps.reduce((a, step) => a + step.seconds * step.count, 0);
  assert.ok(Math.abs(seconds - s.totalSeconds) <= 1e-9 * s.totalSeconds);
  const timeline = runCli(["simulate", out, "--timeline"]);
  assert.equal(timeline.status, 0, timeline.stderr);
  assert.match(timeline.stdout, /Timeline of one "decode/);
  assert.match(timeline.stdout, /attention on the CPU/);

  // Spillway's own runtime and simulator do not stand in for FlexGen.
  const run = runCli(["run", out, "--weights", dir]);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /a plan for flexgen: spillway run executes Spillway's own runtime/);
  const own = runCli(["simulate", out, "--engine", "spillway"]);
  assert.equal(own.status, 2);
  assert.match(own.stderr, /is a plan for flexgen/);
  const traced = runCli(["simulate", out, "--trace", join(dir, "t.json")]);
  assert.equal(traced.status, 2);
  assert.match(traced.stderr, /--trace: applies to Spillway's own simulator/);
});

test("plan --engine with a searched policy searches the engine's own settings within its own memory rule", () => {
  const out = join(dir, "acc.json");
  const text = runCli(["plan", "--engine", "accelerate", "--model", "opt-1.3b", "--hardware", "t4", "--out", out]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /Prediction on accelerate \(its engine model\)/);
  assert.match(text.stdout, /time spent {3}\S/);
  assert.match(text.stdout, /rates {8}\d+ (measured|datasheet|derived|fitted)/);
  const plan = JSON.parse(readFileSync(out, "utf8")) as Plan;
  assert.equal(plan.enginePrediction!.engine, "accelerate");
  assert.equal(plan.predicted.feasible, true);
  assert.ok(plan.notes.some((n) => /searched on accelerate's model: \d+ candidates/.test(n)));
  assert.ok(
    plan.search.engineCandidates! >= plan.search.engineCandidatesFeasible! && plan.search.engineCandidatesFeasible! > 0,
  );
});

test("llama.cpp's own settings: --gguf-type and --ngl are scored; knobs of another engine and bad values are bad input", () => {
  // One sequence on llama.cpp's model (--gbs 1 --nb 1).
  const llama7b = [
    ...["plan", "--engine", "llama.cpp", "--model", "llama-2-7b", "--hardware", "rtx4090", "--json"],
    ...["--gbs", "1", "--nb", "1"],
  ];
  const r = runCli([
    ...llama7b,
    "--gguf-type",
    "q4_k_m",
    "--ngl",
    "20",
    "--percent",
    "100",
    "0",
    "100",
    "0",
    "100",
    "0",
  ]);
  assert.equal(r.status, 0, r.stderr);
  const plan = JSON.parse(r.stdout) as Plan;
  assert.deepEqual(plan.engineKnobs, { nGpuLayers: 20, ggufType: "Q4_K_M" });
  assert.ok(
    plan.enginePrediction!.notes.some((n) => /Q4_K_M GGUF.*-ngl 20\b/.test(n)),
    plan.enginePrediction!.notes.join("\n"),
  );
  // -nkvo: every layer's KV in host memory (llama.cpp's --no-kv-offload), in the knobs and the prediction's notes.
  const hostKv = runCli([...llama7b, "--gguf-type", "Q4_K_M", "--no-kv-offload", "--ubatch-size", "1024"]);
  assert.equal(hostKv.status, 0, hostKv.stderr);
  const hostKvPlan = JSON.parse(hostKv.stdout) as Plan;
  assert.equal(hostKvPlan.engineKnobs?.noKvOffload, true);
  assert.equal(hostKvPlan.engineKnobs?.ubatchTokens, 1024);
  assert.ok(hostKvPlan.enginePrediction!.notes.some((n) => /-ub 1024: prompt graphs of 1024 tokens/.test(n)));
  assert.ok(hostKvPlan.enginePrediction!.notes.some((n) => /-nkvo: every layer's KV cache in host memory/.test(n)));
  const cases: [string[], RegExp][] = [
    [["--no-kv-offload"], /--no-kv-offload: is a setting of --engine llama\.cpp \(the engine here is spillway\)/],
    [["--engine", "llama.cpp", "--model", "llama-2-7b", "--ubatch-size", "0"], /--ubatch-size: expected .*>= 1/],
    [
      ["--engine", "flexgen", "--ngl", "3"],
      /--ngl: is a setting of --engine llama\.cpp \(the engine here is flexgen\)/,
    ],
    [["--fewer-batch"], /--fewer-batch: is a setting of --engine flexgen/],
    [
      ["--engine", "llama.cpp", "--model", "llama-2-7b", "--gguf-type", "Q9_Z"],
      /--gguf-type: expected one of F32, F16/,
    ],
    [["--engine", "llama.cpp", "--model", "llama-2-7b", "--ngl", "-1"], /--ngl: expected an integer >= 0/],
    [["--engine", "llama.cpp", "--model", "llama-2-7b", "--n-cpu-moe", "2"], /llama-2-7b is dense/],
    [
      ["--engine", "llama.cpp", "--model", "opt-1.3b"],
      /--engine: llama\.cpp cannot run opt-1\.3b: llama\.cpp has no OPT/,
    ],
    [["--engine", "flexgen", "--model", "opt-1.3b", "--cost-model", "flexgen"], /drop --cost-model flexgen/],
  ];
  for (const [args, message] of cases) {
    const bad = runCli(["plan", ...args]);
    assert.equal(bad.status, 2, `${args.join(" ")}: ${bad.stderr}`);
    assert.match(bad.stderr, message, args.join(" "));
  }
  const compare = runCli(["compare", "--engine", "flexgen", "--model", "opt-125m", "--weights", dir]);
  assert.equal(compare.status, 2);
  assert.match(compare.stderr, /compare runs Spillway's own runtime; runs of flexgen are scored .* --measured FILE/);
});
