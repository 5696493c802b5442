/** `-` as the plan of simulate, export and run reads the plan from standard input (one spawn each). */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CliWorker } from "../fuzz/cli-worker.js";
import { runCli } from "../helpers.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-stdin-"));
const worker = new CliWorker();
after(() => {
  worker.stop();
  rmSync(dir, { recursive: true, force: true });
});
const runCliInProcess = (args: string[]) => worker.run(args);

test("simulate -, export - and run - read the plan from standard input, with the file's checks", async () => {
  const planPath = join(dir, "plan.json");
  const weights = join(dir, "weights");
  const policy = ["--gbs", "2", "--nb", "1", "--percent", "100", "0", "100", "0", "100", "0"];
  const switches = ["--compress-weight=false", "--compress-cache=false", "--cpu-attention=false"];
  const made = await runCliInProcess(["synth-weights", "--model", "opt-125m", "--out", weights, "--quiet"]);
  assert.equal(made.status, 0, made.stderr);
  const tiny = await runCliInProcess([
    "plan",
    "--model",
    join(weights, "config.json"),
    "--hardware",
    "rtx3090",
    "--prompt-len",
    "8",
    "--gen-len",
    "2",
    ...policy,
    ...switches,
    "--out",
    planPath,
    "--quiet",
  ]);
  assert.equal(tiny.status, 0, tiny.stderr);
  const plan = readFileSync(planPath, "utf8");
  const simulated = runCli(["simulate", "-", "--json"], `\uFEFF${plan}`);
  assert.equal(simulated.status, 0, simulated.stderr);
  assert.ok((JSON.parse(simulated.stdout) as { tokensPerSecond?: number }) !== null);
  const exported = runCli(["export", "-", "--to", "flexgen"], plan);
  assert.equal(exported.status, 0, exported.stderr);
  assert.match(exported.stdout, /flexgen/i);
  const ran = runCli(["run", "-", "--weights", weights, "--no-reference", "--json"], plan);
  assert.equal(ran.status, 0, ran.stderr);
  // The same checks as a file: a truncated plan on standard input is named <stdin>.
  const truncated = runCli(["export", "-", "--to", "flexgen"], plan.slice(0, 40));
  assert.equal(truncated.status, 2);
  assert.match(truncated.stderr, /^spillway: <stdin>: not valid JSON/);
});
