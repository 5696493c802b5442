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
 * Then, per policy, where the decode time goes: the cost model's terms (attention, router and the other
 * resident weights; experts computed on the device; experts computed on the CPU; stalls for expert
 * copies; the LM head) against the same terms measured in the median run's trace.
 *
 * `--model mixtral-tiny` (or qwen2-moe-tiny) runs the catalogue's tiny models instead of the default
 * bench model (4 layers, hidden 256, 8 experts of 512: big enough that the kernels, not the calls around
 * them, take the time).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HardwareProfile } from "../core/hardware-profile.js";
import type { ModelSpec } from "../core/model-spec.js";
import type { Plan } from "../core/plan.js";
import { findCatalogueModel } from "../models/catalogue.js";
import { expertCounts, hitDistribution, moeStepModel } from "../planner/moe/evaluate-moe-policy.js";
import type { FixedExperts } from "../planner/moe/moe-search.js";
import { routingProfileFromTrace } from "../planner/moe/profile-from-trace.js";
import type { RoutingProfile } from "../planner/moe/routing-profile.js";
import { plan } from "../planner/plan.js";
import { hardwareRates } from "../planner/spillway/hardware-rates.js";
import { executeMoePlan } from "../runtime/moe/run-moe-plan.js";
import { tinyMixtralSpec } from "../runtime/moe/synth-mixtral-weights.js";
import { synthesizeMoeWeights } from "../runtime/moe/synth-moe-weights.js";
import { synthesizePreGatedWeights } from "../runtime/moe/synth-pre-gated.js";
import { MemoryTraceSink } from "../simulator/memory-trace-sink.js";
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
  { name: "LRU 2, 4-bit", experts: { cacheSize: 2, eviction: "lru", compute: "gpu", bits: 4 } },
  { name: "LFU 4, 2-bit", experts: { cacheSize: 4, eviction: "lfu", compute: "gpu", bits: 2 } },
  { name: "LRU 2, 4-bit all", experts: { cacheSize: 2, eviction: "lru", compute: "gpu", bits: 4, attentionBits: 4 } },
];

/** Decode seconds by where they go (every decode step, all layers). */
interface DecodeTerms {
  nonExpert: number;
  gpuExperts: number;
  cpuExperts: number;
  stall: number;
  head: number;
  total: number;
}

function medianOf(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The cost model's decode terms for `planned` under `routing`, expected as evaluateMoePolicy expects them. */
function predictedDecodeTerms(planned: Plan, hardware: HardwareProfile, routing: RoutingProfile): DecodeTerms {
  const model = planned.modelSpec;
  const step = moeStepModel(model, hardwareRates(hardware), planned.workload, planned.policy);
  const B = planned.policy.gpuBatchSize * planned.policy.numGpuBatches;
  const counts = expertCounts(model, model.moe!, planned.policy.experts!, routing, B, "decode");
  const L = model.numLayers;
  const terms: DecodeTerms = { nonExpert: 0, gpuExperts: 0, cpuExperts: 0, stall: 0, head: 0, total: 0 };
  for (let i = 1; i < planned.workload.genLen; i++) {
    for (const { probability, counts: c } of hitDistribution(counts, true)) {
      const d = step.step("decode", planned.workload.promptLen + i, c);
      terms.nonExpert += L * probability * d.computeSeconds.nonExpert;
      terms.gpuExperts += L * probability * d.computeSeconds.gpuExperts;
      terms.cpuExperts += L * probability * d.computeSeconds.cpuExperts;
      terms.stall += L * probability * d.stallSeconds;
      terms.total += L * probability * d.wallSeconds;
    }
    terms.head += step.headSeconds;
    terms.total += step.headSeconds;
  }
  return terms;
}

/** The same terms measured: the run's trace slices of decode steps (token >= 1), and its decode stall. */
function measuredDecodeTerms(trace: MemoryTraceSink, stallSeconds: number, decodeSeconds: number): DecodeTerms {
  const terms: DecodeTerms = {
    nonExpert: 0,
    gpuExperts: 0,
    cpuExperts: 0,
    stall: stallSeconds,
    head: 0,
    total: decodeSeconds,
  };
  for (const e of trace.traceEvents) {
    if (e.ph !== "X" || !e.args || Number(e.args.token) < 1) continue;
    const seconds = (e.dur ?? 0) / 1e6;
    if (e.name === "compute") {
      if (Number(e.args.layer) < 0) terms.head += seconds;
      else terms.nonExpert += seconds;
    } else if (e.name === "expert") {
      if (e.cat === "cpu") terms.cpuExperts += seconds;
      else terms.gpuExperts += seconds;
    }
  }
  return terms;
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
const only = process.argv.indexOf("--only");
const cases = only > 0 ? CASES.filter((c) => c.name.includes(process.argv[only + 1] ?? "")) : CASES;
const workload = { promptLen: 16, genLen: 16 };
const work = mkdtempSync(join(tmpdir(), "spillway-moe-fidelity-"));
try {
  const hardware = measuredCpuHardware();
  const weightsDir = join(work, model.name);
  synthesizeMoeWeights(model, weightsDir, { seed: 0 });
  const preGatedDir = join(work, `${model.name}-pregated`);
  if (model.family === "mixtral" && cases.some((c) => c.experts.pregated))
    synthesizePreGatedWeights(model, preGatedDir, 0);
  const rate = (x: number) => x.toPrecision(4).padStart(11);
  const pct = (x: number) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`.padStart(9);
  const ms = (x: number) => (x * 1e3).toFixed(1).padStart(7);
  const errors = { plan: [] as number[], routed: [] as number[], simulated: [] as number[] };
  const rows: string[] = [];
  const termRows: string[] = [];
  for (const c of cases) {
    if (c.experts.pregated && model.family !== "mixtral") continue;
    const request = { model, hardware, workload, experts: { ...FP16_GPU_KV, ...c.experts } };
    const planned = await plan(request);
    const dir = c.experts.pregated ? preGatedDir : weightsDir;
    const options = { weightsDir: dir, capacityBytes: planned.predicted.capacityBytes, reference: false };
    // The first run records the routing the checkpoint produces; the plan is made again with its statistics.
    const first = await executeMoePlan(planned, hardware, options);
    const routing = routingProfileFromTrace(first.run.routing, "the routing this checkpoint produced");
    const routed = await plan({ ...request, routing });
    const simulated = simulateMoe(routed, hardware, { trace: first.run.routing, source: "recorded" });
    const runs = [];
    for (let round = 0; round < ROUNDS; round++) {
      const trace = new MemoryTraceSink();
      const { result, run } = await executeMoePlan(routed, hardware, { ...options, trace });
      runs.push({ result, run, trace });
    }
    runs.sort((a, b) => a.result.throughputTokensPerSecond - b.result.throughputTokensPerSecond);
    const median = runs[Math.floor(runs.length / 2)]!;
    const m = median.result.throughputTokensPerSecond;
    const err = (p: number) => (m - p) / p;
    errors.plan.push(err(planned.predicted.throughputTokensPerSecond));
    errors.routed.push(err(routed.predicted.throughputTokensPerSecond));
    errors.simulated.push(err(simulated.throughputTokensPerSecond));
    const hit = `${((routed.predicted.experts?.expectedHitRate ?? 0) * 100).toFixed(0)}% / ${(first.result.experts.hitRate * 100).toFixed(0)}%`;
    const stall = `${((routed.predicted.experts?.stallSecondsPerToken ?? 0) * (workload.genLen - 1) * 1e3).toFixed(1)} / ${(median.result.experts.stallSeconds * 1e3).toFixed(1)} ms`;
    rows.push(
      `${c.name.padEnd(22)}${rate(planned.predicted.throughputTokensPerSecond)}${pct(errors.plan.at(-1)!)}${rate(routed.predicted.throughputTokensPerSecond)}${pct(errors.routed.at(-1)!)}${rate(simulated.throughputTokensPerSecond)}${pct(errors.simulated.at(-1)!)}${rate(m)}  ${hit.padStart(21)}  ${stall.padStart(18)}`,
    );
    const p = predictedDecodeTerms(routed, hardware, routing);
    const t = median.run.timing;
    const q = measuredDecodeTerms(median.trace, t.stallSeconds, t.decodeSeconds);
    const pair = (a: number, b: number) => `${ms(a)} /${ms(b)}`;
    console.log(rows.at(-1));
    termRows.push(
      `${c.name.padEnd(22)}${pair(p.nonExpert, q.nonExpert)}${pair(p.gpuExperts, q.gpuExperts)}${pair(p.cpuExperts, q.cpuExperts)}${pair(p.stall, q.stall)}${pair(p.head, q.head)}${pair(p.total, q.total)}${pair(routed.predicted.prefillSeconds, t.prefillSeconds)}`,
    );
    console.log(`terms: ${termRows.at(-1)}`);
  }
  console.log(
    `\n${"policy".padEnd(22)}${"predicted".padStart(11)}${"err".padStart(9)}${"w/ routing".padStart(11)}${"err".padStart(9)}${"simulated".padStart(11)}${"err".padStart(9)}${"measured".padStart(11)}  hit rate (plan / run)  stall (plan / run)`,
  );
  for (const row of rows) console.log(row);
  const summary = (xs: number[]) => {
    const abs = xs.map(Math.abs);
    return `median |error| ${(medianOf(abs) * 100).toFixed(1)}%, largest ${(Math.max(...abs) * 100).toFixed(1)}%`;
  };
  console.log(
    `\n(token/s, median of ${ROUNDS} runs; ${model.name}, batch 4 unless said, prompt ${workload.promptLen}, gen ${workload.genLen}, fp16 unless said, KV on the device)`,
  );
  console.log(`plan, default routing statistics:   ${summary(errors.plan)}`);
  console.log(`plan, the run's routing statistics: ${summary(errors.routed)} (target 15%)`);
  console.log(`simulator, the run's routing:       ${summary(errors.simulated)}`);
  const head = (name: string) => name.padStart(16);
  console.log(
    `\nWhere decode time goes, ms over all ${workload.genLen - 1} decode steps (predicted with the run's routing / measured in the median run's trace):`,
  );
  console.log(
    `${"policy".padEnd(22)}${head("attn+router")}${head("device experts")}${head("CPU experts")}${head("expert stall")}${head("LM head")}${head("decode total")}${head("prefill")}`,
  );
  for (const row of termRows) console.log(row);
} finally {
  rmSync(work, { recursive: true, force: true });
}
