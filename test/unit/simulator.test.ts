import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { plan } from "../../planner/plan.js";
import { spillwayStrategy } from "../../schedule/strategies/spillway.js";
import { Engine, TaskFactory } from "../../simulator/engine.js";
import { ScheduleBuilder } from "../../simulator/schedule-builder.js";
import { type BatchCosts, NO_TRANSFER, type ScheduleCostSource } from "../../simulator/schedule-costs.js";
import { simulate, simulateSchedule } from "../../simulator/simulate.js";
import type { Task } from "../../simulator/task.js";
import { random, runCli } from "../helpers.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-sim-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const t4 = resolveHardware("t4");
const capacity = { gpu: 15 * 2 ** 30, cpu: 200 * 2 ** 30, disk: 1500 * 2 ** 30 };

test("engine: one task at a time per resource, lowest issue id first, ties resolved the same way every time", () => {
  const run = () => {
    const factory = new TaskFactory();
    const log: string[] = [];
    const engine = new Engine({ onEnd: (t: Task) => log.push(`${t.kind}@${t.start}-${t.end}`) });
    const where = { token: 0, layer: 0, batch: 0 };
    const make = (kind: Task["kind"], resource: Task["resource"], seconds: number, deps: Task[]) => {
      const t = factory.make({ kind, resource, seconds, bytes: 0, ...where, deps, allocate: [], free: [] });
      engine.add(t);
      return t;
    };
    const a = make("load-weights", "h2d", 2, []);
    const b = make("load-cache", "h2d", 1, []);
    const c = make("compute", "gpu", 3, [a]);
    make("compute", "gpu", 1, [b]);
    make("store-cache", "d2h", 1, [c]);
    return { makespan: engine.run(), log };
  };
  // h2d: weights 0-2, cache 2-3; GPU: the first compute 2-5 (after the weights), the second 5-6;
  // d2h: store 5-6. The two tasks ending at 6 finish in issue order.
  const first = run();
  assert.equal(first.makespan, 6);
  assert.deepEqual(first.log, ["load-weights@0-2", "load-cache@2-3", "compute@2-5", "compute@5-6", "store-cache@5-6"]);
  assert.deepEqual(run(), first);
});

/** One layer, two GPU batches, prefill only, hidden states on the CPU, round-number costs. */
function handMadeCosts(): ScheduleCostSource {
  const batch: BatchCosts = {
    gpuSeconds: 3,
    gpuBeforeCpuSeconds: 0,
    cpuSeconds: 0,
    readCache: NO_TRANSFER,
    loadCache: NO_TRANSFER,
    storeCache: NO_TRANSFER,
    writeCache: NO_TRANSFER,
    readHidden: NO_TRANSFER,
    loadHidden: { seconds: 1, bytes: 10 },
    storeHidden: { seconds: 1, bytes: 10 },
    writeHidden: NO_TRANSFER,
    sendQkv: NO_TRANSFER,
    returnAttention: NO_TRANSFER,
    workingBytes: 5,
    newCacheBytes: { gpu: 1, cpu: 0, disk: 0 },
    cacheStagingGpuBytes: 0,
    cacheStagingCpuBytes: 0,
    hiddenBytes: 10,
    cpuAttentionWorkingBytes: 0,
  };
  return {
    numLayers: 1,
    numGpuBatches: 2,
    genLen: 1,
    cpuAttention: false,
    activationTier: "cpu",
    residentBytes: { gpu: 0, cpu: 100, disk: 0 },
    weights: () => ({
      readDisk: NO_TRANSFER,
      loadFromCpu: { seconds: 2, bytes: 100 },
      loadFromDisk: NO_TRANSFER,
      dequantizeSeconds: 0,
      gpuBufferBytes: 100,
      dequantBufferBytes: 0,
      cpuStagingBytes: 0,
    }),
    batch: () => batch,
    head: () => ({
      gpuSecondsPerBatch: 0.5,
      readWeights: NO_TRANSFER,
      loadWeights: NO_TRANSFER,
      storeTokensPerBatch: NO_TRANSFER,
      bufferBytes: 0,
      logitsBytes: 4,
    }),
  };
}

test("hand-computed makespan, spillway schedule: 10 s", () => {
  // h2d: weights 0-2, hidden b0 2-3, hidden b1 3-4. GPU: b0 3-6, b1 6-9, LM head b0 9-9.5, b1 9.5-10.
  // d2h: store b0 6-7, store b1 9-10.
  const r = simulateSchedule(handMadeCosts(), 1, { schedule: "spillway", capacityBytes: capacity });
  assert.equal(r.makespanSeconds, 10);
  assert.equal(r.prefillSeconds, 10);
  assert.deepEqual(r.busySeconds, { gpu: 7, cpu: 0, h2d: 4, d2h: 2, diskRead: 0, diskWrite: 0 });
  assert.deepEqual(r.bytes, { h2d: 120, d2h: 20, diskRead: 0, diskWrite: 0 });
  // Peak GPU: weights 100 + hidden of both batches 20 + working 5 + new KV 1 (and one more KV on b1).
  assert.equal(r.peakBytes.gpu, 100 + 10 + 10 + 5 + 1);
});

test("hand-computed makespan, FlexGen's per-step sync: 10.5 s", () => {
  // Pre-step: weights 0-2, hidden b0 2-3 | step b0: hidden b1 3-4 with compute b0 3-6 | step b1: store b0 6-7
  // with compute b1 6-9 | head step b0: store b1 9-10 with LM head b0 9-9.5 | head step b1: 10-10.5.
  const r = simulateSchedule(handMadeCosts(), 1, { schedule: "flexgen", capacityBytes: capacity });
  assert.equal(r.makespanSeconds, 10.5);
  assert.deepEqual(r.bytes, { h2d: 120, d2h: 20, diskRead: 0, diskWrite: 0 });
});

test("weights copied in pieces: a hidden-state load issued before them waits for one piece, not the whole layer", () => {
  // Two layers of three batches, each layer's weights 8 s over h2d. h2d: W0 0-8, H(0,0) 8-9, H(0,1) 9-10,
  // then W1 from 10. H(0,2) needs batch 0's compute done (its staging buffer): C(0,0) 9-12. In one copy,
  // W1 holds the link until 18; in pieces of 1 s, H(0,2) takes it at the piece boundary at 12.
  const costs: ScheduleCostSource = {
    ...handMadeCosts(),
    numLayers: 2,
    numGpuBatches: 3,
    weights: () => ({ ...handMadeCosts().weights(0), loadFromCpu: { seconds: 8, bytes: 80 } }),
  };
  const run = (weightCopyChunkBytes: number | undefined) => {
    const started = new Map<string, number>();
    const pieces: number[] = [];
    const engine = new Engine({
      onStart: (t: Task) => {
        started.set(`${t.kind} ${t.layer} ${t.batch}`, t.start);
        if (t.kind === "load-weights" && t.layer === 1) pieces.push(t.bytes);
      },
    });
    const builder = new ScheduleBuilder(
      costs,
      { ...spillwayStrategy, weightCopyChunkBytes },
      new TaskFactory(),
      engine,
    );
    builder.generateNextToken();
    return { makespan: engine.run(), hiddenStart: started.get("load-hidden 0 2"), pieces };
  };
  const whole = run(undefined);
  assert.deepEqual(whole.pieces, [80]);
  assert.equal(whole.hiddenStart, 18);
  const inPieces = run(10);
  assert.deepEqual(inPieces.pieces, [10, 10, 10, 10, 10, 10, 10, 10]);
  assert.equal(inPieces.hiddenStart, 12);
  assert.ok(inPieces.makespan < whole.makespan, `${inPieces.makespan} >= ${whole.makespan}`);
});

test("a plan that does not fit fails in simulation, naming when and what", async () => {
  const p = await plan({
    model: findCatalogueModel("opt-30b")!,
    hardware: t4,
    workload: { promptLen: 64, genLen: 2 },
    fixed: { gbs: 8, nb: 2, percent: [100, 0, 100, 0, 100, 0] },
  });
  assert.equal(p.predicted.feasible, false);
  const r = simulate(p, t4, { schedule: "spillway", capacityBytes: p.predicted.capacityBytes });
  assert.equal(r.overflow?.tier, "gpu");
  assert.equal(r.overflow?.what, "resident weights");
  assert.match(r.disagreements[0]!, /gpu memory overflows at 0\.000 s while allocating resident weights/);
});

test("planner and simulator agree on every link's traffic within 1%, across the catalogue and many policies", async () => {
  const rand = random(99);
  const models = [
    "opt-125m",
    "opt-1.3b",
    "opt-6.7b",
    "opt-30b",
    "opt-175b",
    "llama-2-7b",
    "llama-2-70b",
    "mistral-7b",
    "mixtral-8x7b",
  ];
  let checked = 0;
  for (let i = 0; i < 27; i++) {
    const model = findCatalogueModel(models[i % models.length]!)!;
    const workload = { promptLen: 8 + Math.floor(rand() * 120), genLen: 2 + Math.floor(rand() * 5) };
    const split = () => {
      const g = Math.floor(rand() * 101);
      return [g, Math.floor(rand() * (101 - g))] as const;
    };
    const [wg, wc] = split();
    const [cg, cc] = split();
    const act = rand() < 0.4 ? [100, 0] : rand() < 0.7 ? [0, 100] : [0, 0];
    const searched = i % 3 === 0;
    const p = await plan({
      model,
      hardware: t4,
      workload,
      // Searched plans with blocks of at most 64 sequences: larger blocks add tasks, not new kinds of traffic.
      ...(searched ? { maxBlock: 64 } : {}),
      fixed: searched
        ? {}
        : {
            gbs: 1 + Math.floor(rand() * 12),
            nb: 1 + Math.floor(rand() * 4),
            percent: [wg, wc, cg, cc, act[0]!, act[1]!],
            compressWeight: rand() < 0.5,
            compressCache: rand() < 0.5,
            cpuAttention: rand() < 0.5,
            pinWeight: rand() < 0.7,
          },
    });
    for (const schedule of ["spillway", "flexgen"] as const) {
      const r = simulate(p, t4, { schedule, capacityBytes: { gpu: Infinity, cpu: Infinity, disk: Infinity } });
      for (const link of ["h2d", "d2h", "diskRead", "diskWrite"] as const) {
        const planned = p.predicted.bytes[link];
        const simulated = r.bytes[link];
        const scale = Math.max(planned, simulated, 1);
        assert.ok(
          Math.abs(planned - simulated) / scale <= 0.01,
          `case ${i} (${model.name}, ${schedule}, ${JSON.stringify(p.policy)}): ${link} planned ${planned} simulated ${simulated}`,
        );
      }
      if (p.predicted.feasible) {
        for (const tier of ["gpu", "cpu", "disk"] as const) {
          assert.ok(
            r.peakBytes[tier] <= p.predicted.peakBytes[tier] * 1.001 + 1,
            `case ${i} (${model.name}, ${schedule}): simulated ${tier} peak ${r.peakBytes[tier]} above planned ${p.predicted.peakBytes[tier]}`,
          );
        }
      }
      checked++;
    }
  }
  assert.equal(checked, 54);
});

test("the spillway schedule is never slower than FlexGen's in simulation", async () => {
  for (const name of ["opt-6.7b", "opt-30b"]) {
    const p = await plan({ model: findCatalogueModel(name)!, hardware: t4, workload: { promptLen: 128, genLen: 4 } });
    const a = simulate(p, t4, { schedule: "spillway", capacityBytes: p.predicted.capacityBytes });
    const b = simulate(p, t4, { schedule: "flexgen", capacityBytes: p.predicted.capacityBytes });
    assert.ok(
      a.makespanSeconds <= b.makespanSeconds * (1 + 1e-9),
      `${name}: ${a.makespanSeconds} > ${b.makespanSeconds}`,
    );
  }
});

test("spillway plan --out then simulate --trace --json: a valid Perfetto trace, traffic matching the plan, deterministic", () => {
  const planPath = join(dir, "p.json");
  const tracePath = join(dir, "t.json");
  assert.equal(runCli(["plan", "--out", planPath, "--quiet"]).status, 0);
  const out = runCli(["simulate", planPath, "--trace", tracePath, "--json"]);
  assert.equal(out.status, 0, out.stderr);
  const result = JSON.parse(out.stdout);
  const planned = JSON.parse(readFileSync(planPath, "utf8"));
  for (const key of [
    "throughputTokensPerSecond",
    "prefillSeconds",
    "decodeSeconds",
    "events",
    "peakBytes",
    "bytes",
    "busySeconds",
    "planned",
    "relativeError",
  ])
    assert.ok(key in result, key);
  for (const link of ["h2d", "d2h", "diskRead", "diskWrite"]) {
    const p = planned.predicted.bytes[link];
    assert.ok(Math.abs(result.bytes[link] - p) <= 0.01 * Math.max(p, 1), `${link}: ${result.bytes[link]} vs ${p}`);
  }
  assert.ok(
    Math.abs(
      result.relativeError -
        (result.throughputTokensPerSecond - planned.predicted.throughputTokensPerSecond) /
          planned.predicted.throughputTokensPerSecond,
    ) < 1e-12,
  );

  const trace = JSON.parse(readFileSync(tracePath, "utf8")) as {
    traceEvents: { ph: string; pid: number; tid: number; ts: number; dur?: number; args?: Record<string, number> }[];
  };
  const xs = trace.traceEvents.filter((e) => e.ph === "X");
  const cs = trace.traceEvents.filter((e) => e.ph === "C");
  assert.ok(xs.length > 1000 && cs.length > 100);
  assert.ok(trace.traceEvents.some((e) => e.ph === "M"));
  const lastEnd = new Map<string, number>();
  for (const e of xs) {
    const lane = `${e.pid}/${e.tid}`;
    const previous = lastEnd.get(lane) ?? -Infinity;
    assert.ok(e.ts >= previous - 1e-6, `lane ${lane}: event at ${e.ts} overlaps or precedes one ending at ${previous}`);
    assert.ok(e.dur! >= 0);
    lastEnd.set(lane, e.ts + e.dur!);
    assert.ok(e.args && "layer" in e.args && "batch" in e.args && "token" in e.args);
  }
  assert.ok(
    xs.some((e) => e.args!.bytes! > 0),
    "transfers carry their bytes",
  );
  const again = runCli(["simulate", planPath, "--json"]);
  assert.deepEqual({ ...JSON.parse(again.stdout), traceEvents: undefined }, { ...result, traceEvents: undefined });
});

test("simulate: bad plan files get clear errors", () => {
  const bad = join(dir, "bad-plan.json");
  writeFileSync(bad, JSON.stringify({ model: "x", hardware: "t4", workload: { promptLen: 0, genLen: 4 } }));
  const out = runCli(["simulate", bad]);
  assert.equal(out.status, 2);
  assert.match(
    out.stderr,
    /bad-plan\.json: modelSpec: missing; expected an object|bad-plan\.json: workload\.promptLen/,
  );
  const missing = runCli(["simulate", join(dir, "nope.json")]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /nope\.json: no such file/);
});
