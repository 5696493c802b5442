/** `spillway simulate <plan>`: replay a plan's schedule stream by stream and check the planner's predictions. */

import type { Argv } from "yargs";
import { InputError } from "../core/input-error.js";
import type { PipelinePlan } from "../core/pipeline-plan.js";
import { SCHEDULE_NAMES } from "../core/schedule-name.js";
import { simulationOverBudget } from "../core/simulation-budget.js";
import { formatBytes } from "../core/units.js";
import { ENGINE_NAMES, type EngineName } from "../engines/engine-names.js";
import { PlanError } from "../planner/plan.js";
import { simulate } from "../simulator/simulate.js";
import { simulateEngine } from "../simulator/simulate-engine.js";
import { simulateMoe } from "../simulator/simulate-moe.js";
import { simulatePipeline } from "../simulator/simulate-pipeline.js";
import { commandHead } from "./command-heads.js";
import { type ArgsOf, defineCommand } from "./command-module.js";
import { withProgressSync } from "./command-progress.js";
import { formatEngineSimulation } from "./format-engine-simulation.js";
import { formatMoeSimulation } from "./format-moe-simulation.js";
import { formatPipelineSimulation } from "./format-pipeline-simulation.js";
import { formatSimulation } from "./format-simulation.js";
import { loadPlanTarget } from "./plan-target.js";
import { readRouting } from "./routing-flag.js";
import { EXIT_CODES_EPILOG, progressHelp, QUICK_PHASE_DELAY_SECONDS } from "./terminal.js";

function simulateOptions<T>(y: Argv<T>) {
  return y
    .positional("plan", {
      type: "string",
      demandOption: true,
      describe: "a plan JSON file (spillway plan --out), or - for standard input",
    })
    .option("hardware", { type: "string", describe: "profile name or path (default: the plan's)" })
    .option("schedule", { choices: SCHEDULE_NAMES, describe: "schedule semantics (default: the plan's)" })
    .option("engine", {
      choices: ENGINE_NAMES,
      describe: "replay the engine's own schedule for the plan's policy (default: the plan's engine)",
    })
    .option("trace", { type: "string", describe: "write a Chrome Trace Event file (Perfetto, chrome://tracing)" })
    .option("timeline", {
      type: "boolean",
      default: false,
      describe: "print a text timeline of one layer (the middle one, first decode step)",
    })
    .option("json", {
      type: "boolean",
      default: false,
      describe: "print the result as JSON (schemas/simulation.schema.json for dense plans)",
    })
    .option("quiet", {
      type: "boolean",
      default: false,
      describe: "no progress and no text but errors (--json still prints)",
    })
    .option("routing", {
      type: "string",
      describe:
        "MoE plans: a routing trace (CSV from trace synth, or Megatron JSONL) to replay; default: the model's synthetic trace",
    });
}

export type SimulateArgs = ArgsOf<ReturnType<typeof simulateOptions>>;

export function runSimulate(argv: SimulateArgs): void {
  const { planFile, profile, capacityBytes } = loadPlanTarget(argv.plan, argv.hardware, argv.quiet);
  const engine = argv.engine ?? planFile.engine ?? "spillway";
  if (engine !== "spillway") {
    simulateOnEngine(argv, planFile, profile, engine);
    return;
  }
  if (planFile.engine && planFile.engine !== "spillway")
    throw new InputError(
      "--engine",
      undefined,
      `${argv.plan} is a plan for ${planFile.engine} (its prediction is that engine's): Spillway's simulator checks plans made for Spillway's runtime; plan without --engine`,
    );
  if (planFile.pipeline) {
    simulatePipelinePlan(argv, { ...planFile, pipeline: planFile.pipeline });
    return;
  }
  if (planFile.policy.experts) {
    if (argv.trace || argv.timeline)
      throw new InputError(
        argv.trace ? "--trace" : "--timeline",
        undefined,
        "MoE plans are replayed layer by layer on a routing trace; stream traces and timelines are for dense plans",
      );
    const result = simulateMoe(
      planFile,
      profile,
      argv.routing ? readRouting(argv.routing, planFile.modelSpec) : undefined,
    );
    if (argv.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
    else if (!argv.quiet) process.stdout.write(formatMoeSimulation(result) + "\n");
    return;
  }
  if (argv.routing)
    throw new InputError(
      "--routing",
      undefined,
      "this plan has no expert policy (policy.experts): routing traces apply to MoE plans",
    );
  const over = simulationOverBudget({
    numLayers: planFile.modelSpec.numLayers,
    numGpuBatches: planFile.policy.numGpuBatches,
    genLen: planFile.workload.genLen,
  });
  if (over)
    throw new InputError(
      argv.plan === "-" ? "<stdin>" : argv.plan,
      "policy.numGpuBatches",
      `the plan is too large to simulate: ${over}`,
    );
  const result = withProgressSync({ quiet: argv.quiet, delaySeconds: QUICK_PHASE_DELAY_SECONDS }, (onProgress) =>
    simulate(planFile, profile, {
      schedule: argv.schedule ?? planFile.schedule,
      capacityBytes,
      ...(argv.trace ? { tracePath: argv.trace } : {}),
      timeline: argv.timeline,
      onProgress,
    }),
  );
  if (argv.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
  else if (!argv.quiet)
    process.stdout.write(formatSimulation(result) + "\n" + (result.timeline ? `\n${result.timeline}\n` : ""));
  if (result.overflow) {
    const o = result.overflow;
    throw new PlanError(
      `the plan does not fit: ${o.tier} memory overflows at ${o.seconds.toFixed(3)} s while allocating ${o.what} (${formatBytes(o.inUseBytes)} in use, capacity ${formatBytes(o.capacityBytes)})`,
    );
  }
}

function simulatePipelinePlan(
  argv: SimulateArgs,
  planFile: ReturnType<typeof loadPlanTarget>["planFile"] & { readonly pipeline: PipelinePlan },
): void {
  for (const flag of ["trace", "routing", "hardware"] as const)
    if (argv[flag] !== undefined)
      throw new InputError(
        `--${flag}`,
        undefined,
        `${argv.plan} is a pipeline plan: its stages are simulated on the cluster it carries, without --${flag}`,
      );
  const result = simulatePipeline(planFile, { schedule: argv.schedule ?? planFile.schedule, timeline: argv.timeline });
  if (argv.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
  else if (!argv.quiet) process.stdout.write(formatPipelineSimulation(result) + "\n");
  const overflowing = result.stages.findIndex((s) => s.overflow);
  if (overflowing >= 0)
    throw new PlanError(
      `the plan does not fit: stage ${overflowing}'s ${result.stages[overflowing]!.overflow!.tier} memory overflows`,
    );
}

function simulateOnEngine(
  argv: SimulateArgs,
  planFile: ReturnType<typeof loadPlanTarget>["planFile"],
  profile: ReturnType<typeof loadPlanTarget>["profile"],
  engine: EngineName,
): void {
  for (const flag of ["trace", "schedule", "routing"] as const)
    if (argv[flag] !== undefined)
      throw new InputError(
        `--${flag}`,
        undefined,
        `applies to Spillway's own simulator; ${engine}'s replay follows its own schedule (use --timeline for one step)`,
      );
  const result = simulateEngine(planFile, profile, { engine, timeline: argv.timeline });
  if (argv.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
  else if (!argv.quiet) process.stdout.write(formatEngineSimulation(result) + "\n");
  if (!result.feasible)
    throw new PlanError(`the plan does not fit in ${engine}: ${result.infeasibleReasons.join("; ")}`);
}

export const simulateCommand = defineCommand({
  ...commandHead("simulate"),
  builder: (y) =>
    simulateOptions(y)
      .epilog(
        `${progressHelp("tokens and GPU batches simulated, dense plans", { delayed: true })}\n\n${EXIT_CODES_EPILOG}`,
      )
      .example(
        "$0 plan --out p.json && $0 simulate p.json --trace t.json",
        "simulate the default plan and write a trace",
      )
      .example(
        "$0 plan --model mixtral-8x7b --batch-size 1 --out m.json && $0 trace synth --model mixtral-8x7b --tokens 500 --out r.csv && $0 simulate m.json --routing r.csv --json",
        "replay an MoE plan's expert caches on a routing trace",
      )
      .example("$0 simulate p.json --schedule flexgen --json", "the same plan under FlexGen's per-step sync")
      .example("$0 simulate p.json --engine flexgen --timeline", "the plan's policy in FlexGen's own schedule"),
  handler: (argv) => runSimulate(argv),
});
