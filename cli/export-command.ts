/**
 * `spillway export PLAN.json --to flexgen|llama.cpp|accelerate|deepspeed|vllm [--json] [--out FILE]`:
 * the plan as another engine's configuration. The command reads the plan file (and, when the export
 * needs it, the plan's hardware profile); the exporters take objects. Bad input throws InputError (the
 * CLI prints it and exits 2).
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import { InputError } from "../core/input-error.js";
import { readPlanFile } from "../core/parse-plan.js";
import type { Plan } from "../core/plan.js";
import { planHardware } from "../core/plan-hardware.js";
import { checkOutputPath, writeFileAtomic } from "../core/write-file-atomic.js";
import { EXPORT_TARGETS, type ExportResult, exportPlan, isExportTarget } from "../exporters/export-plan.js";
import { commandHead } from "./command-heads.js";
import { defineCommand } from "./command-module.js";
import { EXIT_CODES_EPILOG } from "./terminal.js";

export interface ExportArgs {
  readonly plan: string;
  readonly to: string;
  readonly json?: boolean | undefined;
  readonly out?: string | undefined;
  readonly quiet?: boolean | undefined;
  readonly hardware?: string | undefined;
}

export function runExport(argv: ExportArgs): ExportResult {
  if (Array.isArray(argv.to)) throw new InputError("--to", undefined, "given more than once; expected one target");
  if (!isExportTarget(argv.to))
    throw new InputError(
      "--to",
      undefined,
      `expected one of ${EXPORT_TARGETS.join(", ")}, got ${JSON.stringify(argv.to)}`,
    );
  if (Array.isArray(argv.out)) throw new InputError("--out", undefined, "given more than once; expected one file");
  if (argv.out !== undefined) checkOutputPath(argv.out);
  const plan = readPlanFile(String(argv.plan));
  const hardware = profileFor(plan, String(argv.plan), argv.hardware, argv.quiet === true);
  const result = exportPlan(plan, argv.to, hardware ? { hardware } : {});
  if (argv.out !== undefined)
    writeFileAtomic(argv.out, argv.json ? JSON.stringify(result, null, 2) + "\n" : result.text);
  else process.stdout.write(argv.json ? JSON.stringify(result, null, 2) + "\n" : result.text);
  if (argv.out !== undefined && !argv.quiet) for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
  return result;
}

/**
 * The profile the export predicts on (and recomputes llama.cpp MoE advice with): `--hardware`, else the
 * profile the plan carries, else a shipped profile it names; none when a plan names a file (never opened).
 */
function profileFor(plan: Plan, source: string, flag: string | undefined, quiet: boolean): HardwareProfile | undefined {
  try {
    const { profile, overrideNote } = planHardware(plan, source, flag);
    if (overrideNote && !quiet) process.stderr.write(`note: ${overrideNote}\n`);
    return profile;
  } catch (error) {
    if (flag === undefined && error instanceof InputError && error.field === "hardwareProfile") return undefined;
    throw error;
  }
}

export const exportCommand = defineCommand({
  ...commandHead("export"),
  builder: (e) =>
    e
      .positional("plan", { type: "string", demandOption: true, describe: "a plan file (spillway plan --out p.json)" })
      .option("to", { choices: EXPORT_TARGETS, demandOption: true, describe: "the engine to export for" })
      .option("hardware", {
        type: "string",
        describe:
          "profile to predict the target engine's throughput on (default: the plan's, when it is a shipped profile)",
      })
      .option("json", {
        type: "boolean",
        default: false,
        describe: "print { target, text, warnings, predicted } as JSON",
      })
      .option("out", { type: "string", describe: "write the export to this file (atomically) instead of printing it" })
      .option("quiet", {
        type: "boolean",
        default: false,
        describe: "with --out, no warnings on stderr (they stay in the file's header)",
      })
      .epilog(EXIT_CODES_EPILOG)
      .example("$0 plan --out p.json && $0 export p.json --to flexgen", "FlexGen's command line for the default plan")
      .example("$0 export p.json --to accelerate --out device_map.json", "an Accelerate device_map"),
  handler: (argv) => {
    runExport(argv);
  },
});
