/**
 * `spillway compare`: plan, simulate and run side by side (the library's compare()), predicted against
 * measured; with `--measured FILE...`, measured runs of any engine scored against that engine's model
 * instead (nothing is run).
 */
import { InputError } from "../core/input-error.js";
import { PlanError } from "../planner/plan.js";
import { readCheckpointConfig } from "../runtime/checkpoint-files.js";
import { compare } from "../runtime/compare.js";
import { checkCudaAddonBuilt } from "./check-cuda-addon.js";
import { commandHead } from "./command-heads.js";
import { defineCommand } from "./command-module.js";
import { withProgress } from "./command-progress.js";
import { formatComparison } from "./format-comparison.js";
import { checkOffloadDir } from "./offload-dir-flag.js";
import { type PlanArgs, planOptions, planRequestFromArgs } from "./plan-options.js";
import { EXIT_CODES_EPILOG, progressHelp } from "./terminal.js";

export interface CompareArgs extends PlanArgs {
  readonly weights?: string | undefined;
  readonly backend: "cpu" | "cuda";
  readonly "offload-dir"?: string | undefined;
  readonly slices?: boolean | undefined;
  readonly measured?: (string | number)[] | undefined;
}

/** `--measured FILE...`: the runs of `--engine` scored against its model on `--hardware`. */
async function scoreMeasured(argv: CompareArgs, files: string[]): Promise<void> {
  const engine = argv.engine;
  // The profile as the plan flags give it (--hardware, capacities overridden by --gpu-mem and the like).
  const { hardware } = planRequestFromArgs(argv);
  const { readMeasuredRuns, repeatedRunWarnings, runsOfEngine } = await import("../engines/measured-runs.js");
  const { scoreRuns } = await import("../engines/score-runs.js");
  const { runs } = runsOfEngine(readMeasuredRuns(files), engine, hardware, files.join(", "));
  for (const warning of repeatedRunWarnings(runs, "it counts twice in the errors' summary"))
    process.stderr.write(`${warning}\n`);
  const scores = scoreRuns(runs, hardware);
  if (argv.json)
    process.stdout.write(
      JSON.stringify(
        {
          engine,
          hardware: hardware.name,
          medianAbsoluteError: scores.medianAbsoluteError,
          runs: scores.scores.map((s) => ({
            source: s.run.source,
            model: s.run.model.name,
            workload: s.run.workload,
            measuredTokensPerSecond: s.measuredTokensPerSecond,
            predictedTokensPerSecond: s.predictedTokensPerSecond,
            relativeError: s.relativeError,
            feasible: s.feasible,
            bottleneck: s.bottleneck,
          })),
        },
        null,
        2,
      ) + "\n",
    );
  else if (!argv.quiet) {
    const { formatScores } = await import("./format-scores.js");
    process.stdout.write(formatScores(engine, hardware.name, scores) + "\n");
  }
}

export async function runCompare(argv: CompareArgs): Promise<void> {
  if (argv.measured !== undefined) {
    if (argv.measured.length === 0)
      throw new InputError(
        "--measured",
        undefined,
        "expected one or more runs files (a runs CSV or compare --json files)",
      );
    return scoreMeasured(argv, argv.measured.map(String));
  }
  if (argv.engine !== "spillway")
    throw new InputError(
      "--engine",
      undefined,
      `compare runs Spillway's own runtime; runs of ${argv.engine} are scored against its model with --measured FILE (a runs CSV or compare --json files)`,
    );
  checkCudaAddonBuilt(argv.backend);
  checkOffloadDir(argv["offload-dir"]);
  if (argv.weights === undefined)
    throw new InputError(
      "--weights",
      undefined,
      "missing: the folder with config.json and safetensors weights to run (or --measured FILE to score measured runs)",
    );
  const weightsDir = argv.weights;
  readCheckpointConfig(weightsDir); // a missing or wrong folder fails before the plan and simulation
  const { request } = planRequestFromArgs(argv);
  const { comparison } = await withProgress({ quiet: argv.quiet }, (onProgress) =>
    compare({
      ...request,
      weightsDir,
      backend: argv.backend,
      ...(argv["offload-dir"] ? { offloadDir: argv["offload-dir"] } : {}),
      ...(argv.slices ? { slices: true } : {}),
      onProgress,
    }),
  );
  if (argv.json) process.stdout.write(JSON.stringify(comparison, null, 2) + "\n");
  else if (!argv.quiet) process.stdout.write(formatComparison(comparison) + "\n");
  if (comparison.matchesReference === false)
    throw new PlanError("the generated tokens differ from the all-on-device reference");
}

export const compareCommand = defineCommand({
  ...commandHead("compare"),
  builder: (y) =>
    planOptions(y)
      .option("weights", {
        type: "string",
        describe: "folder with config.json and safetensors weights (needed unless --measured)",
      })
      .option("measured", {
        type: "array",
        string: true,
        describe:
          "score measured runs (runs CSV or compare --json files) against the --engine model on --hardware instead of running",
      })
      .option("backend", {
        choices: ["cpu", "cuda"] as const,
        default: "cpu" as const,
        describe: "where to run: the CPU backend, or a GPU through the CUDA addon",
      })
      .option("offload-dir", { type: "string", describe: "parent folder for offload files" })
      .option("slices", {
        type: "boolean",
        default: false,
        describe:
          "dense plans: also line up the simulated and the measured trace, each kind of slice (compute, load-cache, ...) per phase: count, median and total (JSON: slices)",
      })
      .epilog(
        `${progressHelp("the policy search, the simulation, the run and the all-on-device reference, each counted in turn")}\n\n${EXIT_CODES_EPILOG}`,
      )
      .example(
        "$0 compare --model w --weights w --hardware cpu.json --prompt-len 32 --gen-len 8 --gpu-mem 0.05 --gbs 4 --nb 2 --percent 0 100 0 100 100 0",
        "weights on the host",
      )
      .example(
        "$0 compare --engine spillway --measured runs.csv --hardware t4",
        "score measured runs against an engine's predictions",
      ),
  handler: (argv) => runCompare(argv),
});
