/**
 * `spillway report [inputs..] --out DIR`: charts and an HTML page for a plan, traces and a comparison,
 * or, with no inputs, for the default plan (planned, simulated, swept and compared here).
 */
import { resolveHardware } from "../core/resolve-hardware.js";
import { InputError } from "../core/input-error.js";
import { withCapacities } from "../core/hardware-profile.js";
import { resolveModel } from "../models/resolve-model.js";
import { type FixedPolicy, plan } from "../planner/plan.js";
import { type Policy, toFlexgenPercent } from "../core/policy.js";
import { buildReport, type ReportPlan } from "../reports/build-report.js";
import { readReportInput, type ReportInput } from "../reports/read-report-input.js";
import { defineCommand } from "./command-module.js";
import { EXIT_CODES_EPILOG } from "./terminal.js";

export interface ReportArgs {
  readonly inputs?: readonly string[];
  readonly out: string;
  readonly hardware?: string;
  readonly quiet: boolean;
  readonly json: boolean;
}

/** The defaults of `spillway plan`. */
export const DEFAULT_REPORT_PLAN = { model: "opt-175b", hardware: "t4", promptLen: 512, genLen: 32 } as const;

export async function runReport(argv: ReportArgs): Promise<void> {
  const progress = (message: string) => {
    if (!argv.quiet && !argv.json) process.stderr.write(`report: ${message}\n`);
  };
  const inputs: ReportInput[] = (argv.inputs ?? []).map((path) => readReportInput(String(path)));
  const plans = inputs.filter((i) => i.kind === "plan");
  const comparisons = inputs.filter((i) => i.kind === "comparison");
  if (plans.length > 1) throw new InputError(plans[1]!.path, undefined, `a second plan (the first is ${plans[0]!.path}); give one plan per report`);
  if (comparisons.length > 1) throw new InputError(comparisons[1]!.path, undefined, `a second comparison (the first is ${comparisons[0]!.path}); give one comparison per report`);
  const traces = inputs.flatMap((i) => (i.kind === "trace" ? [i.trace] : []));
  const comparison = comparisons[0]?.kind === "comparison" ? comparisons[0].comparison : undefined;

  let reportPlan: ReportPlan | undefined;
  let hardwareName = argv.hardware ?? DEFAULT_REPORT_PLAN.hardware;
  const given = plans[0];
  if (given?.kind === "plan") {
    const f = given.plan;
    hardwareName = argv.hardware ?? f.hardwareSource ?? f.hardware;
    let predicted = f.planned ? { ...f.planned, ...(f.capacityBytes ? { capacityBytes: f.capacityBytes } : {}), ...(given.bottleneck ? { bottleneck: given.bottleneck } : {}) } : undefined;
    if (!predicted) {
      progress("scoring the plan's policy");
      const base = resolveHardware(hardwareName);
      const scored = await plan({ model: f.modelSpec, hardware: f.capacityBytes ? withCapacities(base, f.capacityBytes, "plan") : base, workload: f.workload, schedule: f.schedule ?? "spillway", fixed: fixedOf(f.policy) });
      predicted = scored.predicted;
    }
    reportPlan = {
      model: f.modelSpec.name, hardware: f.hardware, ...(given.costModel ? { costModel: given.costModel } : {}), schedule: f.schedule ?? "spillway",
      modelSpec: f.modelSpec, workload: f.workload, policy: f.policy, predicted,
    };
  } else if (inputs.length === 0) {
    progress(`planning ${DEFAULT_REPORT_PLAN.model} on ${hardwareName} (prompt ${DEFAULT_REPORT_PLAN.promptLen}, ${DEFAULT_REPORT_PLAN.genLen} generated)`);
    reportPlan = await plan({ model: resolveModel(DEFAULT_REPORT_PLAN.model), hardware: resolveHardware(hardwareName), workload: { promptLen: DEFAULT_REPORT_PLAN.promptLen, genLen: DEFAULT_REPORT_PLAN.genLen } });
  }
  const summary = await buildReport({
    ...(reportPlan ? { plan: reportPlan } : {}), traces, ...(comparison ? { comparison } : {}),
    hardware: resolveHardware(hardwareName), outDir: argv.out, onProgress: progress,
  });
  if (argv.json) {
    process.stdout.write(JSON.stringify({ outDir: summary.outDir, index: summary.index, title: summary.title, summary: summary.summary, charts: summary.charts, notes: summary.notes }, null, 2) + "\n");
  } else if (!argv.quiet) {
    process.stdout.write(`Wrote ${summary.charts.length} charts (SVG, PNG, Vega-Lite spec) and ${summary.index}\n${summary.notes.map((n) => `note: ${n}\n`).join("")}`);
  }
}

function fixedOf(p: Policy): FixedPolicy {
  return {
    gbs: p.gpuBatchSize, nb: p.numGpuBatches, percent: toFlexgenPercent(p),
    compressWeight: p.compressWeight, compressCache: p.compressCache, cpuAttention: p.cpuAttention, overlap: p.overlap, pinWeight: p.pinWeight,
  };
}

export const reportCommand = defineCommand({
  command: "report [inputs..]",
  describe: "charts (SVG, PNG, Vega-Lite) and an HTML page for a plan, traces and a comparison; with no inputs, for the default plan",
  builder: (y) =>
    y.positional("inputs", { type: "string", array: true, describe: "plan JSON (plan --out), trace files (simulate/run --trace), a comparison (compare --json); none: the default plan" })
      .option("out", { type: "string", demandOption: true, describe: "folder to write the charts and index.html into (made if missing)" })
      .option("hardware", { type: "string", describe: "profile name or path (default: the plan's, or t4)" })
      .option("quiet", { type: "boolean", default: false, describe: "no progress lines on stderr and no text but errors (--json still prints)" })
      .option("json", { type: "boolean", default: false, describe: "print a JSON summary of the files written" })
      .epilog(EXIT_CODES_EPILOG)
      .example("$0 report --out report", "OPT-175B on a T4: placement, search landscape, frontier, baselines, simulated timeline and memory")
      .example("$0 plan --model opt-30b --out p.json && $0 simulate p.json --trace t.json && $0 report p.json t.json --out r", "a plan and its simulated trace")
      .example("$0 report run-trace.json compare.json --out r --json", "a measured run's trace and a comparison (compare --json)"),
  handler: (argv) => runReport(argv),
});
