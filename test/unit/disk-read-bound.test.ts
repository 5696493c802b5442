import assert from "node:assert/strict";
import test from "node:test";
import type { Policy } from "../../core/policy.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { loadLpSolvers } from "../../planner/lp/solve-linear-program.js";
import { planSync } from "../../planner/plan.js";
import { diskReadThroughputBound } from "../../planner/spillway/disk-read-bound.js";
import { evaluatePolicy } from "../../planner/spillway/evaluate-policy.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { searchSpillway } from "../../planner/spillway/spillway-search.js";
import { random as seededRandom } from "../helpers.js";

const opt175b = findCatalogueModel("opt-175b")!;
const t4 = resolveHardware("t4");
const rates = hardwareRates(t4);
const workload = { promptLen: 512, genLen: 32 };

test("the disk-read bound is above the exact throughput of every fitting policy it covers, under every schedule", () => {
  const random = seededRandom(17);
  let fitting = 0;
  let closest = 0;
  for (const compressCache of [false, true]) {
    const bound = diskReadThroughputBound(opt175b, rates, workload, { compressWeight: false, compressCache });
    assert.ok(Number.isFinite(bound) && bound > 0, `OPT-175B's fp16 weights overflow the T4's GPU and CPU: ${bound}`);
    for (let i = 0; i < 150; i++) {
      // Weights mostly on the CPU, KV mostly on disk: the placements that fit, and the fastest of them.
      const weights = { gpu: 0.03 * random(), cpu: 0.45 + 0.17 * random(), disk: 0 };
      const kvGpu = 0.05 * random();
      const kvCpu = random() * (1 - kvGpu);
      const policy: Policy = {
        gpuBatchSize: [1, 4, 16, 48, 96, 256][i % 6]!,
        numGpuBatches: 1 + Math.floor(random() * 12),
        weights: { ...weights, disk: 1 - weights.gpu - weights.cpu },
        cache: { gpu: kvGpu, cpu: kvCpu, disk: 1 - kvGpu - kvCpu },
        activations: [
          { gpu: 1, cpu: 0, disk: 0 },
          { gpu: 0, cpu: 1, disk: 0 },
        ][i % 2]!,
        compressWeight: false,
        compressCache,
        cpuAttention: random() < 0.5,
        overlap: i % 5 !== 0,
        pinWeight: i % 7 !== 0,
      };
      for (const schedule of ["spillway", "flexgen"] as const) {
        const prediction = evaluatePolicy(opt175b, rates, workload, policy, schedule);
        if (!prediction.feasible) continue;
        fitting++;
        closest = Math.max(closest, prediction.throughputTokensPerSecond / bound);
        assert.ok(
          prediction.throughputTokensPerSecond < bound,
          `${JSON.stringify(policy)} (${schedule}): ${prediction.throughputTokensPerSecond} token/s, bound ${bound}`,
        );
      }
    }
  }
  assert.ok(fitting >= 50, `enough fitting policies to mean something (${fitting})`);
  // The bound is no vacuous number: some fitting policies reach a sizeable part of it.
  assert.ok(closest > 0.25, `the closest policy reaches ${closest} of the bound`);
});

test("the disk-read bound gives nothing where the weights fit in GPU and CPU memory, or nothing is generated", () => {
  const opt30b = findCatalogueModel("opt-30b")!;
  assert.equal(
    diskReadThroughputBound(opt30b, rates, workload, { compressWeight: false, compressCache: false }),
    Infinity,
  );
  assert.equal(
    diskReadThroughputBound(opt175b, rates, workload, { compressWeight: true, compressCache: true }),
    Infinity,
    "OPT-175B's 4-bit weights fit in the T4's CPU memory",
  );
  assert.equal(
    diskReadThroughputBound(
      opt175b,
      rates,
      { promptLen: 512, genLen: 1 },
      { compressWeight: false, compressCache: true },
    ),
    Infinity,
  );
});

test("skipping the families the bound rules out changes no figure of the plan, and solves fewer LPs", async () => {
  const solvers = await loadLpSolvers();
  const input = { model: opt175b, rates, workload, schedule: "spillway" as const, solvers, maxBlock: 64 };
  const bounded = searchSpillway(input);
  const unbounded = searchSpillway({ ...input, useBounds: false });
  assert.ok(bounded.best && unbounded.best);
  assert.deepEqual(bounded.best, unbounded.best);
  assert.ok(bounded.lpSolves < unbounded.lpSolves, `${bounded.lpSolves} LPs, ${unbounded.lpSolves} without the bound`);
  assert.ok(bounded.exactEvaluations < unbounded.exactEvaluations);
  // A landscape observer sees every LP point: nothing is skipped for it.
  let points = 0;
  const observed = planSync(
    { model: opt175b, hardware: t4, workload, maxBlock: 64, onCandidate: () => points++ },
    solvers,
  );
  assert.equal(observed.search.lpSolves, unbounded.lpSolves);
  assert.ok(points > bounded.lpSolves);
});
