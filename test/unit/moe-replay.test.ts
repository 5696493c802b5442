import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { ExpertPolicy } from "../../core/expert-policy.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { moePolicy } from "../../planner/moe/moe-search.js";
import { type RoutingProfile, uniformRoutingProfile } from "../../planner/moe/routing-profile.js";
import type { DecodeRouting } from "../../simulator/decode-routing.js";
import { ExpertCache } from "../../simulator/expert-cache.js";
import { replayMoePlan } from "../../simulator/moe-replay.js";
import { runCli } from "../helpers.js";
import { BASE_EXPERT_POLICY } from "../moe-fixture.js";

const mixtral = findCatalogueModel("mixtral-8x7b")!;
const t4 = resolveHardware("t4");
const workload = { promptLen: 32, genLen: 41 };
const base: ExpertPolicy = BASE_EXPERT_POLICY;

/** One request whose token t routes to `pattern(t, layer)` at every layer. */
function routing(pattern: (t: number, layer: number) => number[], tokens = 40): DecodeRouting {
  return {
    numLayers: 32,
    numExperts: 8,
    expertsPerToken: 2,
    requests: 1,
    decodeTokens: () => tokens,
    experts: (_r, t, l) => pattern(t, l),
  };
}
/** Pseudo-random uniform top-2 routing: every layer independent of the others and of the last token. */
function uniformTable(tokens: number): number[][][] {
  let state = 12345;
  const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  return Array.from({ length: tokens }, () =>
    Array.from({ length: 32 }, () => {
      const a = Math.floor(next() * 8);
      let b = Math.floor(next() * 7);
      if (b >= a) b++;
      return [a, b];
    }),
  );
}
const replay = (
  x: Partial<ExpertPolicy>,
  r: DecodeRouting,
  profile: RoutingProfile = uniformRoutingProfile(mixtral.moe!),
) => replayMoePlan(mixtral, t4, workload, moePolicy(mixtral, 1, { ...base, ...x }, false), r, "test routing", profile);

test("expert cache: LRU evicts the least recent, LFU the least used, static never changes", () => {
  const lru = new ExpertCache(2, "lru", [0, 1]);
  lru.use(0);
  lru.use(2); // evicts 1, the least recent
  assert.deepEqual([...lru.resident].sort(), [0, 2]);
  const lfu = new ExpertCache(2, "lfu", []);
  for (const e of [0, 0, 0, 1, 2]) lfu.use(e); // 2 evicts 1 (used once, less than 0's three)
  assert.deepEqual([...lfu.resident].sort(), [0, 2]);
  const fixed = new ExpertCache(2, "static", [5, 6]);
  fixed.use(1);
  assert.deepEqual([...fixed.resident], [5, 6]);
});

test("MoE replay: hand-countable routings give the hit rates, fetches and prefetch figures they must", () => {
  // Two alternating pairs. Caches start with each layer's most popular experts (a tie, broken by index:
  // 0, 1, 2, 3, ...). Four slots hold both pairs: every lookup hits. Two slots hold {0, 1} for token 0,
  // then always the other pair (LRU): every later lookup misses.
  const alternating = routing((t) => (t % 2 === 0 ? [0, 1] : [2, 3]));
  const four = replay({ cacheSize: 4 }, alternating);
  assert.equal(four.experts.hitRate, 1);
  assert.equal(four.experts.demandFetches, 0);
  const two = replay({ cacheSize: 2 }, alternating);
  assert.equal(two.experts.hitRate, 1 / 40);
  assert.equal(two.experts.demandFetches, 39 * 32 * 2);
  assert.ok(two.experts.stallSeconds > 0);
  assert.ok(two.decodeSeconds > four.decodeSeconds);
  // Static with two slots pins the two most popular (a tie broken by expert index: 0 and 1): half the lookups hit.
  assert.equal(replay({ cacheSize: 2, eviction: "static" }, alternating).experts.hitRate, 0.5);
  // CPU-computed misses are neither fetched nor cached.
  const cpu = replay({ cacheSize: 2, compute: "cpu" }, alternating);
  assert.equal(cpu.experts.demandFetches, 0);
  assert.equal(cpu.experts.cpuComputed, 40 * 32 * 2 - cpu.experts.lookups * cpu.experts.hitRate);
  // Pre-gated: every layer's misses but layer 0's arrive in time, and nothing is wasted.
  const pregated = replay({ cacheSize: 2, pregated: true }, alternating);
  assert.equal(pregated.experts.prefetchPrecision, 1);
  assert.ok(Math.abs(pregated.experts.prefetchRecall - 31 / 32) < 1e-12, `${pregated.experts.prefetchRecall}`);
  assert.ok(pregated.experts.stallSeconds < two.experts.stallSeconds / 10);
  // Speculative: the next layer routes exactly like this one, so co-occurrence guesses are always right.
  const speculative = replay({ cacheSize: 2, prefetchExperts: 2 }, alternating);
  assert.equal(speculative.experts.prefetchPrecision, 1);
  assert.ok(Math.abs(speculative.experts.prefetchRecall - 31 / 32) < 1e-12);
  // Without recorded guesses the replay names its statistical predictor; every guess of both is used.
  assert.deepEqual(
    [two, pregated, speculative].map((r) => [r.experts.predictor, r.experts.guessRecall, r.experts.guessPrecision]),
    [
      ["none", 0, 0],
      ["pre-gated", 1, 1],
      ["statistical", 1, 1],
    ],
  );
  assert.equal(speculative.experts.guesses, 40 * 31 * 2, "40 decode steps, layers 1..31, 2 guesses each");
  // A predictor with nothing to go on (every layer routes independently of the last) wastes guesses.
  const table = uniformTable(400);
  const scrambled = replay(
    { cacheSize: 2, prefetchExperts: 2 },
    routing((t, l) => table[t]![l]!, 400),
  );
  assert.ok(scrambled.experts.prefetchPrecision < 0.4, `${scrambled.experts.prefetchPrecision}`);
  assert.equal(scrambled.experts.writeBacks, 0);
});

test("MoE replay agrees with the planner when the routing is what the planner assumed", () => {
  // Uniform routing, no locality: the planner's expected hit rate is slots / experts; a long replay of
  // a pseudo-random uniform routing comes close, and so does throughput.
  const table = uniformTable(2000);
  const uniform = routing((t, l) => table[t]![l]!, 2000);
  for (const slots of [2, 4, 6]) {
    const r = replayMoePlan(
      mixtral,
      t4,
      { promptLen: 32, genLen: 2001 },
      moePolicy(mixtral, 1, { ...base, cacheSize: slots }, false),
      uniform,
      "uniform",
      uniformRoutingProfile(mixtral.moe!),
    );
    assert.ok(Math.abs(r.experts.hitRate - slots / 8) < 0.02, `slots ${slots}: replayed ${r.experts.hitRate}`);
    assert.equal(r.experts.plannedHitRate, slots / 8);
    assert.ok(Math.abs(r.relativeError) < 0.03, `slots ${slots}: throughput off by ${r.relativeError}`);
  }
});

test("spillway simulate --routing replays an MoE plan on a trace and reports the experts figures; plan --routing uses its statistics", () => {
  const dir = mkdtempSync(join(tmpdir(), "spillway-moe-"));
  try {
    const planPath = join(dir, "m.json");
    const tracePath = join(dir, "r.csv");
    const common = ["--model", "mixtral-8x7b", "--hardware", "t4", "--prompt-len", "64", "--gen-len", "33"];
    assert.equal(
      runCli([
        "trace",
        "synth",
        "--model",
        "mixtral-8x7b",
        "--tokens",
        "200",
        "--requests",
        "2",
        "--seed",
        "5",
        "--out",
        tracePath,
      ]).status,
      0,
    );
    const planned = runCli([
      "plan",
      ...common,
      "--batch-size",
      "1",
      "--expert-cache",
      "3",
      "--expert-compute",
      "gpu",
      "--prefetch-experts",
      "2",
      "--routing",
      tracePath,
      "--out",
      planPath,
      "--json",
    ]);
    assert.equal(planned.status, 0, planned.stderr);
    const p = JSON.parse(planned.stdout) as {
      predicted: { experts: { expectedHitRate: number; routingSource: string } };
    };
    assert.equal(p.predicted.experts.routingSource, tracePath, "the plan's hit rates come from the trace given");
    const sim = runCli(["simulate", planPath, "--routing", tracePath, "--json"]);
    assert.equal(sim.status, 0, sim.stderr);
    const r = JSON.parse(sim.stdout) as {
      schedule: string;
      experts: Record<string, number>;
      plannedByPlan: { expectedHitRate: number };
    };
    assert.equal(r.schedule, "moe-replay");
    for (const key of ["hitRate", "prefetchRecall", "prefetchPrecision", "stallSeconds"])
      assert.equal(typeof r.experts[key], "number", key);
    assert.ok(r.experts.prefetches! > 0 && r.experts.demandFetches! > 0);
    assert.ok(
      Math.abs(r.experts.hitRate! - r.plannedByPlan.expectedHitRate) < 0.08,
      `replayed ${r.experts.hitRate} vs planned ${r.plannedByPlan.expectedHitRate}`,
    );
    // Without --routing the model's synthetic trace is used.
    const synthetic = runCli(["simulate", planPath]);
    assert.equal(synthetic.status, 0, synthetic.stderr);
    assert.match(synthetic.stdout, /synthetic routing trace of mixtral-8x7b/);
    // A routing trace for another shape, or for a dense plan, is refused naming the input.
    const dense = join(dir, "d.json");
    assert.equal(
      runCli(["plan", "--model", "opt-125m", "--gen-len", "4", "--prompt-len", "16", "--out", dense, "--quiet"]).status,
      0,
    );
    const wrong = runCli(["simulate", dense, "--routing", tracePath]);
    assert.equal(wrong.status, 2);
    assert.match(wrong.stderr, /--routing: this plan has no expert policy/);
    const other = join(dir, "o.csv");
    assert.equal(runCli(["trace", "synth", "--model", "mixtral-8x22b", "--tokens", "20", "--out", other]).status, 0);
    const mismatch = runCli(["simulate", planPath, "--routing", other]);
    assert.equal(mismatch.status, 2);
    assert.match(mismatch.stderr, /o\.csv: numLayers: the file says 56 but the model mixtral-8x7b has 32/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
