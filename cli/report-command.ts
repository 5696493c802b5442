/**
 * `spillway report [inputs..] --out DIR`: charts and an HTML page for a plan, traces and a comparison,
 * or, with no inputs, for the default plan (planned, simulated, swept and compared here).
 */

import { existsSync, mkdirSync, rmdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { checkOutputFolder } from "../core/check-output-folder.js";
import type { HardwareProfile } from "../core/hardware-profile.js";
import { InputError } from "../core/input-error.js";
import type { Plan } from "../core/plan.js";
import { planHardware } from "../core/plan-hardware.js";
import { counted } from "../core/plural.js";
import { resolveHardware } from "../core/resolve-hardware.js";
import { ENGINE_NAMES, type EngineName } from "../engines/engine-names.js";
import { resolveModel } from "../models/resolve-model.js";
import { plan } from "../planner/plan.js";
import { buildReport } from "../reports/build-report.js";
import { checkReportInputsMatch } from "../reports/check-report-inputs.js";
import { type ReportInput, readReportInput } from "../reports/read-report-input.js";
import { commandHead } from "./command-heads.js";
import { defineCommand } from "./command-module.js";
import { withProgress } from "./command-progress.js";
import { EXIT_CODES_EPILOG, QUICK_PHASE_DELAY_SECONDS } from "./terminal.js";

export interface ReportArgs {
  readonly inputs?: readonly string[];
  readonly out: string;
  readonly hardware?: string;
  /** The engines the engines chart shows (default: all). */
  readonly engine?: readonly EngineName[];
  readonly quiet: boolean;
  readonly json: boolean;
}

/** The defaults of `spillway plan`. */
export const DEFAULT_REPORT_PLAN = { model: "opt-175b", hardware: "t4", promptLen: 512, genLen: 32 } as const;

/**
 * The output folder, checked before any work: an existing folder, or one that can be made (made and
 * removed again here, with any parent made for it, so that a failed or interrupted report leaves nothing;
 * buildReport makes it when it writes). Never a file or a link.
 */
function checkOutDir(out: string): void {
  if (checkOutputFolder(out, "the report is written into")) return;
  // One level at a time: Node's recursive mkdir spins forever where the kernel refuses with ENOENT
  // under an existing parent (/proc).
  const missing: string[] = [];
  for (let folder = resolve(out); !existsSync(folder); folder = dirname(folder)) {
    missing.unshift(folder);
    if (dirname(folder) === folder) break;
  }
  const made: string[] = [];
  try {
    for (const folder of missing) {
      mkdirSync(folder);
      made.push(folder);
    }
  } catch (error) {
    throw new InputError(out, undefined, `cannot make the report folder: ${(error as Error).message}`);
  } finally {
    // Only the empty folders made here; one something else has filled meanwhile is left alone.
    for (const folder of made.reverse()) {
      try {
        rmdirSync(folder);
      } catch {
        break;
      }
    }
  }
}

export async function runReport(argv: ReportArgs): Promise<void> {
  const progress = (message: string) => {
    if (!argv.quiet && !argv.json) process.stderr.write(`report: ${message}\n`);
  };
  const inputs: ReportInput[] = (argv.inputs ?? []).map((path) => readReportInput(String(path)));
  const plans = inputs.filter((i) => i.kind === "plan");
  const comparisons = inputs.filter((i) => i.kind === "comparison");
  const sweeps = inputs.filter((i) => i.kind === "sweep");
  if (sweeps.length > 1)
    throw new InputError(
      sweeps[1]!.path,
      undefined,
      `a second sweep (the first is ${sweeps[0]!.path}); give one sweep per report`,
    );
  if (plans.length > 1)
    throw new InputError(
      plans[1]!.path,
      undefined,
      `a second plan (the first is ${plans[0]!.path}); give one plan per report`,
    );
  if (comparisons.length > 1)
    throw new InputError(
      comparisons[1]!.path,
      undefined,
      `a second comparison (the first is ${comparisons[0]!.path}); give one comparison per report`,
    );
  checkReportInputsMatch(inputs);
  // The inputs are read (a bad one leaves nothing behind); the folder is checked before any long work.
  checkOutDir(argv.out);
  const traces = inputs.flatMap((i) => (i.kind === "trace" ? [i.trace] : []));
  const comparison = comparisons[0]?.kind === "comparison" ? comparisons[0].comparison : undefined;

  let reportPlan: Plan | undefined;
  const hardwareName = argv.hardware ?? DEFAULT_REPORT_PLAN.hardware;
  let hardware: HardwareProfile | undefined;
  const given = plans[0];
  if (given?.kind === "plan") {
    reportPlan = given.plan;
    const chosen = planHardware(reportPlan, given.path, argv.hardware);
    if (chosen.overrideNote) progress(chosen.overrideNote);
    hardware = chosen.profile;
  } else if (inputs.length === 0) {
    progress(
      `planning ${DEFAULT_REPORT_PLAN.model} on ${hardwareName} (prompt ${DEFAULT_REPORT_PLAN.promptLen}, ${DEFAULT_REPORT_PLAN.genLen} generated)`,
    );
    // The search's own progress, as `spillway plan` shows it; none with --quiet or --json.
    reportPlan = await withProgress(
      { quiet: argv.quiet || argv.json, delaySeconds: QUICK_PHASE_DELAY_SECONDS },
      (onProgress) =>
        plan({
          model: resolveModel(DEFAULT_REPORT_PLAN.model),
          hardware: resolveHardware(hardwareName),
          workload: { promptLen: DEFAULT_REPORT_PLAN.promptLen, genLen: DEFAULT_REPORT_PLAN.genLen },
          onProgress,
        }),
    );
  }
  const summary = await buildReport({
    ...(reportPlan ? { plan: reportPlan } : {}),
    traces,
    ...(comparison ? { comparison } : {}),
    ...(sweeps[0]?.kind === "sweep" ? { sweep: sweeps[0].sweep } : {}),
    hardware: hardware ?? resolveHardware(hardwareName),
    ...(argv.engine && argv.engine.length > 0 ? { engines: argv.engine } : {}),
    outDir: argv.out,
    onProgress: progress,
  });
  if (argv.json) {
    process.stdout.write(
      JSON.stringify(
        {
          outDir: summary.outDir,
          index: summary.index,
          title: summary.title,
          summary: summary.summary,
          charts: summary.charts,
          notes: summary.notes,
        },
        null,
        2,
      ) + "\n",
    );
  } else if (!argv.quiet) {
    process.stdout.write(
      `Wrote ${counted(summary.charts.length, "chart")} (SVG, PNG, Vega-Lite spec) and ${summary.index}\n${summary.notes.map((n) => `note: ${n}\n`).join("")}`,
    );
  }
}

export const reportCommand = defineCommand({
  ...commandHead("report"),
  builder: (y) =>
    y
      .positional("inputs", {
        type: "string",
        array: true,
        describe:
          "plan JSON (plan --out), trace files (simulate/run --trace), a comparison (compare --json), a sweep (sweep --out FILE.csv|.json); none: the default plan",
      })
      .option("out", {
        type: "string",
        demandOption: true,
        describe: "folder to write the charts and index.html into (made if missing)",
      })
      .option("hardware", { type: "string", describe: "profile name or path (default: the plan's, or t4)" })
      .option("engine", {
        choices: ENGINE_NAMES,
        array: true,
        describe:
          "engines the engines chart predicts the plan's policy on (repeat or list, after the inputs; default: every engine)",
      })
      .option("quiet", {
        type: "boolean",
        default: false,
        describe: "no progress lines on stderr and no text but errors (--json still prints)",
      })
      .option("json", { type: "boolean", default: false, describe: "print a JSON summary of the files written" })
      .epilog(
        `Progress goes to stderr, never stdout: a line as each part begins ("report: frontier 3/9 (max block 16)", "report: rendering 2/10 (memory)"), and the default plan's search as \`spillway plan\` shows it; none with --quiet or --json.\n\n${EXIT_CODES_EPILOG}`,
      )
      .example(
        "$0 report --out report",
        "OPT-175B on a T4: placement, search landscape, frontier, baselines, the policy on each engine, simulated timeline and memory",
      )
      .example(
        "$0 plan --model opt-30b --out p.json && $0 simulate p.json --trace t.json && $0 report p.json t.json --out r",
        "a plan and its simulated trace",
      )
      .example(
        "$0 report p.json --engine spillway flexgen --out r",
        "the engines chart shows only Spillway's runtime and FlexGen",
      )
      .example("$0 sweep --model opt-6.7b --price 1.2 --out s.csv && $0 report s.csv --out r", "a sweep's charts")
      .example(
        "$0 report run-trace.json compare.json --out r --json",
        "a measured run's trace and a comparison (compare --json)",
      ),
  handler: (argv) => runReport(argv),
});
