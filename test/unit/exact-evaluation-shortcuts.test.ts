import assert from "node:assert/strict";
import { test } from "node:test";
import type { ModelSpec } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import { realizedPolicy, realizePlacement } from "../../core/realize-placement.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import type { Prediction } from "../../planner/prediction.js";
import { evaluatePolicy, stagedEvaluation } from "../../planner/spillway/evaluate-policy.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { LayerCostCache } from "../../planner/spillway/layer-cost-cache.js";
import { repairPolicy, shiftCache, shiftWeights } from "../../planner/spillway/spillway-search.js";
import { random } from "../helpers.js";

test("exact evaluations sharing a layer-cost memo give, to the last bit, what each gives alone", () => {
  const model = findCatalogueModel("opt-30b")!;
  const rates = hardwareRates(resolveHardware("t4"));
  const workload = { promptLen: 128, genLen: 8 };
  const base: Policy = {
    gpuBatchSize: 16,
    numGpuBatches: 4,
    weights: { gpu: 0.2, cpu: 0.8, disk: 0 },
    cache: { gpu: 0.25, cpu: 0.5, disk: 0.25 },
    activations: { gpu: 0, cpu: 1, disk: 0 },
    compressWeight: false,
    compressCache: false,
    cpuAttention: true,
    overlap: true,
    pinWeight: true,
  };
  // Policies that share layer costs (same gbs and flags, other placements or nb) and some that do not.
  const policies: Policy[] = [
    base,
    { ...base, weights: { gpu: 0, cpu: 0.5, disk: 0.5 }, numGpuBatches: 7 },
    { ...base, cache: { gpu: 1, cpu: 0, disk: 0 } },
    { ...base, cpuAttention: false },
    { ...base, gpuBatchSize: 32, compressCache: true },
    { ...base, overlap: false },
    { ...base, activations: { gpu: 1, cpu: 0, disk: 0 } },
    base,
  ];
  for (const schedule of ["spillway", "flexgen"] as const) {
    const cache = new LayerCostCache();
    for (const [i, policy] of policies.entries())
      assert.deepEqual(
        evaluatePolicy(model, rates, workload, policy, schedule, cache),
        evaluatePolicy(model, rates, workload, policy, schedule),
        `${schedule} policy ${i}`,
      );
  }
});

test("shiftWeights finds the amount the 0.005-step scan finds (its binary search relies on monotonicity)", () => {
  const rand = random(3);
  for (const name of ["opt-30b", "opt-175b", "llama-2-7b"]) {
    const model = findCatalogueModel(name)!;
    for (let trial = 0; trial < 60; trial++) {
      const a = rand();
      const b = rand() * (1 - a);
      const policy: Policy = {
        gpuBatchSize: 8,
        numGpuBatches: 2,
        weights: { gpu: a, cpu: b, disk: 1 - a - b },
        cache: { gpu: 0, cpu: 1, disk: 0 },
        activations: { gpu: 0, cpu: 1, disk: 0 },
        compressWeight: trial % 2 === 0,
        compressCache: false,
        cpuAttention: false,
        overlap: true,
        pinWeight: true,
      };
      for (const [from, to] of [
        ["gpu", "cpu"],
        ["cpu", "disk"],
      ] as const) {
        // The scan as it was: the first 0.005 step that moves a whole tensor off `from`.
        const before = realizePlacement(model, policy).weights[from];
        let scanned: Policy | undefined;
        if (before > 0)
          for (let amount = 0.005; amount <= before + 0.005; amount += 0.005) {
            const moved = Math.min(amount, policy.weights[from]);
            const candidate = {
              ...policy,
              weights: { ...policy.weights, [from]: policy.weights[from] - moved, [to]: policy.weights[to] + moved },
            };
            if (realizePlacement(model, candidate).weights[from] < before - 1e-12) {
              scanned = realizedPolicy(model, candidate);
              break;
            }
          }
        assert.deepEqual(shiftWeights(model, policy, from, to), scanned, `${name} trial ${trial} ${from}->${to}`);
      }
    }
  }
});

/** The repair as it was before staged evaluations: every move's time costed, the highest score taken. */
function repairCostingEveryMove(
  model: ModelSpec,
  policy: Policy,
  evaluate: (p: Policy) => Prediction,
): { policy: Policy; prediction: Prediction; evaluations: number } {
  let current = realizedPolicy(model, policy);
  let prediction = evaluate(current);
  let evaluations = 1;
  const overflow = (c: Prediction) =>
    Math.max(0, c.peakBytes.gpu - c.capacityBytes.gpu) + Math.max(0, c.peakBytes.cpu - c.capacityBytes.cpu);
  const score = (c: Prediction) => (c.feasible ? 1e30 : 0) + c.throughputTokensPerSecond / Math.max(1, overflow(c));
  for (let i = 0; i < 400 && !prediction.feasible; i++) {
    const [from, to] =
      prediction.peakBytes.gpu > prediction.capacityBytes.gpu ? (["gpu", "cpu"] as const) : (["cpu", "disk"] as const);
    const moves = [shiftWeights(model, current, from, to), shiftCache(current, from, to)];
    if (current.activations[from] > 0) moves.push({ ...current, activations: { gpu: 0, cpu: 0, disk: 0, [to]: 1 } });
    let best: { policy: Policy; prediction: Prediction } | undefined;
    for (const move of moves) {
      if (!move) continue;
      const candidate = evaluate(move);
      evaluations++;
      if (!best || score(candidate) > score(best.prediction)) best = { policy: move, prediction: candidate };
    }
    if (!best) break;
    current = best.policy;
    prediction = best.prediction;
  }
  return { policy: current, prediction, evaluations };
}

test("repairPolicy costs a move's time only where it can matter, and repairs as costing every move does", () => {
  const rand = random(11);
  const workload = { promptLen: 64, genLen: 4 };
  let evaluated = 0;
  let timed = 0;
  for (const [name, hardware] of [
    ["opt-30b", "t4"],
    ["opt-175b", "t4"],
    ["llama-2-7b", "rtx3060"],
  ] as const) {
    const model = findCatalogueModel(name)!;
    const rates = hardwareRates(resolveHardware(hardware));
    for (let trial = 0; trial < 8; trial++) {
      const wg = rand();
      const cg = rand();
      const policy: Policy = {
        gpuBatchSize: [4, 16, 64][trial % 3]!,
        numGpuBatches: 1 + Math.floor(rand() * 8),
        weights: { gpu: wg, cpu: 1 - wg, disk: 0 },
        cache: { gpu: cg, cpu: 1 - cg, disk: 0 },
        activations: trial % 2 === 0 ? { gpu: 1, cpu: 0, disk: 0 } : { gpu: 0, cpu: 1, disk: 0 },
        compressWeight: trial % 4 === 1,
        compressCache: trial % 4 === 2,
        cpuAttention: trial % 3 === 0,
        overlap: true,
        pinWeight: true,
      };
      const staged = repairPolicy(model, policy, (p) => {
        const evaluation = stagedEvaluation(model, rates, workload, p);
        evaluated++;
        let counted = false;
        return {
          ...evaluation,
          prediction: () => {
            if (!counted) timed++;
            counted = true;
            return evaluation.prediction();
          },
        };
      });
      const eager = repairCostingEveryMove(model, policy, (p) => evaluatePolicy(model, rates, workload, p));
      const where = `${name} on ${hardware}, trial ${trial}`;
      assert.deepEqual(staged.policy, eager.policy, where);
      assert.deepEqual(staged.evaluation.prediction(), eager.prediction, where);
      assert.equal(staged.evaluations, eager.evaluations, where);
    }
  }
  // The staged repairs costed the time of fewer policies than they evaluated.
  assert.ok(timed < evaluated, `${timed} timed of ${evaluated}`);
});
