/** `spillway run <plan> --weights DIR`: execute a plan for real and compare measured with predicted. */
import type { Argv } from "yargs";
import { InputError } from "../core/input-error.js";
import { SCHEDULE_NAMES } from "../core/schedule-name.js";
import { PlanError } from "../planner/plan.js";
import { run } from "../runtime/run.js";
import { checkCudaAddonBuilt } from "./check-cuda-addon.js";
import { commandHead } from "./command-heads.js";
import { type ArgsOf, defineCommand } from "./command-module.js";
import { withProgress } from "./command-progress.js";
import { formatRun } from "./format-simulation.js";
import { checkOffloadDir } from "./offload-dir-flag.js";
import { loadPlanTarget } from "./plan-target.js";
import { EXIT_CODES_EPILOG, progressHelp } from "./terminal.js";

function runOptions<T>(y: Argv<T>) {
  return y
    .positional("plan", {
      type: "string",
      demandOption: true,
      describe: "a plan JSON file (spillway plan --out), or - for standard input",
    })
    .option("weights", {
      type: "string",
      demandOption: true,
      describe: "folder with config.json and safetensors weights (spillway synth-weights makes one)",
    })
    .option("backend", {
      choices: ["cpu", "cuda"] as const,
      default: "cpu" as const,
      describe: "where to compute: the CPU backend, or a GPU through the CUDA addon (npm run build:cuda)",
    })
    .option("hardware", { type: "string", describe: "profile name or path (default: the plan's)" })
    .option("schedule", { choices: SCHEDULE_NAMES, describe: "schedule semantics (default: the plan's)" })
    .option("trace", { type: "string", describe: "write a Chrome Trace Event file of the measured run" })
    .option("record-routing", {
      type: "string",
      describe:
        "Mixture-of-Experts plans: write the routing the run produced (with the speculative guesses) as a routing CSV for plan/simulate --routing",
    })
    .option("offload-dir", {
      type: "string",
      describe: "parent folder for the disk tier's offload files (default: the OS temp folder)",
    })
    .option("reference", {
      type: "boolean",
      default: true,
      describe: "also run the all-on-device reference and compare tokens (--no-reference to skip)",
    })
    .option("json", { type: "boolean", default: false, describe: "print the result as JSON" })
    .option("quiet", {
      type: "boolean",
      default: false,
      describe: "no progress and no text but errors (--json still prints)",
    });
}

export type RunArgs = ArgsOf<ReturnType<typeof runOptions>>;

export async function runRun(argv: RunArgs): Promise<void> {
  checkCudaAddonBuilt(argv.backend);
  checkOffloadDir(argv["offload-dir"]);
  const { planFile, profile, capacityBytes } = loadPlanTarget(argv.plan, argv.hardware, argv.quiet);
  if (planFile.engine && planFile.engine !== "spillway")
    throw new InputError(
      argv.plan,
      "engine",
      `a plan for ${planFile.engine}: spillway run executes Spillway's own runtime, which this plan's prediction does not describe; run it in ${planFile.engine} (spillway export) or plan without --engine`,
    );
  const over = (["gpu", "cpu", "disk"] as const).filter(
    (t) => planFile.predicted.peakBytes[t] > planFile.predicted.capacityBytes[t],
  );
  if (over.length)
    throw new PlanError(`the plan does not fit (${over.join(", ")} over capacity): the runtime refuses it`);
  const result = await withProgress({ quiet: argv.quiet }, (onProgress) =>
    run(planFile, profile, {
      weightsDir: argv.weights,
      schedule: argv.schedule ?? planFile.schedule,
      capacityBytes,
      ...(argv.trace ? { tracePath: argv.trace } : {}),
      ...(argv["record-routing"] !== undefined ? { routingPath: argv["record-routing"] } : {}),
      ...(argv["offload-dir"] ? { offloadDir: argv["offload-dir"] } : {}),
      reference: argv.reference,
      backend: argv.backend,
      onProgress,
    }),
  );
  if (argv.json) process.stdout.write(JSON.stringify({ ...result, referenceTokens: undefined }, null, 2) + "\n");
  else if (!argv.quiet) process.stdout.write(formatRun(result) + "\n");
  if (result.matchesReference === false)
    throw new PlanError("the generated tokens differ from the all-on-device reference");
}

export const runCommand = defineCommand({
  ...commandHead("run"),
  builder: (y) =>
    runOptions(y)
      .epilog(
        `${progressHelp("layers computed, per GPU batch and token: the run, then the all-on-device reference")}\n\n${EXIT_CODES_EPILOG}`,
      )
      .example(
        "$0 synth-weights --model opt-125m --out w && $0 plan --model w --gpu-mem 0.05 --out p.json && $0 run p.json --weights w",
        "run a plan on synthetic OPT-125M weights",
      ),
  handler: (argv) => runRun(argv),
});
