/**
 * What a new user hits first (issue 17): a config.json model named after its folder, FlexGen flags only
 * for models FlexGen runs, a warning when the placement realized differs from the one asked for, exit 1
 * for a policy that does not fit, and a JSON that is not a model said to be none.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { Plan } from "../../core/plan.js";
import { CLI, runCli } from "../helpers.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-new-user-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("a config.json model is named after its folder; a non-OPT plan prints no FlexGen flags", () => {
  const folder = join(dir, "tiny-llama");
  mkdirSync(folder);
  const config = {
    model_type: "llama",
    hidden_size: 256,
    intermediate_size: 688,
    num_attention_heads: 8,
    num_key_value_heads: 4,
    num_hidden_layers: 4,
    vocab_size: 32000,
    max_position_embeddings: 2048,
    torch_dtype: "float16",
  };
  writeFileSync(join(folder, "config.json"), JSON.stringify(config));
  const fixed = ["--gbs", "1", "--nb", "1", "--percent", "100", "0", "100", "0", "100", "0"];
  const out = join(dir, "p.json");
  const r = runCli(["plan", "--model", join(folder, "config.json"), ...fixed, "--out", out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Plan for tiny-llama on t4/);
  assert.match(r.stdout, /FlexGen flags: none \(FlexGen runs OPT models only/);
  assert.doesNotMatch(r.stdout, /--model facebook\//);
  const exported = runCli(["export", out, "--to", "llama.cpp"]);
  assert.match(exported.stdout, /-m tiny-llama-F16\.gguf/);
});

test("the realized placement differing from the one asked for is a warning; a policy that does not fit exits 1", () => {
  const askedArgs = [
    "plan",
    "--gbs",
    "32",
    "--nb",
    "8",
    "--percent",
    "0",
    "50",
    "0",
    "0",
    "0",
    "100",
    "--cpu-attention",
  ];
  const asked = runCli(askedArgs);
  assert.equal(asked.status, 0, asked.stderr);
  assert.match(
    asked.stdout,
    /^Warning: the placement realized differs from the one asked for: weights 0\.0\/33\.3\/66\.7 \(asked 0\.0\/50\.0\/50\.0/m,
  );
  assert.match(asked.stdout, /--percent 0 33 /);
  const quiet = runCli([...askedArgs, "--quiet", "--out", join(dir, "asked.json")]);
  assert.equal(quiet.status, 0, quiet.stderr);
  assert.equal(quiet.stdout, "");
  assert.match(
    quiet.stderr,
    /^Warning: the placement realized differs from the one asked for: weights 0\.0\/33\.3\/66\.7/,
  );
  const out = join(dir, "nofit.json");
  const noFit = runCli([
    "plan",
    "--model",
    "opt-30b",
    "--gbs",
    "64",
    "--nb",
    "8",
    "--percent",
    "50",
    "50",
    "100",
    "0",
    "100",
    "0",
    "--out",
    out,
  ]);
  assert.equal(noFit.status, 1);
  assert.match(noFit.stderr, /^spillway: the policy does not fit: gpu peak .* exceeds its capacity/);
  assert.match(noFit.stdout, /Prediction {2}\(DOES NOT FIT\)/);
  const written = JSON.parse(readFileSync(out, "utf8")) as Plan;
  assert.equal(written.predicted.feasible, false, "the plan is still written");
});

test("a JSON that is neither a Hugging Face config nor a model spec is said to be neither", () => {
  const path = join(dir, "not-a-model.json");
  writeFileSync(path, JSON.stringify({ description: "my notes" }));
  const r = runCli(["plan", "--model", path]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /not-a-model\.json: not a model: a Hugging Face config\.json has a model_type field/);
  assert.equal(r.stderr.trimEnd().split("\n").length, 1);
});

test("report checks its output folder before any work: a file or an unmakeable folder is refused at once", () => {
  const file = join(dir, "a-file");
  writeFileSync(file, "x");
  const onFile = runCli(["report", "--out", file]);
  assert.equal(onFile.status, 2);
  assert.match(onFile.stderr, /a-file: is not a folder; --out names the folder/);
  assert.equal(readFileSync(file, "utf8"), "x");
  if (process.platform === "linux") {
    const proc = runCli(["report", "--out", "/proc/spillway-report"]);
    assert.equal(proc.status, 2);
    assert.match(proc.stderr, /cannot make the report folder/);
  }
});

test("a report killed while it renders leaves no folder behind, not even the parent it would make", async () => {
  // A trace alone (timeline and memory charts): the cheapest report that renders more than one chart.
  const planPath = join(dir, "small-plan.json");
  const tracePath = join(dir, "small-trace.json");
  const made = runCli(["plan", "--model", "opt-1.3b", "--prompt-len", "64", "--gen-len", "8", "--out", planPath]);
  assert.equal(made.status, 0, made.stderr);
  const traced = runCli(["simulate", planPath, "--trace", tracePath, "--quiet"]);
  assert.equal(traced.status, 0, traced.stderr);
  const out = join(dir, "killed-report", "nested");
  const child = spawn(process.execPath, [CLI, "report", tracePath, "--out", out], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  await new Promise<void>((resolve, reject) => {
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      // Killed in a state, not after a delay: once the second chart is rendering.
      if (/report: rendering 2\//.test(stderr)) {
        child.kill("SIGTERM");
        resolve();
      }
    });
    child.on("exit", () => reject(new Error(`the report ended before rendering its second chart: ${stderr}`)));
  });
  await new Promise((resolve) => child.on("exit", resolve));
  assert.equal(existsSync(join(dir, "killed-report")), false, "neither the folder nor its parent is left");
});
