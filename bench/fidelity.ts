/**
 * `npm run bench:fidelity`: predicted against measured on this machine. Measures a CPU-backend profile
 * (quick), writes synthetic OPT-125M weights, plans eight policies covering every tier and flag with that
 * profile, runs each for real, and prints each throughput error and the median. Goal: median |error| ≤
 * 10%, none above 25%. Plans overlap I/O with compute (the runtime's transfers run on worker threads);
 * each plan also runs under FlexGen's schedule and with overlap off, for the measured speed-ups.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findCatalogueModel } from "../models/catalogue.js";
import { plan } from "../planner/plan.js";
import { run } from "../runtime/run.js";
import { synthesizeOptWeights } from "../runtime/synth-weights.js";
import { CPU_BENCH_CASES as CASES } from "./cpu-bench-cases.js";
import { measuredCpuHardware } from "./measured-cpu-hardware.js";

const ROUNDS = 3;

function medianOf(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const work = mkdtempSync(join(tmpdir(), "spillway-fidelity-"));
try {
  const hardware = measuredCpuHardware();
  const weightsDir = join(work, "opt-125m");
  synthesizeOptWeights(findCatalogueModel("opt-125m")!, weightsDir, { seed: 0 });
  const model = { ...findCatalogueModel("opt-125m")! };
  const workload = { promptLen: 32, genLen: 8 };
  const errors: number[] = [];
  const speedups: { flexgen: number; serial: number }[] = [];
  console.log(
    `\n${"policy".padEnd(26)}${"predicted".padStart(12)}${"measured".padStart(12)}${"error".padStart(10)}${"flexgen".padStart(12)}${"no overlap".padStart(12)}   (token/s, median of ${ROUNDS} runs; OPT-125M, gbs 4 x nb 2, prompt 32, gen 8)`,
  );
  for (const c of CASES) {
    const p = await plan({ model, hardware, workload, fixed: { gbs: 4, nb: 2, ...c.fixed } });
    if (!p.predicted.feasible) {
      console.log(`${c.name.padEnd(26)} does not fit: ${p.predicted.infeasibleReasons.join("; ")}`);
      continue;
    }
    const options = { weightsDir, capacityBytes: p.predicted.capacityBytes, reference: false };
    // Three rounds, the variants interleaved, and the median of each: a shared machine's neighbours
    // move single runs by ±20%.
    const rounds: { spillway: number; flexgen: number; serial: number }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const spillwayRun = await run(p, hardware, options);
      const flexgenRun = await run(p, hardware, { ...options, schedule: "flexgen" });
      const serialRun = await run(p, hardware, { ...options, overlap: false });
      rounds.push({
        spillway: spillwayRun.throughputTokensPerSecond,
        flexgen: flexgenRun.throughputTokensPerSecond,
        serial: serialRun.throughputTokensPerSecond,
      });
    }
    const measured = medianOf(rounds.map((x) => x.spillway));
    const flexgen = medianOf(rounds.map((x) => x.flexgen));
    const serial = medianOf(rounds.map((x) => x.serial));
    const error = (measured - p.predicted.throughputTokensPerSecond) / p.predicted.throughputTokensPerSecond;
    errors.push(error);
    speedups.push({ flexgen: measured / flexgen, serial: measured / serial });
    const rate = (x: number) => x.toPrecision(4).padStart(12);
    console.log(
      `${c.name.padEnd(26)}${rate(p.predicted.throughputTokensPerSecond)}${rate(measured)}${`${error >= 0 ? "+" : ""}${(error * 100).toFixed(1)}%`.padStart(10)}${rate(flexgen)}${rate(serial)}`,
    );
  }
  const abs = errors.map(Math.abs);
  const median = abs.length ? medianOf(abs) : NaN;
  console.log(
    `\nmedian |error| ${(median * 100).toFixed(1)}% (goal 10%), largest ${(Math.max(...abs) * 100).toFixed(1)}% (goal 25%), over ${errors.length} plans`,
  );
  const geomean = (xs: number[]) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
  console.log(
    `spillway schedule vs flexgen schedule, measured on the same plans: ${geomean(speedups.map((x) => x.flexgen)).toFixed(2)}x (geometric mean; per plan ${speedups.map((x) => x.flexgen.toFixed(2)).join(", ")})`,
  );
  console.log(
    `overlap on vs off (spillway schedule): ${geomean(speedups.map((x) => x.serial)).toFixed(2)}x (per plan ${speedups.map((x) => x.serial.toFixed(2)).join(", ")})`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
