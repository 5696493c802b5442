import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fancyProgress, plainTerminal } from "../../cli/terminal.js";
import { hfOptConfig } from "../../runtime/synth-weights.js";
import { CLI, TINY_OPT } from "../helpers.js";

interface Result {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with NO_COLOR set and FORCE_COLOR unset (concurrently with other calls). */
function cli(args: string[], env: Record<string, string> = { NO_COLOR: "1" }): Promise<Result> {
  const { FORCE_COLOR: _f, NO_COLOR: _n, ...base } = process.env;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...base, ...env }, encoding: "utf8", timeout: 60_000 },
      (error, stdout, stderr) => {
        resolve({ status: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr });
      },
    );
  });
}

const COMMANDS = [
  "",
  "plan",
  "simulate",
  "run",
  "compare",
  "sweep",
  "calibrate",
  "report",
  "trace",
  "trace synth",
  "trace stats",
  "trace convert",
  "profile",
  "synth-weights",
  "models",
  "hardware",
];

test("every command's --help has examples and documents exit codes, --json and --quiet", async () => {
  const results = await Promise.all(COMMANDS.map((c) => cli([...c.split(" ").filter(Boolean), "--help"])));
  results.forEach((r, i) => {
    const name = COMMANDS[i] || "(top level)";
    assert.equal(r.status, 0, name);
    assert.match(r.stdout, /\nExamples:\n {2}spillway /, `${name} has examples`);
    assert.match(r.stdout, /Exit codes: 0 ok; 1 failure .*; 2 bad input/s, `${name} documents exit codes`);
    assert.match(r.stdout, /--json prints the machine-readable result on stdout, even with --quiet/, name);
    if (!["", "trace"].includes(COMMANDS[i]!)) {
      assert.match(r.stdout, /--quiet\b/, `${name} takes --quiet`);
      if (!["convert"].includes(name)) assert.match(r.stdout, /--json\b/, `${name} takes --json`);
    }
    if (PROGRESS_COMMANDS.includes(COMMANDS[i]!))
      assert.match(
        r.stdout,
        /Progress goes to stderr, never stdout\b.*none with --quiet/s,
        `${name} documents its progress`,
      );
  });
});

/** The commands that can run long, and so show progress. */
const PROGRESS_COMMANDS = ["plan", "simulate", "run", "compare", "sweep", "profile", "synth-weights", "report"];

test("exit codes: 0 ok, 1 when no policy fits or a plan overflows, 2 for bad flag values and unknown flags", async () => {
  const [ok, bad, unknown, badChoice, noFit, missing] = await Promise.all([
    cli(["plan", "--model", "opt-125m", "--json"]),
    cli(["plan", "--prompt-len", "abc"]),
    cli(["plan", "--no-such-flag"]),
    cli(["plan", "--cost-model", "magic"]),
    cli(["plan", "--model", "opt-175b", "--gpu-mem", "1", "--cpu-mem", "1", "--disk-mem", "1"]),
    cli(["simulate", "/no/such/plan.json"]),
  ]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).model, "opt-125m");
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--prompt-len: expected an integer >= 1, got "abc"/);
  assert.equal(unknown.status, 2);
  assert.equal(badChoice.status, 2);
  assert.equal(noFit.status, 1);
  assert.match(noFit.stderr, /no policy fits opt-175b/);
  assert.equal(noFit.stdout, "");
  assert.equal(missing.status, 2);
});

test("--quiet prints nothing but errors; --json output still prints with --quiet", async () => {
  const dir = mkdtempSync(join(tmpdir(), "spillway-conv-"));
  try {
    const planPath = join(dir, "p.json");
    const trace = join(dir, "t.csv");
    const tinyConfig = join(dir, "tiny.json");
    writeFileSync(tinyConfig, JSON.stringify(hfOptConfig(TINY_OPT)));
    const weights = (name: string) => ["synth-weights", "--model", tinyConfig, "--out", join(dir, name)];
    const [planQuiet, modelsQuiet, hardwareQuietJson, synthQuiet, weightsQuiet, weightsJson] = await Promise.all([
      cli(["plan", "--model", "opt-1.3b", "--quiet", "--out", planPath]),
      cli(["models", "--quiet"]),
      cli(["hardware", "--quiet", "--json"]),
      cli(["trace", "synth", "--model", "mixtral-8x7b", "--tokens", "50", "--out", trace, "--quiet"]),
      cli([...weights("quiet"), "--quiet"]),
      cli([...weights("json"), "--json"]),
    ]);
    for (const r of [planQuiet, modelsQuiet, synthQuiet, weightsQuiet])
      assert.deepEqual([r.status, r.stdout, r.stderr], [0, "", ""]);
    // Without --quiet a long command's progress goes to stderr as plain lines (stderr is a pipe here),
    // from 0% to 100% and a bounded few; stdout keeps the JSON alone.
    assert.equal(weightsJson.status, 0, weightsJson.stderr);
    assert.equal(JSON.parse(weightsJson.stdout).model, "opt-tiny");
    const lines = weightsJson.stderr.trimEnd().split("\n");
    assert.match(lines[0]!, /^synth-weights: 0% \(0 B of [\d.]+ KiB\)$/);
    assert.match(lines.at(-1)!, /^synth-weights: 100% \(([\d.]+ KiB) of \1\), model\.decoder\.final_layer_norm\.bias$/);
    assert.ok(lines.length <= 11, `${lines.length} lines`);
    assert.ok(lines.every((l) => /^synth-weights: \d+% /.test(l)));
    assert.equal(hardwareQuietJson.status, 0);
    assert.ok(JSON.parse(hardwareQuietJson.stdout).some((h: { name: string }) => h.name === "t4"));
    assert.equal(JSON.parse(readFileSync(planPath, "utf8")).model, "opt-1.3b");
    const [simQuiet, simQuietJson, simText, statsQuiet, convertJson] = await Promise.all([
      cli(["simulate", planPath, "--quiet"]),
      cli(["simulate", planPath, "--quiet", "--json"]),
      cli(["simulate", planPath]),
      cli(["trace", "stats", trace, "--quiet"]),
      cli(["trace", "convert", trace, "--out", join(dir, "t.jsonl"), "--json", "--quiet"]),
    ]);
    assert.deepEqual([simQuiet.status, simQuiet.stdout, simQuiet.stderr], [0, "", ""]);
    assert.ok(simText.stdout.length > 0);
    assert.equal(JSON.parse(simQuietJson.stdout).schedule, "spillway");
    assert.deepEqual([statsQuiet.status, statsQuiet.stdout], [0, ""]);
    assert.equal(convertJson.status, 0, convertJson.stderr);
    assert.deepEqual(JSON.parse(convertJson.stdout), {
      in: trace,
      out: join(dir, "t.jsonl"),
      format: "megatron-jsonl",
      tokens: 50,
      rows: JSON.parse(convertJson.stdout).rows,
    });
    assert.ok(JSON.parse(convertJson.stdout).rows > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("NO_COLOR: no command prints an ANSI escape sequence on stdout or stderr", async () => {
  const dir = mkdtempSync(join(tmpdir(), "spillway-color-"));
  try {
    const runs = await Promise.all([
      cli(["plan", "--help"]),
      cli(["plan", "--model", "opt-1.3b"]),
      cli(["hardware"]),
      cli(["nonsense"]),
      cli(["trace", "synth", "--model", "mixtral-8x7b", "--tokens", "20", "--out", join(dir, "t.csv")]),
    ]);
    for (const r of runs) {
      assert.ok(r.stdout.length + r.stderr.length > 0);
      assert.ok(
        !r.stdout.includes("\x1b[") && !r.stderr.includes("\x1b["),
        `escape sequence in ${JSON.stringify((r.stdout + r.stderr).slice(0, 200))}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("progress bars are drawn only on a terminal without NO_COLOR or TERM=dumb", () => {
  assert.equal(fancyProgress({ isTTY: true }, {}), true);
  assert.equal(fancyProgress({ isTTY: true }, { NO_COLOR: "1" }), false);
  assert.equal(
    fancyProgress({ isTTY: true }, { NO_COLOR: "" }),
    true,
    "an empty NO_COLOR does not count (no-color.org)",
  );
  assert.equal(fancyProgress({ isTTY: true }, { TERM: "dumb" }), false);
  assert.equal(fancyProgress({ isTTY: false }, {}), false);
  assert.equal(fancyProgress({}, {}), false);
  assert.equal(plainTerminal({ NO_COLOR: "0" }), true);
});
