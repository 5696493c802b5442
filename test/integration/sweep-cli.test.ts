import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { readSweepFile } from "../../planner/sweep/sweep-file.js";
import { CliWorker } from "../fuzz/cli-worker.js";
import { runCli } from "../helpers.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-sweep-cli-"));
/** One process runs the other command lines through the CLI's entry function (no spawn each). */
const worker = new CliWorker();
after(() => {
  worker.stop();
  rmSync(dir, { recursive: true, force: true });
});
const runCliInProcess = (args: string[]) => worker.run(args);

test("spillway sweep writes CSV and prints JSON of the same rows; report charts the CSV", async () => {
  const csv = join(dir, "s.csv");
  const r = runCli([
    "sweep",
    "--model",
    "opt-1.3b",
    "--hardware",
    "t4-colab,t4",
    "--max-block",
    "2",
    "--price",
    "t4=0.35",
    "--out",
    csv,
    "--json",
  ]);
  assert.equal(r.status, 0, r.stderr);
  const printed = JSON.parse(r.stdout);
  assert.deepEqual(readSweepFile(csv), printed);
  assert.deepEqual(
    printed.rows.map((row: { profile: string; fits: boolean }) => [row.profile, row.fits]),
    [
      ["t4-colab", true],
      ["t4", true],
    ],
  );
  assert.equal(printed.rows[0].dollarsPerGpuHour, undefined, "only t4 is priced");
  assert.ok(printed.rows[1].dollarsPerMillionTokens > 0);
  // stderr is a pipe: plain progress lines, the last at 100%.
  assert.match(r.stderr.trimEnd().split("\n").at(-1)!, /^sweep: 100% \(2\/2\), (t4|t4-colab): [\d.]+ token\/s$/);

  const report = await runCliInProcess(["report", csv, "--out", join(dir, "r"), "--json", "--quiet"]);
  assert.equal(report.status, 0, report.stderr);
  const summary = JSON.parse(report.stdout);
  assert.deepEqual(
    summary.charts.map((c: { name: string }) => c.name),
    ["sweep-throughput", "sweep-cost"],
  );
  assert.match(summary.title, /^Spillway report: opt-1\.3b over 2 profiles$/);
  for (const c of summary.charts) assert.ok(existsSync(join(dir, "r", c.files.png)));
  const spec = JSON.parse(readFileSync(join(dir, "r", "sweep-cost.vl.json"), "utf8"));
  // One point, in the middle of its log axis (domain value / 1.3 to value x 1.3, 320 px high).
  const [point] = spec.data.values;
  assert.deepEqual(spec.data.values.length, 1);
  assert.deepEqual([point.gpus, point.value, point.label], [1, printed.rows[1].dollarsPerMillionTokens, "t4"]);
  assert.ok(Math.abs(point.labelYPx - 160) < 1e-9);

  const twice = await runCliInProcess(["report", csv, csv, "--out", join(dir, "never")]);
  assert.equal(twice.status, 2);
  assert.match(
    twice.stderr,
    /^spillway: .*s\.csv: a second sweep \(the first is .*s\.csv\); give one sweep per report\n$/,
  );
});

test("spillway sweep: the text table, and bad input as one stderr line with exit 2", async () => {
  const text = await runCliInProcess([
    "sweep",
    "--model",
    "opt-1.3b",
    "--hardware",
    "t4",
    "--max-block",
    "1",
    "--price",
    "0.35",
  ]);
  assert.equal(text.status, 0, text.stderr);
  const lines = text.stdout.split("\n");
  assert.equal(lines[0], "Sweep of opt-1.3b (prompt 512, generate 32) over 1 profile, spillway cost model");
  assert.match(
    lines[2]!,
    /^profile +GPU +nodes x GPUs +fits +policy \(gbs x nb\) +token\/s +bottleneck +\$\/GPU-hour +\$\/M tokens$/,
  );
  assert.match(lines[3]!, /^t4 +Tesla T4 +1 x 1 +yes +1 x 1 +[\d.]+ +\S.* +0\.35 +[\d.]+$/);
  const cases: [string[], RegExp][] = [
    [["--out", join(dir, "s.txt")], /^spillway: --out: expected a file name ending in \.csv or \.json/],
    [["--hardware", "t4", "--price", "t5=1"], /^spillway: --price: "t5" is not a profile of this sweep/],
    [["--hardware", "t4,nope"], /^spillway: --hardware: unknown hardware "nope"/],
    [["--engine", "flexgen"], /^spillway: --engine: a sweep plans for Spillway's runtime/],
    [["--threads", "0"], /^spillway: --threads: expected an integer >= 1/],
    [["--model", "-", "--hardware", "t4,l4"], /^spillway: --model: standard input \(-\) is read once/],
  ];
  for (const [args, message] of cases) {
    const model = args.includes("--model") ? [] : ["--model", "opt-1.3b"];
    const r = await runCliInProcess(["sweep", ...model, ...args]);
    assert.equal(r.status, 2, args.join(" "));
    assert.equal(r.stdout, "");
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
  }
});
