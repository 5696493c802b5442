/** `spillway plan`: choose (or score) an offloading policy and predict its throughput. */

import { InputError } from "../core/input-error.js";
import { checkOutputPath, writeFileAtomic } from "../core/write-file-atomic.js";
import { baselineOnEngine } from "../engines/baseline-engines.js";
import { engineModel } from "../engines/engines.js";
import { planForEngine } from "../engines/plan-for-engine.js";
import { baselines } from "../planner/baselines.js";
import { planPipeline } from "../planner/pipeline/plan-pipeline.js";
import { tensorParallelSizes } from "../planner/pipeline/tensor-parallel.js";
import { fixedPolicy, PlanError, plan, REALIZED_DIFFERS } from "../planner/plan.js";
import { commandHead } from "./command-heads.js";
import { defineCommand } from "./command-module.js";
import { withProgress } from "./command-progress.js";
import { baselineJson, formatBaselines } from "./format-baselines.js";
import { formatPlan } from "./format-plan.js";
import { parseNumberFlag } from "./parse-flags.js";
import { engineFromArgs, type PlanArgs, planOptions, planRequestFromArgs } from "./plan-options.js";
import { EXIT_CODES_EPILOG, progressHelp, QUICK_PHASE_DELAY_SECONDS } from "./terminal.js";

export async function runPlan(
  argv: PlanArgs & { readonly compare: boolean; readonly "tensor-parallel"?: string },
): Promise<void> {
  if (argv.out !== undefined) checkOutputPath(argv.out);
  const { request, hardware, cluster } = planRequestFromArgs(argv, true);
  const tensorParallelSize = parseNumberFlag("tensor-parallel", argv["tensor-parallel"], { min: 1, integer: true });
  if (tensorParallelSize !== undefined) {
    if (!cluster)
      throw new InputError(
        "--tensor-parallel",
        undefined,
        "applies to cluster profiles only (a --hardware of several GPUs)",
      );
    const sizes = tensorParallelSizes(request.model, cluster);
    if (!sizes.includes(tensorParallelSize))
      throw new InputError(
        "--tensor-parallel",
        undefined,
        `expected one of ${sizes.join(", ")} (divisors of ${cluster.name}'s ${cluster.gpusPerNode} GPUs per node that split ${request.model.name}'s ${request.model.numHeads} heads evenly), got ${tensorParallelSize}`,
      );
  }
  const { engine, knobs } = engineFromArgs(argv, request.model);
  if (cluster && engine !== "spillway")
    throw new InputError(
      "--engine",
      undefined,
      `cluster plans are for spillway's cost model; ${engine}'s model plans one GPU`,
    );
  if (cluster && argv.compare)
    throw new InputError(
      "--compare",
      undefined,
      "the baselines are single-GPU plans; compare them on one GPU's profile",
    );
  const why = engine === "spillway" ? undefined : engineModel(engine).unsupported(request.model);
  if (why) throw new InputError("--engine", undefined, `${engine} cannot run ${request.model.name}: ${why}`);
  // The batch the user fixed (an MoE model's --batch-size is one GPU batch): engines and baselines keep it.
  const fixedBatch = {
    ...(request.fixed?.gbs !== undefined ? { gbs: request.fixed.gbs } : {}),
    ...(request.fixed?.nb !== undefined ? { nb: request.fixed.nb } : {}),
    ...(request.experts?.batchSize !== undefined ? { gbs: request.experts.batchSize, nb: 1 } : {}),
  };
  const spillwayPlan = await withProgress(
    { quiet: argv.quiet, delaySeconds: QUICK_PHASE_DELAY_SECONDS },
    (onProgress) =>
      cluster
        ? planPipeline({
            ...request,
            cluster,
            onProgress,
            ...(tensorParallelSize !== undefined ? { tensorParallelSize } : {}),
          })
        : plan({ ...request, onProgress }),
  );
  const planned =
    engine === "spillway"
      ? spillwayPlan
      : await withProgress({ quiet: argv.quiet, delaySeconds: QUICK_PHASE_DELAY_SECONDS }, (onProgress) =>
          planForEngine(spillwayPlan, engine, hardware, {
            onProgress,
            ...(fixedPolicy(request.fixed) ? { requested: fixedPolicy(request.fixed)! } : {}),
            fixedBatch,
            fixed: {
              ...(request.fixed ? { policy: request.fixed } : {}),
              expertCacheSize: request.experts?.cacheSize !== undefined,
              expertBits: request.experts?.bits !== undefined,
              attentionBits: request.experts?.attentionBits !== undefined,
            },
            knobs,
            ...(request.routing ? { routing: request.routing } : {}),
          }),
        );
  const result = { ...planned, hardwareSource: argv.hardware === "-" ? hardware.name : argv.hardware };
  const compared = argv.compare
    ? (
        await baselines(
          { model: result.modelSpec, hardware, workload: result.workload, schedule: result.schedule },
          fixedBatch,
        )
      ).map((baseline) => ({ baseline, onEngine: baselineOnEngine(baseline, hardware) }))
    : undefined;
  const output = compared ? { ...result, baselines: compared.map(baselineJson) } : result;
  const json = JSON.stringify(output, null, 2);
  if (argv.out) writeFileAtomic(argv.out, json + "\n");
  if (argv.json) process.stdout.write(json + "\n");
  else if (!argv.quiet)
    process.stdout.write(
      formatPlan(result) + (compared ? "\n\n" + formatBaselines(result, compared, fixedBatch) : "") + "\n",
    );
  // Without the printed plan, a placement realized otherwise than asked would pass unseen: say it on stderr.
  if (argv.json || argv.quiet)
    for (const note of result.notes) if (note.startsWith(REALIZED_DIFFERS)) process.stderr.write(`Warning: ${note}\n`);
  // The plan is printed (and written) either way; a policy that does not fit is a failure to the shell.
  if (!result.predicted.feasible)
    throw new PlanError(
      `the policy does not fit${result.engine && result.engine !== "spillway" ? ` in ${result.engine}` : ""}: ${result.predicted.infeasibleReasons.join("; ")}`,
    );
}

export const planCommand = defineCommand({
  ...commandHead("plan"),
  builder: (y) =>
    planOptions(y)
      .option("compare", {
        type: "boolean",
        default: false,
        describe:
          "also score the baselines users would otherwise pick (accelerate, deepspeed-zero, llama.cpp, flexgen) with the same cost model and each on its own engine's model",
      })
      .option("tensor-parallel", {
        type: "string",
        describe:
          "a cluster's GPUs per pipeline stage (tensor parallelism within a node; default: searched): 1 plans pipelines only, as engines without tensor parallelism run them",
      })
      .epilog(
        `${progressHelp("batch sizes searched; a scored policy has none", { delayed: true })}\n\n${EXIT_CODES_EPILOG}`,
      )
      .example("$0 plan", "OPT-175B on a T4 with the Spillway cost model")
      .example("$0 plan --compare", "beside ZeRO-Inference's and FlexGen's choices")
      .example("$0 plan --model opt-30b --cost-model flexgen --json", "FlexGen's own LP search")
      .example(
        "$0 plan --engine flexgen --model opt-30b --gbs 48 --nb 3 --percent 20 80 0 100 0 100 --cpu-attention",
        "what FlexGen itself will do with its own flags",
      )
      .example("$0 plan --engine llama.cpp --model llama-2-7b --gguf-type Q4_K_M", "a GGUF file in llama.cpp")
      .example("$0 plan --model opt-175b --hardware 4x1-t4-gcp --out p175.json", "a pipeline over four single-T4 nodes")
      .example("$0 plan --gbs 32 --nb 8 --percent 0 50 0 0 0 100 --cpu-attention", "score a given policy")
      .example(
        "$0 plan --model path/to/config.json --hardware rtx3090 --out plan.json",
        "a Hugging Face model on another GPU",
      ),
  handler: (argv) => runPlan(argv),
});
