/**
 * Planning is deterministic: a plan made while every core is busy equals the one made idle. The load
 * is busy worker threads in this process (at least one per core the OS offers), spinning on math for
 * as long as the plans take; the comparison ignores only `search.elapsedMs`, the one timing field.
 */
import assert from "node:assert/strict";
import { availableParallelism } from "node:os";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { llamaCppBaseline } from "../../planner/baselines.js";
import { loadLpSolvers } from "../../planner/lp/solve-linear-program.js";
import { plan } from "../../planner/plan.js";

const t4 = resolveHardware("t4");
const workload = { promptLen: 512, genLen: 32 };
const model = (name: string) => {
  const spec = findCatalogueModel(name);
  if (!spec) throw new Error(`${name} is not in the catalogue`);
  return spec;
};

/** The plans compared: each a few seconds at most on an idle core. */
const CASES: readonly { readonly name: string; readonly make: () => Promise<unknown> }[] = [
  {
    name: "OPT-175B on the T4 (the default plan)",
    make: () => plan({ model: model("opt-175b"), hardware: t4, workload }),
  },
  {
    name: "FlexGen's cost model",
    make: () => plan({ model: model("opt-175b"), hardware: t4, workload, costModel: "flexgen" }),
  },
  {
    name: "an MoE plan (Mixtral-8x7B on the RTX 3090, latency mode, 4-bit experts)",
    make: () =>
      plan({
        model: model("mixtral-8x7b"),
        hardware: resolveHardware("rtx3090"),
        workload,
        experts: { batchSize: 1, bits: 4 },
      }),
  },
  {
    name: "a fixed policy scored",
    make: () =>
      plan({
        model: model("opt-175b"),
        hardware: t4,
        workload,
        fixed: { gbs: 32, nb: 8, percent: [0, 50, 0, 0, 0, 100], cpuAttention: true },
      }),
  },
  {
    name: "the per-layer llama.cpp baseline",
    make: () => llamaCppBaseline({ model: model("opt-175b"), hardware: t4, workload }),
  },
];

/** A copy of `value` without any `search.elapsedMs`. */
function withoutElapsed(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutElapsed);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === "search" && v !== null && typeof v === "object") {
      const { elapsedMs: _elapsed, ...rest } = v as Record<string, unknown>;
      out[key] = rest;
    } else out[key] = withoutElapsed(v);
  }
  return out;
}

/** Spins on math until terminated, counting its rounds in `rounds[0]` so the test can see it ran. */
const SPINNER = `
const { workerData } = require("node:worker_threads");
const rounds = new Int32Array(workerData);
let x = 0;
for (;;) {
  for (let i = 1; i < 100000; i++) x += Math.sqrt(i) * Math.sin(x + i);
  Atomics.add(rounds, 0, 1);
}
`;

async function underLoad<T>(work: () => Promise<T>): Promise<{ result: T; rounds: number; threads: number }> {
  const threads = Math.max(2, availableParallelism());
  const rounds = new SharedArrayBuffer(4);
  const workers: Worker[] = [];
  try {
    for (let i = 0; i < threads; i++) workers.push(new Worker(SPINNER, { eval: true, workerData: rounds }));
    await Promise.all(
      workers.map(
        (w) =>
          new Promise((resolve, reject) => {
            w.once("online", resolve);
            w.once("error", reject);
          }),
      ),
    );
    const before = Atomics.load(new Int32Array(rounds), 0);
    const result = await work();
    return { result, rounds: Atomics.load(new Int32Array(rounds), 0) - before, threads };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

test("plans made with every core busy equal the plans made idle (all but search.elapsedMs)", {
  timeout: 600_000,
}, async () => {
  await loadLpSolvers();
  const planAll = async () => {
    const plans: unknown[] = [];
    for (const c of CASES) plans.push(withoutElapsed(await c.make()));
    return plans;
  };
  const idle = await planAll();
  const loaded = await underLoad(planAll);
  assert.ok(loaded.rounds > 0, `the ${loaded.threads} busy threads ran while the plans were made`);
  for (const [i, c] of CASES.entries()) assert.deepEqual(loaded.result[i], idle[i], c.name);
});
