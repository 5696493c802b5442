import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import type { ExpertPolicy } from "../../core/expert-policy.js";
import { isExpertTensor, layerWeightTensors } from "../../core/model-spec.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { moePolicy } from "../../planner/moe/moe-search.js";
import { uniformRoutingProfile } from "../../planner/moe/routing-profile.js";
import { expertsAt, PHASE_DECODE } from "../../routing/routing-trace.js";
import { DeviceOutOfMemory } from "../../runtime/device-arena.js";
import { deviceBudget } from "../../runtime/moe/device-budget.js";
import { route } from "../../runtime/moe/mixtral-model.js";
import type { MoeRunResult } from "../../runtime/moe/moe-runner.js";
import { Rope } from "../../runtime/moe/rope.js";
import { mixtralTensorShapes, readMixtralConfig } from "../../runtime/moe/synth-mixtral-weights.js";
import { openSafetensors } from "../../runtime/safetensors.js";
import { decodeRouting } from "../../simulator/decode-routing.js";
import { replayMoePlan } from "../../simulator/moe-replay.js";
import { BASE_EXPERT_POLICY, TINY_MOE_RUN, tinyMixtralCheckpoint } from "../moe-fixture.js";

const base: ExpertPolicy = { ...BASE_EXPERT_POLICY, bits: 16, attentionBits: 16 };
const { spec, dir, run } = tinyMixtralCheckpoint("spillway-moe-runtime-", base);
const { batch: BATCH, promptLen: PROMPT_LEN, genLen: GEN_LEN } = TINY_MOE_RUN;

/** The simulator's replay of the routing the runtime recorded, under the same expert policy and batch. */
function replay(result: MoeRunResult, x: ExpertPolicy) {
  return replayMoePlan(
    spec,
    resolveHardware("t4"),
    { promptLen: PROMPT_LEN, genLen: GEN_LEN },
    moePolicy(spec, BATCH, x, false),
    decodeRouting(result.routing),
    "runtime routing",
    uniformRoutingProfile(spec.moe!),
  );
}

test("synthetic Mixtral checkpoint: Mixtral's tensor names and shapes, config read back to the same spec", () => {
  const { model, ropeTheta, rmsNormEps } = readMixtralConfig(dir());
  assert.deepEqual({ ...model, name: spec.name }, spec);
  assert.equal(ropeTheta, 1e6);
  assert.equal(rmsNormEps, 1e-5);
  const file = openSafetensors(join(dir(), "model.safetensors"));
  try {
    const names = file.names();
    for (const t of layerWeightTensors(spec)) assert.ok(names.includes(`model.layers.3.${t.name}`), t.name);
    for (const name of ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"])
      assert.ok(names.includes(name));
    assert.equal(names.filter(isExpertTensor).length, 4 * 8 * 3);
    assert.deepEqual(file.info("model.layers.0.block_sparse_moe.experts.5.w2.weight").shape, [64, 128]);
    assert.deepEqual(file.info("model.layers.0.block_sparse_moe.experts.5.w1.weight").shape, [128, 64]);
    assert.deepEqual(file.info("model.layers.0.self_attn.k_proj.weight").shape, [32, 64]);
    assert.equal(file.info("lm_head.weight").dtype, "F16");
    assert.equal(names.length, mixtralTensorShapes(spec).length);
  } finally {
    file.close();
  }
});

test("router and rotary kernels: top-k renormalised to 1, rotation preserves norms and is the identity at position 0", () => {
  const experts = new Int32Array(2);
  const weights = new Float32Array(2);
  route(Float32Array.from([0.1, 2, -1, 1.5, 0, 0, 0, 0]), 2, experts, weights);
  assert.deepEqual([...experts], [1, 3]);
  assert.ok(Math.abs(weights[0]! + weights[1]! - 1) < 1e-6);
  assert.ok(Math.abs(weights[0]! / weights[1]! - Math.exp(0.5)) < 1e-5);
  const rope = new Rope(8, 1e6);
  const x = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i + 1));
  const at0 = x.slice();
  rope.apply(at0, 0, 2, 0);
  assert.deepEqual([...at0], [...x]);
  const at5 = x.slice();
  rope.apply(at5, 0, 2, 5);
  const norm = (v: Float32Array) => Math.hypot(...v);
  assert.ok(Math.abs(norm(at5) - norm(x)) < 1e-5);
  assert.notDeepEqual([...at5], [...x]);
});

test("tokens equal the all-resident reference for every cache size, CPU compute, prefetch and threaded copies", async () => {
  let reference: number[][] | undefined;
  const configs: Array<[Partial<ExpertPolicy>, { threads?: boolean }]> = [
    [{ cacheSize: 0 }, {}],
    [{ cacheSize: 2 }, {}],
    [{ cacheSize: 4 }, {}],
    [{ cacheSize: 8 }, {}],
    [{ cacheSize: 2, compute: "cpu" }, {}],
    [{ cacheSize: 0, compute: "cpu" }, {}],
    [{ cacheSize: 2, pregated: true }, { threads: true }],
    [{ cacheSize: 1, prefetchExperts: 3, prefetchLayers: 2, eviction: "lfu" }, { threads: true }],
  ];
  for (const [x, extra] of configs) {
    const r = await run(x, extra);
    assert.equal(r.matchesReference, true, JSON.stringify(x));
    assert.deepEqual(r.tokens, r.referenceTokens);
    assert.deepEqual(r.routing.experts, r.referenceRouting.experts);
    assert.equal(r.tokens.length, BATCH);
    assert.equal(r.tokens[0]!.length, GEN_LEN);
    reference ??= r.referenceTokens;
    assert.deepEqual(r.referenceTokens, reference, "the reference is deterministic");
    if (x.cacheSize === 8) assert.equal(r.experts.hitRate, 1);
    if (x.cacheSize === 0 && x.compute !== "cpu") assert.equal(r.experts.hits, 0);
    if (x.compute === "cpu") assert.equal(r.experts.demandFetches, 0);
    if (x.compute === "cpu" && x.cacheSize === 0) assert.equal(r.experts.cpuComputed, r.experts.lookups);
  }
  // Greedy decoding of a random network that does not collapse to one token.
  assert.ok(new Set(reference!.flat()).size > 8);
});

test("measured hits, misses and prefetches equal the simulator's replay of the same routing", async () => {
  const policies: ExpertPolicy[] = [];
  for (const eviction of ["lru", "lfu", "static"] as const)
    for (let cacheSize = 1; cacheSize <= 4; cacheSize++) policies.push({ ...base, eviction, cacheSize });
  policies.push(
    { ...base, cacheSize: 2, pregated: true },
    { ...base, cacheSize: 3, eviction: "lfu", prefetchExperts: 2 },
    { ...base, cacheSize: 1, prefetchExperts: 3, prefetchLayers: 2 },
    { ...base, cacheSize: 2, compute: "cpu" },
    { ...base, cacheSize: 2, compute: "auto", cpuThresholdTokens: 1 },
  );
  const hitRates = new Map<string, number>();
  for (const x of policies) {
    const r = await run(x);
    const sim = replay(r, x).experts;
    const label = JSON.stringify(x);
    assert.equal(r.matchesReference, true, label);
    assert.equal(r.experts.lookups, sim.lookups, label);
    assert.equal(r.experts.hitRate, sim.hitRate, label);
    assert.equal(r.experts.demandFetches, sim.demandFetches, label);
    assert.equal(r.experts.prefetches, sim.prefetches, label);
    assert.equal(r.experts.wastedPrefetches, sim.wastedPrefetches, label);
    assert.equal(r.experts.cpuComputed, sim.cpuComputed, label);
    assert.equal(
      r.experts.lookups,
      r.experts.hits + r.experts.demandFetches + r.experts.prefetchUsed + r.experts.cpuComputed,
      label,
    );
    // Every decode step's layers were looked up: (genLen - 1) steps x 4 layers, each at least top-2 experts.
    assert.ok(r.experts.lookups >= (GEN_LEN - 1) * spec.numLayers * 2);
    if (x.prefetchExperts === 0 && !x.pregated && x.compute === "gpu")
      hitRates.set(`${x.eviction}${x.cacheSize}`, r.experts.hitRate);
  }
  // More slots, more hits; and the caches really do miss.
  for (const eviction of ["lru", "lfu", "static"]) {
    const rates = [1, 2, 3, 4].map((c) => hitRates.get(`${eviction}${c}`)!);
    for (let i = 1; i < rates.length; i++) assert.ok(rates[i]! >= rates[i - 1]!, `${eviction}: ${rates}`);
    assert.ok(rates[0]! > 0 && rates[3]! < 1, `${eviction}: ${rates}`);
  }
});

test("the device arena holds exactly non-expert weights + cacheSize x layers x expert + working space", async () => {
  const expertBytes = 3 * 64 * 128 * 2;
  for (const x of [
    { cacheSize: 2 },
    { cacheSize: 1, pregated: true },
    { cacheSize: 3, prefetchExperts: 2, prefetchLayers: 2 },
  ] as Partial<ExpertPolicy>[]) {
    const policy = { ...base, ...x };
    const budget = deviceBudget(spec, policy, BATCH, PROMPT_LEN + GEN_LEN - 1);
    // Independently: fp16 non-expert tensors (each rounded to the arena's 64 bytes), the slots, the KV cache (fp32, 31 positions x 2 KV heads x 16), one staging expert, the prefetch buffers.
    const perLayer = 2 * 128 + 64 * 64 * 2 + 2 * (32 * 64 * 2) + 64 * 64 * 2 + 8 * 64 * 2;
    assert.equal(budget.nonExpertBytes, 2 * 256 * 64 * 2 + 128 + 4 * perLayer);
    assert.equal(budget.expertCacheBytes, policy.cacheSize * 4 * expertBytes);
    const prefetchBuffers = policy.pregated ? 4 : policy.prefetchLayers * policy.prefetchExperts;
    assert.equal(budget.workingBytes, 2 * 4 * BATCH * 31 * 32 * 4 + expertBytes + prefetchBuffers * expertBytes);
    assert.equal(budget.totalBytes, budget.nonExpertBytes + budget.expertCacheBytes + budget.workingBytes);

    const r = await run(x, { deviceCapacityBytes: budget.totalBytes });
    assert.equal(r.matchesReference, true);
    assert.ok(r.device.peakBytes <= budget.totalBytes);
    assert.equal(r.device.peakBytes, budget.totalBytes);
    await assert.rejects(run(x, { deviceCapacityBytes: budget.totalBytes - 64 }), DeviceOutOfMemory);
  }
});

test("the router varies: every layer uses more than 4 distinct experts in decode, none takes most of the traffic", async () => {
  const r = await run({ cacheSize: 2 });
  const trace = r.routing;
  for (let l = 0; l < spec.numLayers; l++) {
    const counts = new Array<number>(8).fill(0);
    let total = 0;
    for (let i = 0; i < trace.numTokens; i++) {
      if (trace.phases[i] !== PHASE_DECODE) continue;
      for (const e of expertsAt(trace, i, l)) {
        counts[e]!++;
        total++;
      }
    }
    assert.equal(total, BATCH * (GEN_LEN - 1) * 2);
    assert.ok(counts.filter((c) => c > 0).length > 4, `layer ${l}: ${counts}`);
    assert.ok(Math.max(...counts) / total < 0.35, `layer ${l}: ${counts}`);
  }
  // The caches were warmed with each layer's most popular experts.
  for (let l = 0; l < spec.numLayers; l++) assert.equal(r.initialExperts[l]!.length, 8);
});
