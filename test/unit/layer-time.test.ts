import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveHardware } from "../../core/resolve-hardware.js";
import type { ScheduleName } from "../../core/schedule-name.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { plan } from "../../planner/plan.js";
import { policyCostContext } from "../../planner/spillway/evaluate-policy.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { exactLayerTimeBounds, layerSeconds, layerTimeBounds } from "../../planner/spillway/layer-time.js";
import { simulate } from "../../simulator/simulate.js";

const t4 = resolveHardware("t4");
const opt175b = findCatalogueModel("opt-175b")!;
const workload = { promptLen: 512, genLen: 4 };

test("CPU attention over 4-bit weights and disk KV: the planner's decode matches the simulated schedule within 3%", async () => {
  // The README's quick-start policy (48 x 4, KV 2/81/17) and two more GPU-batch counts. Before the
  // round-trip bound the planner assumed CPU attention hid behind the GPU work: decode 27% optimistic.
  for (const [gbs, nb, percent] of [
    [48, 4, [0, 100, 2, 81, 0, 100]],
    [64, 3, [0, 92, 2, 86, 0, 100]],
    [32, 6, [0, 100, 0, 80, 0, 100]],
  ] as const) {
    const p = await plan({
      model: opt175b,
      hardware: t4,
      workload,
      fixed: { gbs, nb, percent, compressWeight: true, compressCache: true, cpuAttention: true },
    });
    assert.ok(p.predicted.feasible, `${gbs}x${nb}: ${p.predicted.infeasibleReasons.join("; ")}`);
    const simulated = simulate(p, t4, { schedule: "spillway", capacityBytes: p.predicted.capacityBytes });
    const error = simulated.decodeSeconds / p.predicted.decodeSeconds - 1;
    assert.ok(
      Math.abs(error) < 0.03,
      `${gbs}x${nb}: decode ${simulated.decodeSeconds.toFixed(2)} s simulated vs ${p.predicted.decodeSeconds.toFixed(2)} s planned`,
    );
  }
});

test("the CPU-attention round trip bounds the exact layer time only where its chain exists: decode, CPU attention, 4-bit weights, spillway schedule", () => {
  const rates = hardwareRates(t4);
  const base = {
    gpuBatchSize: 48,
    numGpuBatches: 4,
    weights: { gpu: 0, cpu: 1, disk: 0 },
    cache: { gpu: 0, cpu: 0.84, disk: 0.16 },
    activations: { gpu: 0, cpu: 1, disk: 0 },
    compressWeight: true,
    compressCache: true,
    cpuAttention: true,
    overlap: true,
    pinWeight: true,
  };
  const layer = (policy: typeof base, schedule: ScheduleName, phase: "prefill" | "decode") => {
    const c = policyCostContext(opt175b, rates, workload, policy, schedule);
    const costs = c.costModel.layer(phase, workload.promptLen + 1, c.terms);
    return {
      costs,
      lp: layerTimeBounds(costs, c.settings),
      bounds: exactLayerTimeBounds(costs, c.settings),
      values: c.values,
    };
  };
  const withChain = layer(base, "spillway", "decode");
  assert.ok(withChain.costs.cpuAttentionChain);
  const uncompressed = layer({ ...base, compressWeight: false }, "spillway", "decode");
  const gpuAttention = layer({ ...base, cpuAttention: false }, "spillway", "decode");
  assert.equal(gpuAttention.costs.cpuAttentionChain, undefined);
  assert.equal(layer(base, "spillway", "prefill").costs.cpuAttentionChain, undefined);
  assert.equal(withChain.bounds.length, uncompressed.bounds.length + 1);
  // Not an LP row: the LP's rows are affine in nb, the round trip is not.
  assert.equal(withChain.lp.length, uncompressed.lp.length);
  assert.equal(
    layer(base, "flexgen", "decode").bounds.length,
    layer({ ...base, compressWeight: false }, "flexgen", "decode").bounds.length,
  );
  // It binds here: the layer takes longer than every resource's busy time and every fill/drain chain.
  const { bounds, values, costs } = withChain;
  const others = layerSeconds(bounds.slice(0, -1), values);
  const roundTrip = bounds.at(-1)!.evaluate(values);
  assert.ok(roundTrip > others * 1.05, `round trip ${roundTrip} vs ${others}`);
  // Two CPU attentions and the disk reads of the last two batches, in series with one batch's GPU work
  // and the layer's dequantisation: more than any one of those resources alone does in a layer.
  const b = costs.batch.seconds;
  assert.ok(roundTrip > 4 * b.diskRead.evaluate(values));
  assert.ok(roundTrip > 4 * b.cpu.evaluate(values));
});

test("flexgen schedule: the hidden state loaded in its own step bounds only the exact layer time, and only below three GPU batches with activations off the GPU", () => {
  const rates = hardwareRates(t4);
  const opt30b = findCatalogueModel("opt-30b")!;
  const policy = (nb: number, activationsOnGpu: boolean) => ({
    gpuBatchSize: 8,
    numGpuBatches: nb,
    weights: { gpu: 0, cpu: 1, disk: 0 },
    cache: { gpu: 0, cpu: 1, disk: 0 },
    activations: activationsOnGpu ? { gpu: 1, cpu: 0, disk: 0 } : { gpu: 0, cpu: 1, disk: 0 },
    compressWeight: false,
    compressCache: false,
    cpuAttention: false,
    overlap: true,
    pinWeight: true,
  });
  const layer = (nb: number, activationsOnGpu: boolean, phase: "prefill" | "decode") => {
    const c = policyCostContext(opt30b, rates, workload, policy(nb, activationsOnGpu), "flexgen");
    const costs = c.costModel.layer(phase, workload.promptLen + 1, c.terms);
    const lp = layerTimeBounds(costs, c.settings);
    const exact = exactLayerTimeBounds(costs, c.settings);
    return { lp: layerSeconds(lp, c.values), exact: layerSeconds(exact, c.values), rows: [lp.length, exact.length] };
  };
  for (const phase of ["prefill", "decode"] as const) {
    const deferred = layer(2, false, phase);
    // The step computes after the next layer's weights and its own hidden state went up: longer than any lane.
    assert.ok(deferred.exact > deferred.lp * 1.05, `${phase}: ${deferred.exact} vs ${deferred.lp}`);
    for (const [nb, onGpu] of [
      [3, false],
      [2, true],
    ] as const) {
      const l = layer(nb, onGpu, phase);
      assert.equal(l.exact, l.lp, `${phase} nb ${nb}`);
      assert.equal(l.rows[0], l.rows[1]);
    }
  }
});
