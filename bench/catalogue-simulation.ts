/**
 * The simulator's bound in practice: plans every catalogue model on every shipped profile (the default
 * workload, prompt 512 and 32 generated tokens, Spillway's cost model) and simulates each plan the
 * planner emits: dense plans by the stream simulator, MoE plans by the expert-cache replay. Reports the
 * largest task count simulated, the largest task bound (core/simulation-budget.ts) against the budget,
 * and the peak heap: V8's used heap sampled every 10,000 tasks (no forced collection, so it includes
 * garbage not yet collected) and the process's peak resident memory.
 *
 * `BENCH_CATALOGUE=subset` limits it to a representative subset (OPT-1.3B, OPT-175B, Llama-2-70B and
 * Mixtral-8x7B on the T4, the RTX 4090 and the H100) when the full product is too slow.
 */
import { getHeapStatistics } from "node:v8";
import { resolveHardware, shippedProfileNames } from "../core/resolve-hardware.js";
import { MAX_SIMULATION_TASKS } from "../core/simulation-budget.js";
import { MODEL_CATALOGUE } from "../models/catalogue.js";
import { PlanError, planSync } from "../planner/plan.js";
import { simulate } from "../simulator/simulate.js";
import { simulateMoe } from "../simulator/simulate-moe.js";
import type { TraceSink } from "../simulator/trace-sink.js";

const SUBSET_MODELS = ["opt-1.3b", "opt-175b", "llama-2-70b", "mixtral-8x7b"];
const SUBSET_PROFILES = ["t4", "rtx4090", "h100"];
const SAMPLE_EVERY_TASKS = 10_000;

/** A trace sink that records nothing but samples the used heap as tasks finish. */
class HeapSampler implements TraceSink {
  events = 0;
  peakBytes = 0;
  private tasks = 0;
  task(): void {
    if (++this.tasks % SAMPLE_EVERY_TASKS === 0) this.sample();
  }
  slice(): void {}
  memory(): void {}
  describe(): void {}
  close(): void {
    this.sample();
  }
  abort(): void {}
  sample(): void {
    this.peakBytes = Math.max(this.peakBytes, getHeapStatistics().used_heap_size);
  }
}

/** Runs the section, printing a line per model as it goes (through `log`); returns the summary lines. */
export function benchCatalogueSimulation(
  log: (line: string) => void = () => {},
  subset = process.env.BENCH_CATALOGUE === "subset",
): string[] {
  const models = MODEL_CATALOGUE.filter((m) => !subset || SUBSET_MODELS.includes(m.name));
  const profiles = shippedProfileNames().filter((p) => !subset || SUBSET_PROFILES.includes(p));
  const workload = { promptLen: 512, genLen: 32 };
  const sampler = new HeapSampler();
  let simulated = 0;
  let noPlan = 0;
  const failures: string[] = [];
  let largest = { tasks: 0, bound: 0, what: "" };
  let slowest = { ms: 0, what: "" };
  const started = performance.now();
  for (const model of models) {
    for (const name of profiles) {
      const hardware = resolveHardware(name);
      const what = `${model.name} on ${name}`;
      let plan: ReturnType<typeof planSync>;
      try {
        plan = planSync({ model, hardware, workload });
      } catch (error) {
        if (!(error instanceof PlanError)) throw error;
        noPlan++;
        continue;
      }
      const start = performance.now();
      try {
        if (plan.policy.experts) {
          simulateMoe(plan, hardware);
          sampler.sample();
        } else {
          const r = simulate(plan, hardware, {
            schedule: plan.schedule,
            capacityBytes: plan.predicted.capacityBytes,
            trace: sampler,
          });
          if (r.events > largest.tasks)
            largest = {
              tasks: r.events,
              bound: r.budget?.taskBound ?? 0,
              what: `${what} (${plan.policy.gpuBatchSize}x${plan.policy.numGpuBatches})`,
            };
        }
        simulated++;
      } catch (error) {
        failures.push(`${what}: ${(error as Error).message}`);
      }
      const ms = performance.now() - start;
      if (ms > slowest.ms) slowest = { ms, what };
    }
    log(
      `${model.name}: done; so far ${simulated} simulated, largest ${largest.tasks} tasks, peak used heap ${(sampler.peakBytes / 2 ** 20).toFixed(0)} MiB`,
    );
  }
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  return [
    `${subset ? "subset" : "full product"}: ${models.length} models x ${profiles.length} profiles; ${simulated} plans simulated, ${noPlan} with no feasible plan, ${failures.length} failed, in ${((performance.now() - started) / 1000).toFixed(0)} s`,
    `largest simulation: ${largest.tasks} tasks, ${largest.what}; its bound ${largest.bound} of the budget ${MAX_SIMULATION_TASKS} (${((largest.bound / MAX_SIMULATION_TASKS) * 100).toFixed(1)}%)`,
    `slowest simulation: ${slowest.ms.toFixed(0)} ms (${slowest.what})`,
    `peak used heap (sampled every ${SAMPLE_EVERY_TASKS} tasks): ${mib(sampler.peakBytes)}   peak resident memory: ${mib(process.resourceUsage().maxRSS * 1024)}`,
    ...failures.map((f) => `FAILED ${f}`),
  ];
}
