/**
 * The command line's shape, checked centrally for every command (cli/check-flag-syntax.ts): a value
 * flag given twice, a flag missing its value, a switch given a value and words after -- are refused
 * with exit 2 and one line naming the flag. Run in-process through the CLI's entry function.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { checkFlagSyntax } from "../../cli/check-flag-syntax.js";
import { InputError } from "../../core/input-error.js";
import { CliWorker } from "../fuzz/cli-worker.js";

const FIXED = ["--prompt-len", "16", "--gen-len", "4", "--gbs", "4", "--nb", "1", "--compress-weight=false"];
const FIXED_PLACEMENT = [
  "--compress-cache=false",
  "--cpu-attention=false",
  "--percent",
  "100",
  "0",
  "100",
  "0",
  "100",
  "0",
];

const worker = new CliWorker();
after(() => worker.stop());
const runCliInProcess = (args: string[]) => worker.run(args);

async function refused(args: string[], message: RegExp): Promise<void> {
  const result = await runCliInProcess(args);
  assert.equal(result.status, 2, `${args.join(" ")}: ${result.stderr}`);
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0]!, message);
  assert.doesNotMatch(result.stderr, /internal error/);
}

test("a value flag given twice is refused, naming it (once for every kind of value flag)", async () => {
  await refused(["plan", "--model", "a", "--model", "b"], /^spillway: --model: given twice; expected it once$/);
  await refused(["plan", "--gbs", "4", "--gbs=8"], /^spillway: --gbs: given twice/);
  await refused(
    ["plan", "--cost-model", "flexgen", "--cost-model", "spillway"],
    /^spillway: --cost-model: given twice/,
  );
  await refused(["simulate", "p.json", "--hardware", "t4", "--hardware", "l4"], /^spillway: --hardware: given twice/);
  await refused(["trace", "stats", "t.csv", "--cache", "1", "--cache", "2"], /^spillway: --cache: given twice/);
});

test("a flag whose value is missing is refused: at the end, before another flag, before --", async () => {
  await refused(
    ["plan", "--model", "opt-1.3b", "--hardware"],
    /^spillway: --hardware: expected a value after it, got the end of the command line$/,
  );
  await refused(["plan", "--out"], /^spillway: --out: expected a value/);
  await refused(["plan", "--cost-model"], /^spillway: --cost-model: expected a value/);
  await refused(["plan", "--model", "--json"], /^spillway: --model: expected a value after it, got the flag --json$/);
  await refused(["plan", "--percent"], /^spillway: --percent: expected a value/);
});

test("a switch given a value, --help=3 and words after -- are refused", async () => {
  await refused(["plan", "--json=2"], /^spillway: --json: is a switch and takes no value \(or true\/false\), got "2"$/);
  await refused(["plan", "--compress-weight=maybe"], /^spillway: --compress-weight: is a switch/);
  await refused(["plan", "--no-overlap=1"], /^spillway: --no-overlap: is a switch/);
  await refused(["--help=3"], /^spillway: --help: takes no value, got "3"$/);
  await refused(["models", "--help=3"], /^spillway: --help: takes no value/);
  await refused(["models", "--", "x"], /^spillway: --: expected nothing after it/);
});

test("what stays valid: list flags given several values, --x=true/false, negative numbers as values, a value of -", async () => {
  const plan = await runCliInProcess([
    "plan",
    "--model",
    "opt-125m",
    "--hardware",
    "rtx3090",
    ...FIXED,
    ...FIXED_PLACEMENT,
    "--json",
    "--quiet=true",
  ]);
  assert.equal(plan.status, 0, plan.stderr);
  assert.equal((JSON.parse(plan.stdout) as { policy: { gpuBatchSize: number } }).policy.gpuBatchSize, 4);
  // A negative value reaches the flag's own check (not "missing value").
  await refused(
    ["plan", "--model", "opt-125m", "--gen-len", "-5"],
    /^spillway: --gen-len: expected an integer >= 1, got -5$/,
  );
  const models = await runCliInProcess(["models", "--json", "--"]);
  assert.equal(models.status, 0, models.stderr);
});

test("checkFlagSyntax on its own: arrays and counts are not 'given twice'; the written form is named", () => {
  const flags = {
    boolean: ["json"],
    array: ["percent"],
    count: ["verbose"],
    key: { json: true, percent: true, verbose: true, model: true },
  };
  assert.doesNotThrow(() => checkFlagSyntax(["--percent", "1", "--percent", "2"], { percent: ["1", "2"] }, flags));
  assert.doesNotThrow(() => checkFlagSyntax(["--verbose", "--verbose"], { verbose: 2 }, flags));
  assert.doesNotThrow(() => checkFlagSyntax(["--json=false", "--model=-"], { json: false, model: "-" }, flags));
  assert.throws(
    () => checkFlagSyntax(["--model=a", "--model", "b"], { model: ["a", "b"] }, flags),
    (e: unknown) => e instanceof InputError && e.message === "--model: given twice; expected it once",
  );
});
