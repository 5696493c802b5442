/**
 * Synthetic measured runs for the calibration tests: a "hidden" T4 whose host->device bandwidth, GPU
 * GEMM rate and disk read rate differ from profiles/t4.json, and runs whose measured throughput is the
 * Spillway engine's prediction on that hidden machine. The policies vary what bounds a run (GPU
 * compute, GPU memory, the host->device link, the disk) so that every scaled rate moves some runs.
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import { loadShippedProfile } from "../core/resolve-hardware.js";
import { withFittedRates } from "../engines/calibrate.js";
import { type KernelRateName, resolveRates } from "../engines/kernel-rates.js";
import type { MeasuredRun } from "../engines/measured-runs.js";
import { parseRunFlags } from "../engines/run-flags.js";
import { predictRun } from "../engines/score-runs.js";
import { findCatalogueModel } from "../models/catalogue.js";

/** The rates the hidden machine scales, and by how much. */
export const HIDDEN_SCALE: ReadonlyMap<KernelRateName, number> = new Map<KernelRateName, number>([
  ["h2dPinnedBytesPerSecond", 0.6],
  ["gpuFlopsPerSecond", 0.7],
  ["diskReadBytesPerSecond", 0.8],
]);

/** model, flags, prompt_len, gen_len */
export const SYNTHETIC_CASES: readonly (readonly [string, string, number, number])[] = [
  ["opt-6.7b", "--gbs 8 --nb 1", 512, 32],
  ["opt-6.7b", "--gbs 32 --nb 1", 512, 8],
  ["opt-6.7b", "--gbs 2 --nb 1", 128, 128],
  ["opt-13b", "--gbs 16 --nb 2 --percent 50 50 100 0 100 0", 256, 32],
  ["opt-13b", "--gbs 32 --nb 4 --percent 0 100 100 0 100 0", 512, 32],
  ["opt-30b", "--gbs 48 --nb 3 --percent 20 80 0 100 0 100 --cpu-attention", 512, 32],
  ["opt-30b", "--gbs 16 --nb 8 --percent 0 100 0 100 100 0", 512, 32],
  ["opt-30b", "--gbs 4 --nb 1 --percent 30 70 100 0 100 0 --compress-weight", 256, 64],
  ["opt-66b", "--gbs 24 --nb 4 --percent 0 60 0 100 100 0 --cpu-attention", 512, 32],
  ["opt-66b", "--gbs 8 --nb 2 --percent 10 50 100 0 100 0 --no-overlap", 128, 32],
  ["opt-175b", "--gbs 32 --nb 8 --percent 0 50 0 0 100 0 --cpu-attention --compress-cache", 512, 32],
  ["opt-175b", "--gbs 64 --nb 2 --percent 0 0 100 0 100 0 --compress-weight", 256, 16],
];

export function t4(): HardwareProfile {
  return loadShippedProfile("t4");
}

/** profiles/t4.json with the HIDDEN_SCALE rates scaled (as fitted values, which the cost model prefers). */
export function hiddenT4(): HardwareProfile {
  const prior = t4();
  const rates = resolveRates(prior).rates;
  const scaled = new Map([...HIDDEN_SCALE].map(([name, factor]) => [name, rates[name] * factor]));
  return withFittedRates(prior, scaled, "test: the hidden machine");
}

/** The runs of `cases` as measured on `hidden`; each run's source is "FILE:LINE", line 2 onwards. */
export function syntheticRuns(
  hidden: HardwareProfile,
  file = "synthetic.csv",
  cases: typeof SYNTHETIC_CASES = SYNTHETIC_CASES,
): MeasuredRun[] {
  return cases.map(([name, flags, promptLen, genLen], i) => {
    const model = findCatalogueModel(name)!;
    const source = `${file}:${i + 2}`;
    const { policy, knobs } = parseRunFlags(flags, "spillway", file, `line ${i + 2}, flags`);
    const run: MeasuredRun = {
      engine: "spillway",
      model,
      workload: { promptLen, genLen },
      policy,
      knobs,
      measuredTokensPerSecond: 1,
      source,
    };
    return { ...run, measuredTokensPerSecond: predictRun(run, hidden).throughputTokensPerSecond };
  });
}

/** The runs as a runs CSV (header row, then one line per run). */
export function runsCsv(runs: readonly MeasuredRun[], flags: readonly string[]): string {
  return [
    "engine,model,flags,prompt_len,gen_len,tokens_per_second",
    ...runs.map(
      (r, i) =>
        `${r.engine},${r.model.name},${flags[i]},${r.workload.promptLen},${r.workload.genLen},${r.measuredTokensPerSecond}`,
    ),
  ].join("\n");
}
