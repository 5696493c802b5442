/**
 * `spillway calibrate --engine E RUNS... --hardware P --out FILE`: fit the profile's kernel-class rates
 * to measured runs of engine E (engines/calibrate.ts), print each rate's prior and fitted value and the
 * leave-one-out errors before and after, and write the profile with the fitted values beside its
 * datasheet and measured ones (its notes kept).
 */
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import type { Argv } from "yargs";
import { type HardwareProfile, parseHardwareProfile } from "../core/hardware-profile.js";
import { InputError } from "../core/input-error.js";
import { readJsonFile } from "../core/read-json-file.js";
import { shippedClusterNames } from "../core/resolve-cluster.js";
import {
  isHardwarePath,
  profilesDirectory,
  shippedProfileNames,
  unknownHardwareError,
} from "../core/resolve-hardware.js";
import { checkOutputPath, writeFileAtomic } from "../core/write-file-atomic.js";
import { ENGINE_NAMES } from "../engines/engine-names.js";
import { commandHead } from "./command-heads.js";
import { type ArgsOf, defineCommand } from "./command-module.js";
import { parseNumberFlag } from "./parse-flags.js";
import { EXIT_CODES_EPILOG } from "./terminal.js";

function calibrateOptions<T>(y: Argv<T>) {
  return y
    .positional("runs", {
      type: "string",
      array: true,
      demandOption: true,
      describe:
        "runs CSV files (engine,model,flags,prompt_len,gen_len,tokens_per_second[,hardware,note]) and spillway compare --json files",
    })
    .option("engine", {
      choices: ENGINE_NAMES,
      demandOption: true,
      describe: "the engine whose runs to fit (runs of other engines are set aside)",
    })
    .option("hardware", {
      type: "string",
      demandOption: true,
      describe: "the profile of the machine the runs were measured on: a name or a profile JSON file",
    })
    .option("out", { type: "string", demandOption: true, describe: "the calibrated profile JSON to write" })
    .option("bounds", {
      type: "string",
      describe: "keep each rate within [prior / F, prior x F] (default 4)",
    })
    .option("prior-weight", {
      type: "string",
      describe:
        "weight of each rate's ln(fitted / prior)^2 against a run's ln(predicted / measured)^2: a rate few runs depend on stays near its prior (default 0.01; 0 fits the runs alone)",
    })
    .option("json", { type: "boolean", default: false, describe: "print the calibration as JSON" })
    .option("quiet", { type: "boolean", default: false, describe: "print no text but errors (--json still prints)" });
}

export type CalibrateArgs = ArgsOf<ReturnType<typeof calibrateOptions>>;

/** The file --hardware names: a shipped profile's file, a path, or "-" (standard input). */
function hardwarePath(nameOrPath: string): string {
  const lower = nameOrPath.toLowerCase();
  if (shippedProfileNames().includes(lower)) return `${profilesDirectory()}${lower}.json`;
  if (shippedClusterNames().includes(lower))
    throw new InputError(
      "--hardware",
      undefined,
      `${nameOrPath} is a cluster; calibrate fits one GPU's profile: expected a profile name (${shippedProfileNames().join(", ")}) or the path of a profile JSON file`,
    );
  if (isHardwarePath(nameOrPath)) return nameOrPath;
  throw unknownHardwareError(nameOrPath);
}

/** Refuses an --out that is one of the inputs (the same file, whatever path names it). */
function checkOutIsNew(out: string, inputs: readonly string[]): void {
  if (!existsSync(out)) return;
  const target = statSync(out);
  for (const input of inputs) {
    if (input === "-" || !existsSync(input)) continue;
    const stat = statSync(input);
    if (stat.dev === target.dev && stat.ino === target.ino)
      throw new InputError(
        "--out",
        undefined,
        `${out} is an input (${resolve(input)}); write the calibrated profile to another file`,
      );
  }
}

export async function runCalibrate(argv: CalibrateArgs): Promise<void> {
  const bounds = parseNumberFlag("bounds", argv.bounds, { greaterThan: 1 });
  const priorWeight = parseNumberFlag("prior-weight", argv["prior-weight"], { min: 0 });
  const runFiles = argv.runs.map(String);
  const profilePath = hardwarePath(argv.hardware);
  checkOutIsNew(argv.out, [...runFiles, profilePath]);
  checkOutputPath(argv.out);
  const raw = readJsonFile(profilePath);
  const prior: HardwareProfile = parseHardwareProfile(raw, profilePath === "-" ? "<stdin>" : profilePath);
  const { readMeasuredRuns, repeatedRunWarnings, runsOfEngine } = await import("../engines/measured-runs.js");
  const { calibrate, fittedSource, withFittedRates } = await import("../engines/calibrate.js");
  const { runs, setAside } = runsOfEngine(readMeasuredRuns(runFiles), argv.engine, prior, runFiles.join(", "));
  for (const warning of repeatedRunWarnings(
    runs,
    "it weighs twice in the fit, and the leave-one-out error leaves its twin in",
  ))
    process.stderr.write(`${warning}\n`);
  if (runs.length < 2)
    throw new InputError(
      runFiles.join(", "),
      undefined,
      `1 run of the ${argv.engine} engine; calibration needs at least two (each run is checked against a fit to the others)`,
    );
  const calibration = calibrate(prior, runs, {
    ...(bounds !== undefined ? { bounds } : {}),
    ...(priorWeight !== undefined ? { priorWeight } : {}),
  });
  const fitted = new Map(calibration.fit.rates.map((r) => [r.name, r.fitted]));
  // The input's own JSON with the fitted values written in, so its notes and field order survive.
  const written = withFittedRates(raw as HardwareProfile, fitted, fittedSource(runs));
  parseHardwareProfile(JSON.parse(JSON.stringify(written)), "calibrated profile");
  writeFileAtomic(argv.out, JSON.stringify(written, null, 2) + "\n");
  if (argv.json) {
    const { fit, leaveOneOut } = calibration;
    process.stdout.write(
      JSON.stringify(
        {
          engine: argv.engine,
          hardware: prior.name,
          out: argv.out,
          runs: runs.length,
          setAside,
          bounds: bounds ?? null,
          priorWeight: calibration.fit.priorWeight,
          rates: fit.rates.map((r) => ({
            name: r.name,
            label: r.label,
            path: r.path,
            prior: r.prior.value,
            priorKind: r.prior.kind,
            fitted: r.fitted,
            ratio: r.fitted / r.prior.value,
            lower: r.lower,
            upper: r.upper,
            atBound: r.atBound,
          })),
          unfitted: fit.unfitted,
          sumSquaredLogError: { before: fit.sumSquaredLogErrorBefore, after: fit.sumSquaredLogErrorAfter },
          priorTermAfter: fit.priorTermAfter,
          leaveOneOut,
        },
        null,
        2,
      ) + "\n",
    );
  } else if (!argv.quiet) {
    const { formatCalibration } = await import("./format-calibration.js");
    process.stdout.write(formatCalibration(argv.engine, prior.name, calibration, setAside, argv.out) + "\n");
  }
}

export const calibrateCommand = defineCommand({
  ...commandHead("calibrate"),
  builder: (y) =>
    calibrateOptions(y)
      .epilog(EXIT_CODES_EPILOG)
      .example(
        "$0 calibrate --engine spillway runs.csv --hardware t4 --out t4-calibrated.json",
        "fit the T4 profile to your own runs",
      )
      .example(
        "$0 calibrate --engine spillway c1.json c2.json c3.json --hardware cpu.json --out cpu-fitted.json --bounds 8",
        "fit a CPU profile to spillway compare --json results, each rate within x1/8..x8",
      ),
  handler: (argv) => runCalibrate(argv),
});
