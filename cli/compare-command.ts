/** `spillway compare`: plan, simulate and run side by side (the library's compare()), predicted against measured. */
import { PlanError } from "../planner/plan.js";
import { compare } from "../runtime/compare.js";
import { defineCommand } from "./command-module.js";
import { formatComparison } from "./format-comparison.js";
import { type PlanArgs, planOptions, planRequestFromArgs } from "./plan-options.js";
import { EXIT_CODES_EPILOG } from "./terminal.js";

export interface CompareArgs extends PlanArgs {
  readonly weights: string;
  readonly backend: "cpu" | "cuda";
  readonly "offload-dir"?: string | undefined;
}

export async function runCompare(argv: CompareArgs): Promise<void> {
  const { request } = planRequestFromArgs(argv);
  const { comparison } = await compare({
    ...request,
    weightsDir: argv.weights,
    backend: argv.backend,
    ...(argv["offload-dir"] ? { offloadDir: argv["offload-dir"] } : {}),
  });
  if (argv.json) process.stdout.write(JSON.stringify(comparison, null, 2) + "\n");
  else if (!argv.quiet) process.stdout.write(formatComparison(comparison) + "\n");
  if (comparison.matchesReference === false)
    throw new PlanError("the generated tokens differ from the all-on-device reference");
}

export const compareCommand = defineCommand({
  command: "compare",
  describe: "plan, simulate and run side by side: predicted against measured",
  builder: (y) =>
    planOptions(y)
      .option("weights", {
        type: "string",
        demandOption: true,
        describe: "folder with config.json and safetensors weights",
      })
      .option("backend", {
        choices: ["cpu", "cuda"] as const,
        default: "cpu" as const,
        describe: "where to run: the CPU backend, or a GPU through the CUDA addon",
      })
      .option("offload-dir", { type: "string", describe: "parent folder for offload files" })
      .epilog(EXIT_CODES_EPILOG)
      .example(
        "$0 compare --model w --weights w --hardware cpu.json --prompt-len 32 --gen-len 8 --gpu-mem 0.05 --gbs 4 --nb 2 --percent 0 100 0 100 100 0",
        "weights on the host",
      ),
  handler: (argv) => runCompare(argv),
});
