import { execFile, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type GoldenCase, TINY_OPT_CONFIG, WEIGHTS } from "./cases.js";

/**
 * What a case produced: the CLI's exit status and its JSON output, with the fields below removed; null
 * for a failure that prints nothing on stdout (stderr is not compared: its wording is not an interface).
 */
export interface GoldenOutput {
  readonly exitCode: number;
  readonly output: unknown;
}

/** A case's golden output, and the plan's search.lpFallbacks count, which the golden output leaves out. */
export interface CaseResult extends GoldenOutput {
  readonly lpFallbacks?: number;
}

/** The stored golden file (test/golden/outputs.json). */
export interface GoldenFile {
  readonly capturedFrom: string;
  readonly removedFields: Readonly<Record<string, string>>;
  readonly cases: Readonly<Record<string, GoldenOutput>>;
}

/**
 * Fields removed from every output before storing or comparing, and why. Only wall-clock
 * measurements: everything the planner, the simulator or the runtime computes stays.
 */
export const REMOVED_FIELDS: Readonly<Record<string, string>> = {
  "plan: search.elapsedMs": "wall-clock milliseconds the search took; depends on the machine and its load",
  "plan: search.lpFallbacks":
    "LP solves that passed the fast path's 50 ms wall-clock deadline and went to HiGHS (2005b3e): 0 to 35 per case on a " +
    "loaded machine, varying run to run while the policy and predictions stay identical; the load test compares it " +
    "with the same case's unloaded run instead",
  "run: every field but backend, schedule, overlap, tokens, matchesReference, bytes, peakBytes, capacityBytes and planned":
    "throughputTokensPerSecond, prefill/decode/makespan seconds, busySeconds, utilisation, criticalResource, relativeError and " +
    "events come from the measured wall-clock timeline (criticalResource and the event count follow the timing)",
};

/** The run fields that do not depend on the clock: the tokens, the bytes moved and held, the plan's own numbers. */
const RUN_FIELDS_KEPT = [
  "backend",
  "schedule",
  "overlap",
  "tokens",
  "matchesReference",
  "bytes",
  "peakBytes",
  "capacityBytes",
  "planned",
];

/**
 * Paths of fields added to the outputs after the capture (the issue allows adding fields, never renaming or
 * changing one): present in a new output, absent from the golden one, and not an error. Paths start at
 * the case (`output.search.someNewField`, `exitCode` beside it); `*` matches any key
 * or array index. Empty at capture time.
 */
export const ADDED_FIELDS: readonly string[] = [
  // Issue 15's deterministic planning: LPs left to the solver's wall-clock safety net (0 in normal planning).
  "output.search.wallClockLimitHits",
  "output.*.search.wallClockLimitHits",
  // Issue 18's bounded search and simulation: the budgets each worked within.
  ...["maxLpSolves", "lpLimitReached", "maxGpuBatches", "maxExactEvaluations", "evaluationLimitReached"].flatMap(
    (field) => [`output.search.${field}`, `output.*.search.${field}`],
  ),
  "output.budget",
  // Issue 17's search speed: how the LPs were answered (the dense simplex alone, or the existing solvers too).
  ...["screenedLpSolves", "referenceLpSolves"].flatMap((field) => [
    `output.search.${field}`,
    `output.*.search.${field}`,
  ]),
  // Issue 16's engine models: the one-thread copy rate of a pageable transfer's staging (cpu.singleThreadCopyBytesPerSecond).
  "output.hardwareProfile.cpu.singleThreadCopyBytesPerSecond",
];

/** The built CLI beside this compiled file (dist/test/golden/ -> dist/cli/main.js). */
export const DEFAULT_CLI = fileURLToPath(new URL("../../cli/main.js", import.meta.url));

/** test/golden/outputs.json in the source tree, from dist/test/golden/. */
export const GOLDEN_OUTPUTS_PATH = fileURLToPath(new URL("../../../test/golden/outputs.json", import.meta.url));

export function readGoldenFile(path: string = GOLDEN_OUTPUTS_PATH): GoldenFile {
  return JSON.parse(readFileSync(path, "utf8")) as GoldenFile;
}

/**
 * Runs golden cases through one CLI build. Plan files and the synthetic checkpoint go to a temporary folder,
 * whose path is replaced by `<tmp>` in every output; close() removes it.
 */
export class GoldenRunner {
  private readonly dir = mkdtempSync(join(tmpdir(), "spillway-golden-"));
  private weightsDir: string | undefined;
  private planFiles = 0;

  constructor(private readonly cliPath: string = DEFAULT_CLI) {}

  run(goldenCase: GoldenCase): CaseResult {
    switch (goldenCase.kind) {
      case "plan":
        return this.jsonOf(this.cli(["plan", ...goldenCase.args, "--json"]), removeWallClockPlanFields);
      case "simulate": {
        const planPath = this.writePlan(goldenCase.planArgs);
        return this.jsonOf(this.cli(["simulate", planPath, ...goldenCase.simulateArgs, "--json"]), (x) => x);
      }
      case "run": {
        const planPath = this.writePlan(goldenCase.planArgs.map((a) => (a === WEIGHTS ? this.weights() : a)));
        return this.jsonOf(
          this.cli(["run", planPath, "--weights", this.weights(), ...goldenCase.runArgs, "--json"]),
          keepDeterministicRunFields,
        );
      }
    }
  }

  /** As run(), in a child process that runs while the caller goes on (cases may run side by side). */
  async runAsync(goldenCase: GoldenCase): Promise<CaseResult> {
    switch (goldenCase.kind) {
      case "plan":
        return this.jsonOf(await this.cliAsync(["plan", ...goldenCase.args, "--json"]), removeWallClockPlanFields);
      case "simulate": {
        const planPath = await this.writePlanAsync(goldenCase.planArgs);
        return this.jsonOf(await this.cliAsync(["simulate", planPath, ...goldenCase.simulateArgs, "--json"]), (x) => x);
      }
      case "run": {
        // The checkpoint is made once, before any case runs side by side with another.
        const weights = this.weights();
        const planPath = await this.writePlanAsync(goldenCase.planArgs.map((a) => (a === WEIGHTS ? weights : a)));
        return this.jsonOf(
          await this.cliAsync(["run", planPath, "--weights", weights, ...goldenCase.runArgs, "--json"]),
          keepDeterministicRunFields,
        );
      }
    }
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private cliAsync(
    args: readonly string[],
  ): Promise<{ status: number; stdout: string; stderr: string; command: string }> {
    const command = `spillway ${args.join(" ")}`;
    return new Promise((resolve, reject) => {
      execFile(
        process.execPath,
        [this.cliPath, ...args],
        { encoding: "utf8", timeout: 300_000, maxBuffer: 256 << 20, env: { ...process.env, NO_COLOR: "1" } },
        (error, stdout, stderr) => {
          const status = error ? (typeof error.code === "number" ? error.code : -1) : 0;
          if (error && typeof error.code !== "number") {
            reject(new Error(`${command}: ${error.message}`));
            return;
          }
          resolve({ status, stdout: stdout.replaceAll(this.dir, "<tmp>"), stderr, command });
        },
      );
    });
  }

  private async writePlanAsync(planArgs: readonly string[]): Promise<string> {
    const path = join(this.dir, `plan-${this.planFiles++}.json`);
    const result = await this.cliAsync(["plan", ...planArgs, "--out", path, "--quiet"]);
    if (result.status !== 0)
      throw new Error(`${result.command} exited ${result.status}: ${result.stderr.slice(0, 2000)}`);
    return path;
  }

  private cli(args: readonly string[]): { status: number; stdout: string; stderr: string; command: string } {
    const result = spawnSync(process.execPath, [this.cliPath, ...args], {
      encoding: "utf8",
      timeout: 300_000,
      env: { ...process.env, NO_COLOR: "1" },
    });
    const command = `spillway ${args.join(" ")}`;
    if (result.error) throw new Error(`${command}: ${result.error.message}`);
    return {
      status: result.status ?? -1,
      stdout: result.stdout.replaceAll(this.dir, "<tmp>"),
      stderr: result.stderr,
      command,
    };
  }

  private jsonOf(
    result: { status: number; stdout: string; stderr: string; command: string },
    keep: (x: Record<string, unknown>) => unknown,
  ): CaseResult {
    // A failure that prints nothing on stdout ("no policy fits"): the exit status is the result.
    if (result.status !== 0 && result.stdout.trim() === "") return { exitCode: result.status, output: null };
    let output: unknown;
    try {
      output = JSON.parse(result.stdout);
    } catch {
      throw new Error(
        `${result.command} (exit ${result.status}) printed no JSON on stdout; stderr: ${result.stderr.slice(0, 2000)}`,
      );
    }
    if (typeof output !== "object" || output === null || Array.isArray(output))
      throw new Error(`${result.command}: expected a JSON object on stdout`);
    const search = (output as { search?: { lpFallbacks?: unknown } }).search;
    const lpFallbacks = typeof search?.lpFallbacks === "number" ? search.lpFallbacks : undefined;
    return {
      exitCode: result.status,
      output: keep(output as Record<string, unknown>),
      ...(lpFallbacks === undefined ? {} : { lpFallbacks }),
    };
  }

  private writePlan(planArgs: readonly string[]): string {
    const path = join(this.dir, `plan-${this.planFiles++}.json`);
    const result = this.cli(["plan", ...planArgs, "--out", path, "--quiet"]);
    if (result.status !== 0)
      throw new Error(`${result.command} exited ${result.status}: ${result.stderr.slice(0, 2000)}`);
    return path;
  }

  private weights(): string {
    if (this.weightsDir === undefined) {
      const configDir = join(this.dir, "tiny-config");
      mkdirSync(configDir);
      writeFileSync(join(configDir, "config.json"), JSON.stringify(TINY_OPT_CONFIG, null, 2));
      const out = join(this.dir, "tiny-weights");
      const result = this.cli(["synth-weights", "--model", join(configDir, "config.json"), "--out", out, "--quiet"]);
      if (result.status !== 0)
        throw new Error(`${result.command} exited ${result.status}: ${result.stderr.slice(0, 2000)}`);
      this.weightsDir = out;
    }
    return this.weightsDir;
  }
}

function removeWallClockPlanFields(plan: Record<string, unknown>): unknown {
  const search = plan.search;
  if (typeof search !== "object" || search === null) return plan;
  const { elapsedMs: _elapsedMs, lpFallbacks: _lpFallbacks, ...rest } = search as Record<string, unknown>;
  return { ...plan, search: rest };
}

function keepDeterministicRunFields(result: Record<string, unknown>): unknown {
  return Object.fromEntries(RUN_FIELDS_KEPT.filter((key) => key in result).map((key) => [key, result[key]]));
}

/** Where two outputs first differ: a dotted path (array indices in brackets) and both values there. */
export interface GoldenDifference {
  readonly path: string;
  readonly expected: unknown;
  readonly actual: unknown;
}

/**
 * The first difference between a golden output and a new one, in key order, or undefined when equal.
 * Numbers compare exactly. A key only in `actual` is a difference unless its path matches ADDED_FIELDS.
 */
export function firstDifference(
  expected: unknown,
  actual: unknown,
  path = "",
  addedFields: readonly string[] = ADDED_FIELDS,
): GoldenDifference | undefined {
  if (expected === actual) return undefined;
  if (Array.isArray(expected) && Array.isArray(actual)) {
    for (let i = 0; i < Math.min(expected.length, actual.length); i++) {
      const difference = firstDifference(expected[i], actual[i], `${path}[${i}]`, addedFields);
      if (difference) return difference;
    }
    if (expected.length !== actual.length)
      return { path: `${path}.length`, expected: expected.length, actual: actual.length };
    return undefined;
  }
  if (isPlainObject(expected) && isPlainObject(actual)) {
    for (const key of Object.keys(expected)) {
      const child = path === "" ? key : `${path}.${key}`;
      if (!(key in actual)) return { path: child, expected: expected[key], actual: "(missing)" };
      const difference = firstDifference(expected[key], actual[key], child, addedFields);
      if (difference) return difference;
    }
    for (const key of Object.keys(actual)) {
      const child = path === "" ? key : `${path}.${key}`;
      if (!(key in expected) && !addedFields.some((pattern) => pathMatches(pattern, child)))
        return { path: child, expected: "(absent)", actual: actual[key] };
    }
    return undefined;
  }
  return { path: path === "" ? "(root)" : path, expected, actual };
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** `a.*.b` matches `a.x.b` and `a[3].b`. */
function pathMatches(pattern: string, path: string): boolean {
  const parts = (p: string) => p.replace(/\[(\d+)\]/g, ".$1").split(".");
  const want = parts(pattern);
  const got = parts(path);
  return want.length === got.length && want.every((w, i) => w === "*" || w === got[i]);
}
