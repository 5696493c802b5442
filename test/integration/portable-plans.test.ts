/**
 * A plan file stands alone: it carries the hardware profile it was made with, so simulate, run, export
 * and report work from any directory after the profile file is gone, say when --hardware replaces it,
 * and never open a path named inside a plan file (older plans that only name a file are refused).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { Plan } from "../../core/plan.js";
import { runCli } from "../helpers.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-portable-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const t4 = JSON.parse(readFileSync(new URL("../../../profiles/t4.json", import.meta.url), "utf8"));

test("a plan made from a profile file carries it: simulate, export and report work after the file is gone", () => {
  const profilePath = join(dir, "box.json");
  writeFileSync(profilePath, JSON.stringify({ ...t4, name: "box" }));
  const planPath = join(dir, "p.json");
  const made = runCli([
    "plan",
    "--model",
    "opt-1.3b",
    "--hardware",
    profilePath,
    "--gpu-mem",
    "2",
    "--out",
    planPath,
    "--quiet",
  ]);
  assert.equal(made.status, 0, made.stderr);
  rmSync(profilePath);
  const plan = JSON.parse(readFileSync(planPath, "utf8")) as Plan;
  assert.equal(plan.hardwareProfile?.name, "box");
  assert.equal(plan.hardwareProfile?.capacityBytes.gpu.value, 2 * 2 ** 30, "the capacities it was planned against");
  const sim = runCli(["simulate", planPath, "--json"]);
  assert.equal(sim.status, 0, sim.stderr);
  const carried = JSON.parse(sim.stdout) as { throughputTokensPerSecond: number };
  const exported = runCli(["export", planPath, "--to", "flexgen"]);
  assert.equal(exported.status, 0, exported.stderr);
  assert.match(exported.stdout, /flexgen engine model on box:/);
  // A run's first complaint is its own input, not a profile path recorded in the plan.
  const run = runCli(["run", planPath, "--weights", join(dir, "no-such-weights")]);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /no-such-weights/);
  // --hardware replaces the carried profile, and says so.
  const other = runCli(["simulate", planPath, "--hardware", "rtx3090", "--json"]);
  assert.equal(other.status, 0, other.stderr);
  assert.match(other.stderr, /note: --hardware rtx3090 replaces the profile .*p\.json was made with \(box\)/);
  assert.notEqual(JSON.parse(other.stdout).throughputTokensPerSecond, carried.throughputTokensPerSecond);
  const quiet = runCli(["simulate", planPath, "--hardware", "rtx3090", "--quiet"]);
  assert.equal(quiet.stderr, "");
});

test("a plan that names a profile file but does not carry it is refused without opening the file", () => {
  const planPath = join(dir, "p2.json");
  assert.equal(runCli(["plan", "--model", "opt-1.3b", "--out", planPath, "--quiet"]).status, 0);
  const secret = join(dir, "secret.json");
  writeFileSync(secret, "TOP-SECRET-LINE\n");
  const { hardwareProfile: _carried, ...older } = JSON.parse(readFileSync(planPath, "utf8")) as Plan;
  const crafted = join(dir, "crafted.json");
  writeFileSync(crafted, JSON.stringify({ ...older, hardware: "secret", hardwareSource: secret }));
  for (const args of [
    ["simulate", crafted],
    ["report", crafted, "--out", join(dir, "r")],
  ]) {
    const r = runCli(args);
    assert.equal(r.status, 2, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /hardwareProfile: missing: .*never opened.*give --hardware/, args[0]);
    assert.doesNotMatch(r.stderr + r.stdout, /TOP-SECRET/);
  }
  // An older plan naming a shipped profile still works.
  const shipped = join(dir, "older.json");
  writeFileSync(shipped, JSON.stringify({ ...older, hardwareSource: "t4" }));
  assert.equal(runCli(["simulate", shipped, "--quiet"]).status, 0);
});
