/**
 * `npm run bench`: speed targets measured side by side in one run, printed as numbers and ratios.
 * - CLI startup against a yargs-only script (bench/startup.ts; target within 1.5x).
 * - FlexGen-compatible OPT-175B search (target: under 100 ms; FlexGen's own, CBC through PuLP, takes
 *   about 7 s for its 1,071 LPs on this class of machine), cold in a fresh CLI process and warm in-process.
 * - LP solves per second on the fast path and on the HiGHS fallback, on the same LPs.
 * - Spillway's own search for the default plan.
 * - The CPU backend's transfers on worker threads beside the compute, against inline (bench/overlap.ts).
 * - The quick CPU profile's rates and its GEMM curve (time per weight grows with the rows).
 * - The simulator's bound: every catalogue model x shipped profile planned and simulated, with the
 *   largest task count and the peak heap (bench/catalogue-simulation.ts).
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { effective } from "../core/hardware-profile.js";
import { resolveHardware } from "../core/resolve-hardware.js";
import { findCatalogueModel } from "../models/catalogue.js";
import { flexgenConstants } from "../planner/flexgen/flexgen-constants.js";
import { buildFlexgenLp } from "../planner/flexgen/flexgen-lp.js";
import { loadLpSolvers, solveLinearProgram } from "../planner/lp/solve-linear-program.js";
import { planSync } from "../planner/plan.js";
import { defaultCapacities, measureCpuBackend, profileFromSamples } from "../runtime/profile-cpu.js";
import { Engine, TaskFactory } from "../simulator/engine.js";
import { PlanCosts } from "../simulator/plan-costs.js";
import { ScheduleBuilder } from "../simulator/schedule-builder.js";
import { simulate } from "../simulator/simulate.js";
import { benchCatalogueSimulation } from "./catalogue-simulation.js";
import { benchKernels } from "./kernels.js";
import { benchOverlap } from "./overlap.js";
import { benchStartup } from "./startup.js";

const CLI = fileURLToPath(new URL("../cli/main.js", import.meta.url));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const FLEXGEN_REFERENCE_MS = 7000;

function coldCliSearchMs(args: string[]): { ms: number; lpSolves: number } {
  const r = spawnSync(process.execPath, [CLI, "plan", ...args, "--json"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(r.stderr);
  const plan = JSON.parse(r.stdout);
  return { ms: plan.search.elapsedMs, lpSolves: plan.search.lpSolves };
}

benchStartup();
console.log("");

const solvers = await loadLpSolvers();
const t4 = resolveHardware("t4");
const opt175b = findCatalogueModel("opt-175b")!;
const workload = { promptLen: 512, genLen: 32 };

console.log("FlexGen-compatible search, OPT-175B on the T4 (prompt 512, gen 32)");
const cold = [0, 1, 2].map(() => coldCliSearchMs(["--cost-model", "flexgen"]));
const warm: number[] = [];
for (let i = 0; i < 7; i++)
  warm.push(planSync({ model: opt175b, hardware: t4, workload, costModel: "flexgen" }).search.elapsedMs);
const coldMs = median(cold.map((c) => c.ms));
const warmMs = median(warm);
console.log(
  `  cold (fresh process, median of 3): ${coldMs.toFixed(1)} ms   warm (median of 7): ${warmMs.toFixed(1)} ms   target 100 ms`,
);
console.log(
  `  distinct LPs solved: ${cold[0]!.lpSolves}   speed-up over FlexGen's ~${FLEXGEN_REFERENCE_MS / 1000} s: ${(FLEXGEN_REFERENCE_MS / coldMs).toFixed(0)}x cold, ${(FLEXGEN_REFERENCE_MS / warmMs).toFixed(0)}x warm`,
);
const compressed = median(
  [0, 1, 2].map(
    () =>
      planSync({ model: opt175b, hardware: t4, workload, costModel: "flexgen", fixed: { compressWeight: true } }).search
        .elapsedMs,
  ),
);
console.log(`  with --compress-weight, warm: ${compressed.toFixed(1)} ms`);

console.log("\nLP solves per second on FlexGen's OPT-175B LPs (gbs 1, nb 1..400), same LPs for both solvers");
const constants = flexgenConstants(t4);
const dims = { l: 96, h1: 12288, h2: 49152, nh: 96, s: 512, n: 32 };
const capacities = {
  gpuBytes: t4.capacityBytes.gpu.value,
  cpuBytes: t4.capacityBytes.cpu.value,
  diskBytes: t4.capacityBytes.disk.value,
  alphaGpu: 0.8,
  alphaCpu: 0.8,
  alphaDisk: 0.8,
};
const lps = Array.from(
  { length: 400 },
  (_, i) => buildFlexgenLp({ dims, constants, capacities, gbs: 1, bls: i + 1, compressWeight: false }).lp,
);
const rate = (solver: "javascript-lp-solver" | "highs") => {
  for (const lp of lps.slice(0, 50)) solveLinearProgram(lp, solvers, { solver });
  const start = performance.now();
  for (const lp of lps) solveLinearProgram(lp, solvers, { solver });
  return lps.length / ((performance.now() - start) / 1000);
};
const fast = rate("javascript-lp-solver");
const fallback = rate("highs");
console.log(
  `  javascript-lp-solver: ${fast.toFixed(0)} LP/s   HiGHS: ${fallback.toFixed(0)} LP/s   ratio ${(fast / fallback).toFixed(1)}x`,
);

console.log("\nSpillway cost model search, default plan (OPT-175B on the T4)");
const spillwayCold = coldCliSearchMs([]);
const spillwayWarm = median([0, 1, 2].map(() => planSync({ model: opt175b, hardware: t4, workload }).search.elapsedMs));
console.log(
  `  cold: ${spillwayCold.ms.toFixed(0)} ms (${spillwayCold.lpSolves} LPs)   warm: ${spillwayWarm.toFixed(0)} ms`,
);

console.log(
  "\nSimulator: the default plan and FlexGen's 32x8 OPT-175B policy (--percent 0 50 0 0 0 100, CPU attention)",
);
const defaultPlan = planSync({ model: opt175b, hardware: t4, workload });
const flexgenPolicy = planSync({
  model: opt175b,
  hardware: t4,
  workload,
  fixed: { gbs: 32, nb: 8, percent: [0, 50, 0, 0, 0, 100], cpuAttention: true },
});
for (const [name, p] of [
  ["default plan", defaultPlan],
  ["FlexGen 32x8", flexgenPolicy],
] as const) {
  for (const schedule of ["spillway", "flexgen"] as const) {
    simulate(p, t4, { schedule, capacityBytes: p.predicted.capacityBytes });
    const times: number[] = [];
    let events = 0;
    let throughput = 0;
    for (let i = 0; i < 3; i++) {
      const start = performance.now();
      const r = simulate(p, t4, { schedule, capacityBytes: p.predicted.capacityBytes });
      times.push(performance.now() - start);
      events = r.events;
      throughput = r.throughputTokensPerSecond;
    }
    const ms = median(times);
    console.log(
      `  ${name.padEnd(13)} ${schedule.padEnd(9)} ${events} events in ${ms.toFixed(0)} ms = ${((events / ms) * 1000).toFixed(0)} events/s   simulated ${throughput.toPrecision(4)} token/s (planned ${p.predicted.throughputTokensPerSecond.toPrecision(4)})`,
    );
  }
}

console.log(
  "\nSimulator memory: live heap (after GC, sampled every 20,000 tasks) for 32 and 128 generated tokens, FlexGen 32x8",
);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) console.log("  (run with node --expose-gc to measure)");
else {
  const peaks: number[] = [];
  for (const genLen of [32, 128]) {
    const p = planSync({
      model: opt175b,
      hardware: t4,
      workload: { promptLen: 512, genLen },
      fixed: { gbs: 32, nb: 8, percent: [0, 50, 0, 0, 0, 100], cpuAttention: true },
    });
    const costs = new PlanCosts(p.modelSpec, t4, p.workload, p.policy, "spillway");
    let finished = 0;
    let peak = 0;
    let builder: ScheduleBuilder | undefined;
    gc();
    const base = process.memoryUsage().heapUsed;
    const engine = new Engine({
      onStart(task) {
        if (builder && task.token === builder.tokensGenerated - 1 && builder.tokensGenerated < costs.genLen)
          builder.generateNextToken();
      },
      onEnd() {
        if (++finished % 20000 === 0) {
          gc();
          peak = Math.max(peak, process.memoryUsage().heapUsed - base);
        }
      },
    });
    builder = new ScheduleBuilder(costs, "spillway", new TaskFactory(), engine);
    builder.generateNextToken();
    engine.run();
    peaks.push(peak);
    console.log(
      `  ${genLen} tokens: ${finished} tasks, live heap at most ${(peak / 2 ** 20).toFixed(1)} MiB above the start`,
    );
  }
  console.log(
    `  ratio 128 / 32 tokens: ${(peaks[1]! / Math.max(peaks[0]!, 1)).toFixed(2)} (the task count ratio is ~4)`,
  );
}

console.log(
  "\nSimulator bound: every catalogue model x shipped profile planned (prompt 512, gen 32) and its plan simulated",
);
for (const line of benchCatalogueSimulation((line) => console.log(`  ${line}`))) console.log(`  ${line}`);

console.log("\nCPU backend kernels (single thread)");
for (const line of await benchKernels()) console.log(`  ${line}`);

console.log(
  "\nCPU backend: transfers on worker threads beside the compute, and inline (a 3-layer OPT, KV cache in host memory)",
);
for (const line of await benchOverlap()) console.log(`  ${line}`);

console.log("\nCPU profile (spillway profile --backend cpu --quick)");
const cpuProfile = profileFromSamples(
  measureCpuBackend({ quick: true, gpuBytes: 2 ** 28 }),
  defaultCapacities(2 ** 28),
);
const curve = cpuProfile.gpu.matmulCurve!.samples;
console.log(
  `  fp16 matmul ${(effective(cpuProfile.gpu.fp16MatmulFlopsPerSecond) / 1e9).toFixed(2)} GFLOP/s   disk read ${(effective(cpuProfile.disk.readBytesPerSecond) / 2 ** 20).toFixed(0)} MiB/s   4-bit dequantisation ${(effective(cpuProfile.gpu.dequantizeValuesPerSecond!) / 1e6).toFixed(0)} M values/s`,
);
console.log(
  `  GEMM time per weight: ${curve.map((c) => `${c.rows} rows ${(c.secondsPerWeight * 1e9).toFixed(2)} ns`).join(", ")}`,
);
console.log(
  `  ratio ${curve[curve.length - 1]!.rows} rows / ${curve[0]!.rows} row: ${(curve[curve.length - 1]!.secondsPerWeight / curve[0]!.secondsPerWeight).toFixed(1)}x`,
);
