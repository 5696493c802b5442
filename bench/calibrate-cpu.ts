/**
 * `node dist/bench/calibrate-cpu.js` (by hand, not in CI): does calibrating a CPU-backend profile to real
 * runs reduce the leave-one-out error of `spillway compare`? Measures this machine's CPU-backend profile
 * (spillway profile --backend cpu --quick), writes synthetic OPT-125M weights, runs `compare` (plan,
 * simulate, run) for eight policies covering every tier and flag, writes each comparison as
 * `spillway compare --json` does, reads them back as measured runs and calibrates the profile to them,
 * printing each fitted rate and the leave-one-out |error| before and after. With a folder argument, the
 * profile (cpu.json) and the comparisons (runs/*.json) are written there and kept, for
 * `spillway calibrate --engine spillway DIR/runs/*.json --hardware DIR/cpu.json --out ...`.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GIB } from "../core/units.js";
import { calibrate } from "../engines/calibrate.js";
import { readMeasuredRuns } from "../engines/measured-runs.js";
import { findCatalogueModel } from "../models/catalogue.js";
import { compare } from "../runtime/compare.js";
import { synthesizeOptWeights } from "../runtime/synth-weights.js";
import { CPU_BENCH_CASES as CASES } from "./cpu-bench-cases.js";
import { measuredCpuHardware } from "./measured-cpu-hardware.js";

const pct = (x: number) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`;

const keep = process.argv[2];
const work = mkdtempSync(join(tmpdir(), "spillway-calibrate-cpu-"));
try {
  const hardware = measuredCpuHardware();
  const out = keep ?? work;
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "cpu.json"), JSON.stringify(hardware, null, 2) + "\n");
  const model = findCatalogueModel("opt-125m")!;
  const weightsDir = join(work, "opt-125m");
  synthesizeOptWeights(model, weightsDir, { seed: 0 });
  const runsDir = join(out, "runs");
  mkdirSync(runsDir, { recursive: true });
  const files: string[] = [];
  console.log(`Running ${CASES.length} compare runs (OPT-125M, gbs 4 x nb 2, prompt 32, gen 8) ...`);
  for (const [i, c] of CASES.entries()) {
    const { comparison } = await compare({
      model,
      hardware,
      workload: { promptLen: 32, genLen: 8 },
      fixed: { gbs: 4, nb: 2, ...c.fixed },
      weightsDir,
    });
    const path = join(runsDir, `${i + 1}-${c.name.replace(/[^a-z0-9]+/gi, "-")}.json`);
    writeFileSync(path, JSON.stringify(comparison, null, 2) + "\n");
    files.push(path);
    console.log(
      `  ${c.name.padEnd(26)} predicted ${comparison.predicted.throughputTokensPerSecond.toPrecision(4).padStart(8)}  measured ${comparison.measured.throughputTokensPerSecond.toPrecision(4).padStart(8)} tokens/s  (${pct(comparison.relativeError.throughput)} measured vs predicted)`,
    );
  }
  const runs = readMeasuredRuns(files);
  const { fit, leaveOneOut } = calibrate(hardware, runs);
  console.log("\nFitted rates (prior -> fitted):");
  for (const r of fit.rates)
    console.log(
      `  ${r.label.padEnd(34)} ${r.prior.value.toPrecision(4).padStart(11)} -> ${r.fitted.toPrecision(4).padStart(11)}  x${(r.fitted / r.prior.value).toFixed(3)}${r.atBound ? " (at bound)" : ""}`,
    );
  for (const r of fit.unfitted) console.log(`  not fitted: ${r.label}: ${r.reason}`);
  console.log(
    `Sum of squared log errors: ${fit.sumSquaredLogErrorBefore.toPrecision(4)} -> ${fit.sumSquaredLogErrorAfter.toPrecision(4)}`,
  );
  console.log("\nLeave-one-out (each run predicted from rates fitted to the other runs), error predicted vs measured:");
  leaveOneOut.runs.forEach((r, i) =>
    console.log(`  ${CASES[i]!.name.padEnd(26)} ${pct(r.errorBefore).padStart(8)} -> ${pct(r.errorAfter).padStart(8)}`),
  );
  console.log(
    `median |error| before ${(leaveOneOut.medianAbsoluteErrorBefore * 100).toFixed(1)}%, after ${(leaveOneOut.medianAbsoluteErrorAfter * 100).toFixed(1)}%`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
