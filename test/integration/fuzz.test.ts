/**
 * The CLI's input contract under seeded fuzzing: a few hundred mutated command lines and files across
 * every input surface (test/fuzz/fuzz-cases.ts) run through the CLI's entry function in a small pool of
 * worker processes (no spawn per case), plus a few through standard input. Every case must end within
 * its time limit with exit 0, 1 or 2; on 2 with exactly one line on stderr; never an internal error
 * nor a stack trace. A failing case is reported with its seed, so it can be rerun alone
 * (FUZZ_SEEDS=17,42 node --test dist/test/integration/fuzz.test.js).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { mulberry32 } from "../../core/random.js";
import { CliWorker, type WorkerOutcome } from "../fuzz/cli-worker.js";
import {
  FIXED_POLICY,
  type Fixtures,
  makeCase,
  RUNS_CSV,
  SAMPLES_CSV,
  specialFiles,
  TINY_CONFIG,
} from "../fuzz/fuzz-cases.js";
import { mutateJson, mutateText, pick } from "../fuzz/fuzz-mutations.js";
import { runCli, TINY_OPT } from "../helpers.js";

const CASES = 300;
const WORKERS = 2;
/** A case past this is a hang (generous: the machine is shared; valid cases take well under a second). */
const CASE_LIMIT_MS = 30_000;

/**
 * Seeds whose case fails for a reason another change owns; each names the bug. They are skipped, not
 * hidden: the report lists them.
 */
/** Seeds skipped with the bug they found (none now: seed 1528, a plan with genLen 1e308, is refused by the plan's ranges). */
const KNOWN_FAILURES: ReadonlyMap<number, string> = new Map();

const root = mkdtempSync(join(tmpdir(), "spillway-fuzz-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** The contract's breaches in one case's outcome (empty: it kept the contract). */
function breaches(outcome: WorkerOutcome, mustRefuse = false): string[] {
  const found: string[] = [];
  if (mustRefuse && !outcome.hung && outcome.status !== 2)
    found.push(`exit ${outcome.status} for invalid input, expected 2`);
  if (outcome.hung) found.push(`no answer within ${CASE_LIMIT_MS} ms (a hang)`);
  else if (![0, 1, 2].includes(outcome.status)) found.push(`exit ${outcome.status}`);
  if (/internal error/.test(outcome.stderr)) found.push("internal error");
  if (/^\s+at .*\(.*:\d+:\d+\)$|^\s+at file:/m.test(outcome.stderr)) found.push("a stack trace");
  if (outcome.status === 2) {
    const lines = outcome.stderr.split("\n").filter((l) => l !== "" && !l.startsWith("note: "));
    if (lines.length !== 1 || !lines[0]!.startsWith("spillway: "))
      found.push(`exit 2 with ${lines.length} stderr lines, expected one "spillway: ..." line`);
  }
  return found;
}

async function makeFixtures(worker: CliWorker): Promise<{ fixtures: Fixtures; special: string[] }> {
  const dir = join(root, "fixtures");
  mkdirSync(dir);
  const path = (name: string) => join(dir, name);
  writeFileSync(path("config.json"), JSON.stringify(TINY_CONFIG, null, 2));
  writeFileSync(path("spec.json"), JSON.stringify({ ...TINY_OPT, name: "opt-fuzz-spec" }, null, 2));
  cpSync(fileURLToPath(new URL("../../../profiles/rtx3090.json", import.meta.url)), path("profile.json"));
  writeFileSync(path("runs.csv"), RUNS_CSV);
  writeFileSync(path("samples.csv"), SAMPLES_CSV);
  const made = [
    ["plan", "--model", path("config.json"), "--hardware", "rtx3090", "--prompt-len", "16", "--gen-len", "4"]
      .concat(FIXED_POLICY)
      .concat(["--out", path("plan.json"), "--quiet"]),
    ["synth-weights", "--model", path("config.json"), "--out", path("weights"), "--quiet"],
    ["trace", "synth", "--model", "mixtral-8x7b", "--tokens", "3", "--out", path("routing.csv"), "--quiet"],
    ["trace", "convert", path("routing.csv"), "--out", path("routing.jsonl"), "--quiet"],
  ];
  for (const args of made) {
    const result = await worker.run(args);
    assert.equal(result.status, 0, `fixture ${args.join(" ")}: ${result.stderr}`);
  }
  mkdirSync(path("folder"));
  let fifo: string | undefined = path("fifo");
  try {
    execFileSync("mkfifo", [fifo]);
  } catch {
    fifo = undefined;
  }
  return {
    fixtures: {
      config: path("config.json"),
      spec: path("spec.json"),
      profile: path("profile.json"),
      plan: path("plan.json"),
      weights: path("weights"),
      routing: path("routing.csv"),
      routingJsonl: path("routing.jsonl"),
      runs: path("runs.csv"),
      samples: path("samples.csv"),
    },
    special: specialFiles(path("folder"), fifo),
  };
}

function seeds(): number[] {
  const chosen = process.env.FUZZ_SEEDS;
  if (chosen) return chosen.split(",").map(Number);
  return Array.from({ length: CASES }, (_, i) => i + 1);
}

test("fuzz: mutated flags and files of every command keep the exit-code contract", async (t) => {
  const workers = Array.from({ length: WORKERS }, () => new CliWorker(CASE_LIMIT_MS));
  const { fixtures, special } = await makeFixtures(workers[0]!);
  const cases = seeds()
    .filter((seed) => !KNOWN_FAILURES.has(seed))
    .map((seed) => makeCase(seed, fixtures, join(root, "cases"), special));
  const failures: string[] = [];
  const statuses = new Map<number, number>();
  let next = 0;
  await Promise.all(
    workers.map(async (worker) => {
      while (next < cases.length) {
        const fuzzCase = cases[next++]!;
        const outcome = await worker.run(fuzzCase.args, fuzzCase.folder);
        statuses.set(outcome.status, (statuses.get(outcome.status) ?? 0) + 1);
        const found = breaches(outcome, fuzzCase.mustRefuse);
        if (found.length)
          failures.push(
            `seed ${fuzzCase.seed} (${fuzzCase.surface}, ${fuzzCase.mutation}): ${found.join("; ")}\n  spillway ${fuzzCase.args
              .map((a) => JSON.stringify(a).slice(0, 80))
              .join(" ")}\n  ${outcome.stderr.trim().split("\n").slice(0, 4).join("\n  ")}`,
          );
      }
      worker.stop();
    }),
  );
  t.diagnostic(`${cases.length} cases; exit codes ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
  assert.deepEqual(failures, [], `${failures.length} of ${cases.length} cases broke the contract`);
  // The suite exercises both sides of the contract: valid cases pass, invalid ones are refused.
  if (!process.env.FUZZ_SEEDS) {
    assert.ok((statuses.get(0) ?? 0) >= 10, `few valid cases: ${JSON.stringify([...statuses])}`);
    assert.ok((statuses.get(2) ?? 0) >= CASES / 2, `few refused cases: ${JSON.stringify([...statuses])}`);
  }
});

test("fuzz: mutated plans, configs and profiles on standard input keep the contract", async () => {
  const plan = JSON.parse(readFileSync(join(root, "fixtures", "plan.json"), "utf8")) as unknown;
  const rng = mulberry32(20_261_203);
  const config = TINY_CONFIG;
  const profile = JSON.parse(readFileSync(join(root, "fixtures", "profile.json"), "utf8")) as unknown;
  const failures: string[] = [];
  const stdinCases: [string[], string][] = [
    [["simulate", "-", "--json"], mutateJson(rng, plan, "truncate")],
    [["simulate", "-", "--json"], mutateJson(rng, plan, "byte-order-mark")],
    [["export", "-", "--to", "flexgen"], mutateJson(rng, plan, pick(rng, ["retype-field", "drop-field"] as const))],
    [
      ["plan", "--model", "-", "--hardware", "rtx3090", "--prompt-len", "16", "--gen-len", "4", ...FIXED_POLICY],
      mutateJson(rng, config, pick(rng, ["control-characters", "wrong-root"] as const)),
    ],
    [
      ["plan", "--hardware", "-", "--model", "opt-1.3b", "--prompt-len", "16", "--gen-len", "4", ...FIXED_POLICY],
      mutateJson(rng, profile, "odd-number"),
    ],
    [["trace", "stats", "-", "--model", "mixtral-8x7b"], mutateText(rng, "request,token\n0,0\n", "unterminated-quote")],
  ];
  for (const [args, input] of stdinCases) {
    const outcome = runCli(args, input);
    const found = breaches(outcome);
    if (found.length) failures.push(`${args.join(" ")}: ${found.join("; ")}: ${outcome.stderr.trim()}`);
  }
  assert.deepEqual(failures, []);
});
