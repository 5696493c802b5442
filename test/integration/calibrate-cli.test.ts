import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseHardwareProfile } from "../../core/hardware-profile.js";
import { hiddenT4, runsCsv, SYNTHETIC_CASES, syntheticRuns } from "../calibration-fixtures.js";
import { runCli } from "../helpers.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-calibrate-"));
after(() => rmSync(dir, { recursive: true, force: true }));

// Eight of the synthetic runs: GPU-bound, link-bound and disk-bound ones, so every scaled rate is seen.
const CASES = [0, 1, 3, 4, 6, 8, 9, 10].map((i) => SYNTHETIC_CASES[i]!);
const runsPath = join(dir, "runs.csv");
const csv = runsCsv(
  syntheticRuns(hiddenT4(), runsPath, CASES),
  CASES.map((c) => c[1]),
);
writeFileSync(runsPath, csv + "\n");

test("calibrate: a bad runs CSV exits 2 with one line on stderr naming the file, line and flag", () => {
  const bad = join(dir, "bad.csv");
  writeFileSync(
    bad,
    "engine,model,flags,prompt_len,gen_len,tokens_per_second\nspillway,opt-30b,--gbs 4,512,32,5\nspillway,opt-30b,--percent 20 80,512,32,5\n",
  );
  const r = runCli(["calibrate", "--engine", "spillway", bad, "--hardware", "t4", "--out", join(dir, "never.json")]);
  assert.equal(r.status, 2);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr.split("\n").filter(Boolean).length, 1, r.stderr);
  assert.match(r.stderr, /^spillway: .*bad\.csv: line 3, flags: --percent: expected six percentages/);
});

test("calibrate: fits the profile, prints prior -> fitted and leave-one-out errors, writes --out; compare --measured then scores the runs", () => {
  const out = join(dir, "t4-fitted.json");
  const r = runCli(["calibrate", "--engine", "spillway", runsPath, "--hardware", "t4", "--out", out, "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.equal(result.runs, CASES.length);
  assert.equal(result.out, out);
  const h2d = result.rates.find((x: { name: string }) => x.name === "h2dPinnedBytesPerSecond");
  assert.ok(Math.abs(h2d.ratio - 0.6) < 0.03, `host->device x${h2d.ratio}`);
  assert.ok(result.leaveOneOut.medianAbsoluteErrorAfter < result.leaveOneOut.medianAbsoluteErrorBefore);
  const written = JSON.parse(readFileSync(out, "utf8"));
  parseHardwareProfile(written, out);
  assert.match(
    written.hostToDevice.pinnedBytesPerSecond.fitted.source,
    /^fitted by spillway calibrate to 8 runs: .*runs\.csv:2, /,
  );
  assert.equal(written.hostToDevice.pinnedBytesPerSecond.measured.value, 12e9, "the measured value is kept");
  assert.equal(typeof written.notes, "string", "the profile's notes are kept");

  const text = runCli([
    "calibrate",
    "--engine",
    "spillway",
    runsPath,
    "--hardware",
    "t4",
    "--out",
    join(dir, "t.json"),
  ]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(
    text.stdout,
    /host->device pinned bandwidth \(hostToDevice\.pinnedBytesPerSecond\) +12\.00 GB\/s \(measured\) -> +7\.\d+ GB\/s {2}x0\.6/,
  );
  assert.match(text.stdout, /Leave-one-out \|error\| .*median: \d+\.\d% -> \d+\.\d%/);
  assert.match(text.stdout, /Wrote .*t\.json\n$/);

  const scored = runCli(["compare", "--measured", runsPath, "--hardware", out, "--json"]);
  assert.equal(scored.status, 0, scored.stderr);
  const scores = JSON.parse(scored.stdout);
  assert.equal(scores.runs.length, CASES.length);
  assert.equal(scores.engine, "spillway");
  assert.ok(scores.medianAbsoluteError < 0.01, `${scores.medianAbsoluteError}`);
  const prior = runCli(["compare", "--measured", runsPath, "--hardware", "t4"]);
  assert.equal(prior.status, 0, prior.stderr);
  assert.match(prior.stdout, /8 measured runs against the spillway model on t4/);
  assert.match(prior.stdout, /median \|error\|: \d+\.\d%/);
});

test("calibrate refuses to overwrite an input; compare needs --weights or --measured", () => {
  const before = readFileSync(runsPath, "utf8");
  const r = runCli(["calibrate", "--engine", "spillway", runsPath, "--hardware", "t4", "--out", runsPath]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--out: .*runs\.csv is an input/);
  assert.equal(readFileSync(runsPath, "utf8"), before);
  const one = join(dir, "one.csv");
  writeFileSync(one, csv.split("\n").slice(0, 2).join("\n"));
  const single = runCli(["calibrate", "--engine", "spillway", one, "--hardware", "t4", "--out", join(dir, "x.json")]);
  assert.equal(single.status, 2);
  assert.match(single.stderr, /1 run of the spillway engine; calibration needs at least two/);
  const weight = runCli([
    "calibrate",
    "--engine",
    "spillway",
    runsPath,
    "--hardware",
    "t4",
    "--out",
    join(dir, "w.json"),
    "--prior-weight",
    "-1",
  ]);
  assert.equal(weight.status, 2);
  assert.equal(weight.stderr.split("\n").filter(Boolean).length, 1, weight.stderr);
  assert.match(weight.stderr, /--prior-weight: expected a number >= 0, got -1/);
  const none = runCli(["compare", "--model", "opt-1.3b"]);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /--weights: missing/);
});

test("calibrate: a runs file given twice is said on stderr, run by run (each would weigh twice and leave its twin in the leave-one-out fit); the calibration still runs", () => {
  const calibrateOnT4 = (files: string[], out: string) =>
    runCli(["calibrate", "--engine", "spillway", ...files, "--hardware", "t4", "--out", join(dir, out), "--json"]);
  const r = calibrateOnT4([runsPath, runsPath], "t4-twice.json");
  assert.equal(r.status, 0, r.stderr);
  const warnings = r.stderr.split("\n").filter((l) => l.startsWith("Warning: "));
  assert.equal(warnings.length, CASES.length, r.stderr);
  assert.match(warnings[0]!, /the run at .*runs\.csv:2 repeats the one at .*runs\.csv:2 /);
  assert.equal(JSON.parse(r.stdout).runs, 2 * CASES.length);
  const scored = runCli(["compare", "--measured", runsPath, runsPath, "--hardware", "t4", "--json"]);
  assert.equal(scored.status, 0, scored.stderr);
  const repeats = scored.stderr.split("\n").filter((l) => / repeats the one at .*: it counts twice/.test(l));
  assert.equal(repeats.length, CASES.length, scored.stderr);
  // Given once, no warning.
  assert.doesNotMatch(calibrateOnT4([runsPath], "t4-once.json").stderr, /Warning/);
});
