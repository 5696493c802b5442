/**
 * `spillway sweep`: one model and workload planned over a list of hardware and cluster profiles (every
 * shipped one by default) on worker threads, a row per profile: a table on stdout, `--json`, or a CSV or
 * JSON file (`--out`). The library's sweep() does the work; this resolves the flags.
 */
import { availableParallelism } from "node:os";
import { InputError } from "../core/input-error.js";
import { shippedClusterNames } from "../core/resolve-cluster.js";
import { shippedProfileNames } from "../core/resolve-hardware.js";
import { checkOutputPath } from "../core/write-file-atomic.js";
import { PlanError } from "../planner/plan.js";
import type { SweepHardware } from "../planner/sweep/plan-on-target.js";
import { sweep } from "../planner/sweep/sweep.js";
import { sweepFileFormat, sweepJson, writeSweepFile } from "../planner/sweep/sweep-file.js";
import { commandHead } from "./command-heads.js";
import { defineCommand } from "./command-module.js";
import { withProgress } from "./command-progress.js";
import { formatSweep } from "./format-sweep.js";
import { parseNumberFlag } from "./parse-flags.js";
import { engineFromArgs, type PlanArgs, planOptions, planRequestFromArgs } from "./plan-options.js";
import { pricesFromFlags } from "./price-flags.js";
import { EXIT_CODES_EPILOG, progressHelp } from "./terminal.js";

/** The most worker threads asked for that is taken as a number (the pool is never larger than the cores). */
const MAX_THREADS = 1024;

export interface SweepArgs extends Omit<PlanArgs, "hardware"> {
  readonly hardware?: readonly unknown[];
  readonly price?: readonly unknown[];
  readonly prices?: unknown;
  readonly threads?: unknown;
}

/** The profile names --hardware lists (repeated, comma-separated), or every shipped profile and cluster. */
export function hardwareNames(flags: readonly unknown[] | undefined): string[] {
  const given = (flags ?? []).filter((f) => f !== undefined);
  if (given.length === 0) return [...shippedProfileNames(), ...shippedClusterNames()];
  const names = given.flatMap((f) => String(f).split(",")).map((n) => n.trim());
  const seen = new Set<string>();
  for (const name of names) {
    if (name === "")
      throw new InputError("--hardware", undefined, "an empty name in the list; expected NAME[,NAME...]");
    if (seen.has(name)) throw new InputError("--hardware", undefined, `${JSON.stringify(name)} is listed twice`);
    seen.add(name);
  }
  return names;
}

export async function runSweep(argv: SweepArgs): Promise<void> {
  if (argv.out !== undefined) {
    checkOutputPath(argv.out);
    if (!sweepFileFormat(argv.out))
      throw new InputError(
        "--out",
        undefined,
        `expected a file name ending in .csv or .json, got ${JSON.stringify(argv.out)}`,
      );
  }
  const threads = parseNumberFlag("threads", argv.threads, { min: 1, max: MAX_THREADS, integer: true });
  const names = hardwareNames(argv.hardware);
  // Each profile's request is resolved from the flags again: standard input could be read only once.
  for (const flag of ["model", "routing"] as const)
    if (argv[flag] === "-" && names.length > 1)
      throw new InputError(
        `--${flag}`,
        undefined,
        `standard input (-) is read once; a sweep over ${names.length} profiles needs a file or a name here`,
      );
  // Each profile resolved (and every flag checked) as `spillway plan --hardware NAME` would.
  const targets = names.map((name) => planRequestFromArgs({ ...argv, hardware: name } as PlanArgs, true));
  const { hardware: _h, ...request } = targets[0]!.request;
  if (engineFromArgs({ ...argv, hardware: names[0]! } as PlanArgs, request.model).engine !== "spillway")
    throw new InputError(
      "--engine",
      undefined,
      "a sweep plans for Spillway's runtime; plan one profile to predict another engine",
    );
  const hardware: SweepHardware[] = targets.map((t) => t.cluster ?? t.hardware);
  const seen = new Map<string, string>();
  hardware.forEach((h, i) => {
    const other = seen.get(h.name);
    if (other !== undefined)
      throw new InputError(
        "--hardware",
        undefined,
        `${names[i]} and ${other} are both the profile ${JSON.stringify(h.name)}`,
      );
    seen.set(h.name, names[i]!);
  });
  const prices = pricesFromFlags(
    argv.price,
    argv.prices,
    hardware.map((h) => h.name),
  );
  const result = await withProgress({ quiet: argv.quiet }, (onProgress) =>
    sweep({
      ...request,
      hardware,
      ...(prices ? { prices } : {}),
      threads: Math.min(threads ?? names.length, availableParallelism()),
      onProgress,
    }),
  );
  if (argv.out) writeSweepFile(argv.out, result);
  if (argv.json) process.stdout.write(sweepJson(result));
  else if (!argv.quiet) process.stdout.write(formatSweep(result) + "\n");
  if (!result.rows.some((r) => r.fits))
    throw new PlanError(`${result.model} fits none of the ${names.length} profiles swept`);
}

export const sweepCommand = defineCommand({
  ...commandHead("sweep"),
  builder: (y) =>
    planOptions(y)
      .option("hardware", {
        type: "array",
        string: true,
        default: undefined,
        describe:
          "profiles and clusters to plan on: names or profile files, comma-separated or repeated (default: every shipped profile and cluster)",
      })
      .option("price", {
        type: "array",
        string: true,
        describe: "dollars per GPU-hour: NAME=DOLLARS for one profile (repeat), DOLLARS alone for every profile",
      })
      .option("prices", {
        type: "string",
        describe:
          'a file of dollars per GPU-hour by profile: JSON {"t4": 0.35} or CSV profile,dollarsPerGpuHour ("*": every profile)',
      })
      .option("threads", {
        type: "string",
        describe: "worker threads planning at once (default: one per profile, at most the CPU cores)",
      })
      .option("json", { type: "boolean", default: false, describe: "print the sweep as JSON" })
      // Engine models predict one GPU: a sweep is Spillway's (sweepCommand refuses another engine).
      .hide("engine")
      .hide("ngl")
      .hide("n-cpu-moe")
      .hide("gguf-type")
      .hide("fewer-batch")
      .option("out", { type: "string", describe: "also write the sweep to FILE.csv or FILE.json (atomically)" })
      .epilog(`${progressHelp("profiles planned")}\n\n${EXIT_CODES_EPILOG}`)
      .example("$0 sweep --model opt-6.7b", "every shipped GPU and cluster")
      .example(
        "$0 sweep --model opt-30b --hardware t4,1x4-t4,1x8-a100-80g --price t4=0.35 --price 1x4-t4=0.35 --price 1x8-a100-80g=3.9",
        "cost per million tokens on three choices",
      )
      .example(
        "$0 sweep --model opt-6.7b --prices prices.json --out sweep.csv && $0 report sweep.csv --out r",
        "charted",
      ),
  handler: (argv) => runSweep(argv as unknown as SweepArgs),
});
