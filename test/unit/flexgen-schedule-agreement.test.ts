import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { plan } from "../../planner/plan.js";
import { simulate } from "../../simulator/simulate.js";

/**
 * Under FlexGen's per-step synchronisation a step waits for every chain that runs inside it, not only
 * for each resource's busy time: a KV read from disk before its copy up, a hidden state loaded in its
 * own step (activations off the GPU, two GPU batches) behind the step's other copies, a CPU-attention
 * output going up behind the next layer's weights. Before the planner's flexgen bounds held these chains
 * the simulated phases below were 11% to 25% slower than planned (at this workload: 512 + 8 tokens).
 */
const TOLERANCE = 0.03;

const cases = [
  // prefill +21.0% (26.76 s simulated vs 22.11 s planned): the hidden state waits behind the next layer's weights and the KV.
  {
    model: "opt-30b",
    hardware: "t4",
    fixed: {
      gbs: 8,
      nb: 2,
      percent: [10, 90, 0, 100, 0, 100],
      compressWeight: false,
      compressCache: false,
      cpuAttention: false,
    },
  },
  // decode +24.5% (19.45 s vs 15.62 s): each step reads disk KV, then copies it up.
  {
    model: "opt-13b",
    hardware: "rtx3060",
    fixed: {
      gbs: 64,
      nb: 8,
      percent: [0, 100, 8, 84, 100, 0],
      compressWeight: true,
      compressCache: true,
      cpuAttention: false,
    },
  },
  // decode +11.0% (19.22 s vs 17.32 s): the first step's attention output goes up behind the next layer's weights.
  {
    model: "opt-30b",
    hardware: "t4",
    fixed: {
      gbs: 128,
      nb: 2,
      percent: [0, 100, 2, 98, 100, 0],
      compressWeight: true,
      compressCache: false,
      cpuAttention: true,
    },
  },
] as const;

for (const c of cases) {
  test(`flexgen schedule, ${c.model} on ${c.hardware} ${c.fixed.gbs}x${c.fixed.nb}: the planner's prefill and decode are the simulator's within ${TOLERANCE * 100}%`, async () => {
    const hardware = resolveHardware(c.hardware);
    const p = await plan({
      model: findCatalogueModel(c.model)!,
      hardware,
      workload: { promptLen: 512, genLen: 8 },
      schedule: "flexgen",
      fixed: { ...c.fixed, percent: [...c.fixed.percent] },
    });
    assert.ok(p.predicted.feasible, p.predicted.infeasibleReasons.join("; "));
    const simulated = simulate(p, hardware, { schedule: "flexgen", capacityBytes: p.predicted.capacityBytes });
    for (const phase of ["prefill", "decode"] as const) {
      const planned = p.predicted[`${phase}Seconds`];
      const replayed = simulated[`${phase}Seconds`];
      assert.ok(
        Math.abs(replayed / planned - 1) < TOLERANCE,
        `${phase}: ${replayed.toFixed(2)} s simulated vs ${planned.toFixed(2)} s planned`,
      );
    }
  });
}
