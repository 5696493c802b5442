/**
 * `node dist/bench/calibrate-cpu.js [DIR]` (by hand, not in CI): does calibrating a CPU-backend profile
 * to real runs reduce the leave-one-out error of `spillway compare`? Measures this machine's CPU-backend
 * profile (spillway profile --backend cpu --quick), writes synthetic OPT-125M weights, runs `compare`
 * (plan, simulate, run) for eight policies covering every tier and flag, the batch varied between them
 * (gbs 1, 2, 4, 8 in turn, so the runs' GEMMs have different rows), writes each comparison as `spillway
 * compare --json` does, reads them back as measured runs and calibrates the profile to them, printing
 * each fitted rate and the leave-one-out |error| before and after, for calibrate as it is and for the
 * variants without its prior term and without the GEMM curve among the fitted parameters (what each
 * part contributes). With a folder argument, the profile (cpu.json) and the comparisons (runs/*.json)
 * are written there and kept, for `spillway calibrate --engine spillway DIR/runs/*.json --hardware
 * DIR/cpu.json --out ...`; `--reuse DIR` calibrates a folder so written again without running anything.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseHardwareProfile } from "../core/hardware-profile.js";
import { type CalibrationOptions, calibrate, leaveOneOut } from "../engines/calibrate.js";
import { readMeasuredRuns } from "../engines/measured-runs.js";
import { findCatalogueModel } from "../models/catalogue.js";
import { compare } from "../runtime/compare.js";
import { synthesizeOptWeights } from "../runtime/synth-weights.js";
import { CPU_BENCH_CASES as CASES } from "./cpu-bench-cases.js";
import { measuredCpuHardware } from "./measured-cpu-hardware.js";

const pct = (x: number) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`;
/** The batch of case i: the runs' GEMMs see 1 to 8 rows in decode, 32 to 256 in prefill. */
const GBS = [1, 2, 4, 8];

/** Runs the cases into `out` (cpu.json, runs/*.json); returns the comparison files. */
async function collect(out: string, work: string): Promise<string[]> {
  const hardware = measuredCpuHardware();
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "cpu.json"), JSON.stringify(hardware, null, 2) + "\n");
  const model = findCatalogueModel("opt-125m")!;
  const weightsDir = join(work, "opt-125m");
  synthesizeOptWeights(model, weightsDir, { seed: 0 });
  const runsDir = join(out, "runs");
  mkdirSync(runsDir, { recursive: true });
  const files: string[] = [];
  console.log(`Running ${CASES.length} compare runs (OPT-125M, gbs ${GBS.join("/")} x nb 2, prompt 32, gen 8) ...`);
  for (const [i, c] of CASES.entries()) {
    const gbs = GBS[i % GBS.length]!;
    const { comparison } = await compare({
      model,
      hardware,
      workload: { promptLen: 32, genLen: 8 },
      fixed: { gbs, nb: 2, ...c.fixed },
      weightsDir,
    });
    const path = join(runsDir, `${i + 1}-${c.name.replace(/[^a-z0-9]+/gi, "-")}.json`);
    writeFileSync(path, JSON.stringify(comparison, null, 2) + "\n");
    files.push(path);
    console.log(
      `  ${`${c.name} (gbs ${gbs})`.padEnd(34)} predicted ${comparison.predicted.throughputTokensPerSecond.toPrecision(4).padStart(8)}  measured ${comparison.measured.throughputTokensPerSecond.toPrecision(4).padStart(8)} tokens/s  (${pct(comparison.relativeError.throughput)} measured vs predicted)`,
    );
  }
  return files;
}

const VARIANTS: { name: string; options: CalibrationOptions }[] = [
  { name: "scalar rates, no prior term", options: { priorWeight: 0, fitMatmulCurve: false } },
  { name: "scalar rates + GEMM curve, no prior term", options: { priorWeight: 0 } },
  { name: "scalar rates, prior term", options: { fitMatmulCurve: false } },
];

const reuse = process.argv[2] === "--reuse";
const keep = reuse ? process.argv[3] : process.argv[2];
if (reuse && !keep) throw new Error("--reuse needs the folder a previous run kept");
const work = mkdtempSync(join(tmpdir(), "spillway-calibrate-cpu-"));
try {
  const out = keep ?? work;
  const files =
    reuse && existsSync(join(out, "runs"))
      ? readdirSync(join(out, "runs"))
          .filter((f) => f.endsWith(".json"))
          .sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10))
          .map((f) => join(out, "runs", f))
      : await collect(out, work);
  const hardware = parseHardwareProfile(JSON.parse(readFileSync(join(out, "cpu.json"), "utf8")), "cpu.json");
  const runs = readMeasuredRuns(files);
  const { fit, leaveOneOut: loo } = calibrate(hardware, runs);
  console.log(`\nFitted to ${runs.length} runs (prior -> fitted):`);
  for (const r of fit.rates)
    console.log(
      `  ${r.label.padEnd(46)} ${r.prior.value.toPrecision(4).padStart(11)} -> ${r.fitted.toPrecision(4).padStart(11)}  x${(r.fitted / r.prior.value).toFixed(3)}${r.atBound ? " (at bound)" : ""}`,
    );
  for (const r of fit.unfitted) console.log(`  not fitted: ${r.label}: ${r.reason}`);
  console.log(
    `Sum of squared log errors: ${fit.sumSquaredLogErrorBefore.toPrecision(4)} -> ${fit.sumSquaredLogErrorAfter.toPrecision(4)} (prior term ${fit.priorTermAfter.toPrecision(4)})`,
  );
  console.log("\nLeave-one-out (each run predicted from rates fitted to the other runs), error predicted vs measured:");
  loo.runs.forEach((r) =>
    console.log(
      `  ${r.source.split("/").pop()!.padEnd(34)} ${pct(r.errorBefore).padStart(8)} -> ${pct(r.errorAfter).padStart(8)}`,
    ),
  );
  const median = (m: number) => `${(m * 100).toFixed(1)}%`;
  console.log(
    `median |error| before ${median(loo.medianAbsoluteErrorBefore)}, after ${median(loo.medianAbsoluteErrorAfter)} (calibrate as it is: scalar rates + GEMM curve, prior term)`,
  );
  for (const v of VARIANTS) {
    const other = leaveOneOut(hardware, runs, v.options);
    console.log(`  variant ${v.name.padEnd(42)} after ${median(other.medianAbsoluteErrorAfter)}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
