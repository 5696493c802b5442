/**
 * `npm run bench:moe-fidelity`: MoE plans predicted against measured on this machine's CPU backend.
 * Measures a CPU-backend profile (quick), writes a seeded Mixtral-layout checkpoint, and for each expert
 * policy (every eviction, GPU / CPU / auto misses, speculative and pre-gated prefetch) plans it, runs it
 * for real (ROUNDS times, the median), and prints:
 * - the plan's prediction with the default routing statistics (the synthetic, Mixtral-calibrated trace),
 * - the plan's prediction with the routing statistics of the run itself (as `plan --routing` would
 *   have it: the routing the checkpoint really produces, recorded by the first run),
 * - the simulator's replay of that recorded routing (counts exact, times from the cost model),
 * - the measured throughput, and the error of each against it; the median |error| (target <= 15%).
 *
 * `--model mixtral-tiny` (or qwen2-moe-tiny) runs the catalogue's tiny models instead of the default
 * bench model (4 layers, hidden 256, 8 experts of 512: big enough that the kernels, not the calls around
 * them, take the time).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ModelSpec } from "../core/model-spec.js";
import { GIB } from "../core/units.js";
import { findCatalogueModel } from "../models/catalogue.js";
import type { FixedExperts } from "../planner/moe/moe-search.js";
import { routingProfileFromTrace } from "../planner/moe/profile-from-trace.js";
import { plan } from "../planner/plan.js";
import { executeMoePlan } from "../runtime/moe/run-moe-plan.js";
import { tinyMixtralSpec } from "../runtime/moe/synth-mixtral-weights.js";
import { synthesizeMoeWeights } from "../runtime/moe/synth-moe-weights.js";
import { simulateMoe } from "../simulator/simulate-moe.js";
import { measuredCpuHardware } from "./measured-cpu-hardware.js";

const ROUNDS = 3;
const FP16_GPU_KV: FixedExperts = { bits: 16, attentionBits: 16, cacheOnCpu: false, batchSize: 4, prefetchExperts: 0 };
const CASES: { name: string; experts: FixedExperts }[] = [
  { name: "LRU 2, fetch misses", experts: { cacheSize: 2, eviction: "lru", compute: "gpu" } },
  { name: "LFU 4, fetch misses", experts: { cacheSize: 4, eviction: "lfu", compute: "gpu" } },
  { name: "LRU 6, fetch misses", experts: { cacheSize: 6, eviction: "lru", compute: "gpu" } },
  { name: "static 2, CPU misses", experts: { cacheSize: 2, eviction: "static", compute: "cpu" } },
  { name: "LRU 0, auto misses", experts: { cacheSize: 0, eviction: "lru", compute: "auto", cpuThresholdTokens: 1 } },
  { name: "LRU 2, speculative 2", experts: { cacheSize: 2, eviction: "lru", compute: "gpu", prefetchExperts: 2 } },
  { name: "LFU 2, pre-gated", experts: { cacheSize: 2, eviction: "lfu", compute: "gpu", pregated: true } },
  { name: "LRU 2, batch 1", experts: { cacheSize: 2, eviction: "lru", compute: "gpu", batchSize: 1 } },
];

function medianOf(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const modelFlag = process.argv.indexOf("--model");
const model: ModelSpec =
  modelFlag > 0
    ? findCatalogueModel(process.argv[modelFlag + 1] ?? "")!
    : {
        ...tinyMixtralSpec({ hiddenSize: 256, expertFfnSize: 512, numHeads: 8, numKvHeads: 4, vocabSize: 512 }),
        name: "mixtral-bench",
      };
if (!model?.moe) throw new Error("--model: expected mixtral-tiny or qwen2-moe-tiny");
const workload = { promptLen: 16, genLen: 16 };
const work = mkdtempSync(join(tmpdir(), "spillway-moe-fidelity-"));
try {
  const hardware = measuredCpuHardware();
  const weightsDir = join(work, model.name);
  synthesizeMoeWeights(model, weightsDir, { seed: 0 });
  const rate = (x: number) => x.toPrecision(4).padStart(11);
  const pct = (x: number) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`.padStart(9);
  console.log(
    `\n${"policy".padEnd(22)}${"predicted".padStart(11)}${"err".padStart(9)}${"w/ routing".padStart(11)}${"err".padStart(9)}${"simulated".padStart(11)}${"err".padStart(9)}${"measured".padStart(11)}  hit rate (plan / run)  stall (plan / run)`,
  );
  const errors = { plan: [] as number[], routed: [] as number[], simulated: [] as number[] };
  for (const c of CASES) {
    const request = { model, hardware, workload, experts: { ...FP16_GPU_KV, ...c.experts } };
    const planned = await plan(request);
    const options = { weightsDir, capacityBytes: planned.predicted.capacityBytes, reference: false };
    // The first run records the routing the checkpoint produces; the plan is made again with its statistics.
    const first = await executeMoePlan(planned, hardware, options);
    const routing = routingProfileFromTrace(first.run.routing, "the routing this checkpoint produced");
    const routed = await plan({ ...request, routing });
    const simulated = simulateMoe(routed, hardware, { trace: first.run.routing, source: "recorded" });
    const measured: number[] = [];
    const stalls: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const { result } = await executeMoePlan(routed, hardware, options);
      measured.push(result.throughputTokensPerSecond);
      stalls.push(result.experts.stallSeconds);
    }
    const m = medianOf(measured);
    const err = (p: number) => (m - p) / p;
    errors.plan.push(err(planned.predicted.throughputTokensPerSecond));
    errors.routed.push(err(routed.predicted.throughputTokensPerSecond));
    errors.simulated.push(err(simulated.throughputTokensPerSecond));
    const hit = `${((routed.predicted.experts?.expectedHitRate ?? 0) * 100).toFixed(0)}% / ${(first.result.experts.hitRate * 100).toFixed(0)}%`;
    const stall = `${((routed.predicted.experts?.stallSecondsPerToken ?? 0) * (workload.genLen - 1) * 1e3).toFixed(1)} / ${(medianOf(stalls) * 1e3).toFixed(1)} ms`;
    console.log(
      `${c.name.padEnd(22)}${rate(planned.predicted.throughputTokensPerSecond)}${pct(errors.plan.at(-1)!)}${rate(routed.predicted.throughputTokensPerSecond)}${pct(errors.routed.at(-1)!)}${rate(simulated.throughputTokensPerSecond)}${pct(errors.simulated.at(-1)!)}${rate(m)}  ${hit.padStart(21)}  ${stall.padStart(18)}`,
    );
  }
  const summary = (xs: number[]) => {
    const abs = xs.map(Math.abs);
    return `median |error| ${(medianOf(abs) * 100).toFixed(1)}%, largest ${(Math.max(...abs) * 100).toFixed(1)}%`;
  };
  console.log(
    `\n(token/s, median of ${ROUNDS} runs; ${model.name}, batch 4 unless said, prompt ${workload.promptLen}, gen ${workload.genLen}, fp16, KV on the device)`,
  );
  console.log(`plan, default routing statistics:   ${summary(errors.plan)}`);
  console.log(`plan, the run's routing statistics: ${summary(errors.routed)} (target 15%)`);
  console.log(`simulator, the run's routing:       ${summary(errors.simulated)}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
