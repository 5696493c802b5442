/**
 * `npm run bench:fidelity`: predicted against measured on this machine. Measures a CPU-backend profile
 * (quick), writes synthetic OPT-125M weights, plans eight policies covering every tier and flag with that
 * profile, runs each for real, and prints each throughput error and the median. Goal: median |error| ≤
 * 10%, none above 25%. The runtime executes its schedule in order on one thread for now, so plans are
 * made with --no-overlap, and the spillway and flexgen schedules measure the same.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseHardwareProfile, withCapacities } from "../core/hardware-profile.js";
import { GIB } from "../core/units.js";
import { findCatalogueModel } from "../models/catalogue.js";
import { plan, type FixedPolicy } from "../planner/plan.js";
import { defaultCapacities, measureCpuBackend, profileFromSamples } from "../runtime/profile-cpu.js";
import { run } from "../runtime/run.js";
import { synthesizeOptWeights } from "../runtime/synth-weights.js";

const CASES: { name: string; fixed: FixedPolicy }[] = [
  { name: "all on device", fixed: { percent: [100, 0, 100, 0, 100, 0] } },
  { name: "weights on host", fixed: { percent: [0, 100, 100, 0, 100, 0] } },
  { name: "weights on disk", fixed: { percent: [0, 0, 100, 0, 100, 0] } },
  { name: "KV on host", fixed: { percent: [100, 0, 0, 100, 100, 0] } },
  { name: "weights and KV on disk", fixed: { percent: [0, 0, 0, 0, 100, 0] } },
  { name: "CPU attention", fixed: { percent: [100, 0, 0, 100, 100, 0], cpuAttention: true } },
  { name: "activations on host", fixed: { percent: [100, 0, 100, 0, 0, 100] } },
  { name: "4-bit weights and KV", fixed: { percent: [50, 50, 50, 50, 100, 0], compressWeight: true, compressCache: true } },
];

const work = mkdtempSync(join(tmpdir(), "spillway-fidelity-"));
try {
  console.log("Measuring this machine (spillway profile --backend cpu --quick) ...");
  const samples = measureCpuBackend({ quick: true, gpuBytes: 0.5 * GIB });
  const profile = parseHardwareProfile(JSON.parse(JSON.stringify(profileFromSamples(samples, defaultCapacities(0.5 * GIB)))), "measured profile");
  const hardware = withCapacities(profile, { gpu: 0.5 * GIB });
  const weightsDir = join(work, "opt-125m");
  synthesizeOptWeights(findCatalogueModel("opt-125m")!, weightsDir, { seed: 0 });
  const model = { ...findCatalogueModel("opt-125m")! };
  const workload = { promptLen: 32, genLen: 8 };
  const errors: number[] = [];
  console.log(`\n${"policy".padEnd(26)}${"predicted".padStart(12)}${"measured".padStart(12)}${"error".padStart(10)}   (token/s, OPT-125M, gbs 4 x nb 2, prompt 32, gen 8)`);
  for (const c of CASES) {
    const p = await plan({ model, hardware, workload, fixed: { gbs: 4, nb: 2, overlap: false, ...c.fixed } });
    if (!p.predicted.feasible) {
      console.log(`${c.name.padEnd(26)} does not fit: ${p.predicted.infeasibleReasons.join("; ")}`);
      continue;
    }
    const r = await run(p, hardware, { weightsDir, capacityBytes: p.predicted.capacityBytes, reference: false });
    const error = r.relativeError!;
    errors.push(error);
    console.log(`${c.name.padEnd(26)}${p.predicted.throughputTokensPerSecond.toPrecision(4).padStart(12)}${r.throughputTokensPerSecond.toPrecision(4).padStart(12)}${`${error >= 0 ? "+" : ""}${(error * 100).toFixed(1)}%`.padStart(10)}`);
  }
  const abs = errors.map(Math.abs).sort((a, b) => a - b);
  const median = abs.length ? (abs.length % 2 ? abs[(abs.length - 1) / 2]! : (abs[abs.length / 2 - 1]! + abs[abs.length / 2]!) / 2) : NaN;
  console.log(`\nmedian |error| ${(median * 100).toFixed(1)}% (goal 10%), largest ${(Math.max(...abs) * 100).toFixed(1)}% (goal 25%), over ${errors.length} plans`);
  console.log("spillway vs flexgen schedule, measured: 1.00x (the CPU runtime does not overlap yet, so both execute the same order)");
} finally {
  rmSync(work, { recursive: true, force: true });
}
