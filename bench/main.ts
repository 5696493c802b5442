import { effective } from "../core/hardware-profile.js";
import { resolveHardware } from "../core/resolve-hardware.js";
import { findCatalogueModel } from "../models/catalogue.js";
import { loadLpSolvers } from "../planner/lp/solve-linear-program.js";
import { planSync } from "../planner/plan.js";
import { defaultCapacities, measureCpuBackend, profileFromSamples } from "../runtime/profile-cpu.js";
import { Engine, TaskFactory } from "../simulator/engine.js";
import { PlanCosts } from "../simulator/plan-costs.js";
import { ScheduleBuilder } from "../simulator/schedule-builder.js";
import { simulate } from "../simulator/simulate.js";
import { runBenchCase } from "./bench-case.js";
import { benchCatalogueSimulation } from "./catalogue-simulation.js";
import { benchKernels } from "./kernels.js";
import { benchOverlap } from "./overlap.js";
import { benchSearchSpeed, median } from "./search-speed.js";
import { benchSetupTime } from "./setup-time.js";
import { benchStartup } from "./startup.js";

// The simulator sections plan synchronously, with the solvers loaded here.
await loadLpSolvers();
const t4 = resolveHardware("t4");
const opt175b = findCatalogueModel("opt-175b")!;
const workload = { promptLen: 512, genLen: 32 };

await runBenchCase("CLI startup", benchStartup);
console.log("");

await benchSearchSpeed();

console.log(
  "\nSimulator: the default plan and FlexGen's 32x8 OPT-175B policy (--percent 0 50 0 0 0 100, CPU attention)",
);
await runBenchCase("Simulator", () => {
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
});

console.log(
  "\nSimulator memory: live heap (after GC, sampled every 20,000 tasks) for 32 and 128 generated tokens, FlexGen 32x8",
);
await runBenchCase("Simulator memory", () => {
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
});

console.log(
  "\nSimulator bound: every catalogue model x shipped profile planned (prompt 512, gen 32) and its plan simulated",
);
await runBenchCase("Simulator bound", () => {
  for (const line of benchCatalogueSimulation((line) => console.log(`  ${line}`))) console.log(`  ${line}`);
});

console.log("\nCPU backend kernels (single thread)");
await runBenchCase("CPU backend kernels", async () => {
  for (const line of await benchKernels()) console.log(`  ${line}`);
});

console.log(
  "\nCPU backend: transfers on worker threads beside the compute, and inline (a 3-layer OPT, KV cache in host memory)",
);
await runBenchCase("CPU backend overlap", async () => {
  for (const line of await benchOverlap()) console.log(`  ${line}`);
});

console.log("\nRun setup: placing a synthetic opt-125m checkpoint before the first layer computes (one thread)");
await runBenchCase("Run setup", () => benchSetupTime("opt-125m"));

console.log("\nCPU profile (spillway profile --backend cpu --quick)");
await runBenchCase("CPU profile", () => {
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
});
