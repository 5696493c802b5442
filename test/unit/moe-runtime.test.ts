import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { readRouting } from "../../cli/routing-flag.js";
import { runSynthWeights } from "../../cli/synth-weights-command.js";
import { type ExpertPolicy, plainExpertPolicy } from "../../core/expert-policy.js";
import { InputError } from "../../core/input-error.js";
import { isExpertTensor, layerWeightTensors } from "../../core/model-spec.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { moePolicy } from "../../planner/moe/moe-search.js";
import { routingProfileFromTrace } from "../../planner/moe/profile-from-trace.js";
import { uniformRoutingProfile } from "../../planner/moe/routing-profile.js";
import { recordedGuessRecall } from "../../routing/guess-recall.js";
import { writeMegatronJsonl } from "../../routing/megatron-jsonl.js";
import { writeRoutingCsv } from "../../routing/routing-csv.js";
import { expertsAt, guessesAt, PHASE_DECODE } from "../../routing/routing-trace.js";
import { DeviceOutOfMemory } from "../../runtime/device-arena.js";
import { deviceBudget } from "../../runtime/moe/device-budget.js";
import { route } from "../../runtime/moe/mixtral-model.js";
import { type MoeRunResult, runMoe } from "../../runtime/moe/moe-runner.js";
import { Rope } from "../../runtime/moe/rope.js";
import {
  hfMixtralConfig,
  mixtralTensorShapes,
  readMixtralConfig,
  synthesizeMixtralWeights,
  tinyMixtralSpec,
} from "../../runtime/moe/synth-mixtral-weights.js";
import { openSafetensors } from "../../runtime/safetensors.js";
import { decodeRouting } from "../../simulator/decode-routing.js";
import { replayMoePlan } from "../../simulator/moe-replay.js";

const spec = tinyMixtralSpec();
const BATCH = 2;
const PROMPT_LEN = 8;
const GEN_LEN = 24;
const base = plainExpertPolicy({ cacheSize: 2 });
let dir = "";
/** The same shape, pre-gated (runtime/moe/pre-gated.ts): what policy.pregated runs on. */
let preGatedDir = "";

before(() => {
  dir = mkdtempSync(join(tmpdir(), "spillway-moe-runtime-"));
  synthesizeMixtralWeights(spec, join(dir, "standard"), 7);
  synthesizeMixtralWeights(spec, join(dir, "pre-gated"), 7, { preGated: true });
  preGatedDir = join(dir, "pre-gated");
  dir = join(dir, "standard");
});
after(() => rmSync(join(dir, ".."), { recursive: true, force: true }));

const run = (
  x: Partial<ExpertPolicy>,
  extra: { threads?: boolean; deviceCapacityBytes?: number; weightsDir?: string } = {},
) =>
  runMoe({
    weightsDir: x.pregated ? preGatedDir : dir,
    policy: { ...base, ...x, batch: BATCH },
    promptLen: PROMPT_LEN,
    genLen: GEN_LEN,
    seed: 3,
    ...extra,
  });

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
  const { model, ropeTheta, rmsNormEps } = readMixtralConfig(dir);
  assert.deepEqual({ ...model, name: spec.name }, spec);
  assert.equal(ropeTheta, 1e6);
  assert.equal(rmsNormEps, 1e-5);
  const file = openSafetensors(join(dir, "model.safetensors"));
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

test("tokens equal the all-resident reference for every cache size, CPU compute (prefill too), prefetch and threaded copies", async () => {
  const references = new Map<boolean, number[][]>();
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
    const pregated = x.pregated ?? false;
    if (!references.has(pregated)) references.set(pregated, r.referenceTokens);
    assert.deepEqual(r.referenceTokens, references.get(pregated), "the reference is deterministic");
    if (x.cacheSize === 8) assert.equal(r.experts.hitRate, 1);
    if (x.cacheSize === 0 && x.compute !== "cpu") assert.equal(r.experts.hits, 0);
    if (x.compute === "cpu") assert.equal(r.experts.demandFetches, 0);
    if (x.compute === "cpu" && x.cacheSize === 0) assert.equal(r.experts.cpuComputed, r.experts.lookups);
    // Prefill computes its misses where the policy computes misses (as the planner's prefill counts them):
    // on the CPU from the home copies, else streamed to the device.
    if (x.compute === "cpu") assert.equal(r.experts.prefillFetches, 0, JSON.stringify(x));
    else if (x.cacheSize! < spec.moe!.numExperts) assert.ok(r.experts.prefillFetches > 0, JSON.stringify(x));
  }
  // Greedy decoding of a random network that does not collapse to one token.
  for (const reference of references.values()) assert.ok(new Set(reference.flat()).size > 8);
  // The pre-gated variant is another model: its own routers give other tokens.
  assert.notDeepEqual(references.get(true), references.get(false));
});

test("measured hits, misses and prefetches equal the simulator's replay of the same routing", async () => {
  const policies: ExpertPolicy[] = [];
  for (const eviction of ["lru", "lfu", "static"] as const)
    for (let cacheSize = 1; cacheSize <= 4; cacheSize++) policies.push({ ...base, eviction, cacheSize });
  policies.push(
    { ...base, cacheSize: 2, pregated: true },
    { ...base, cacheSize: 1, eviction: "lfu", pregated: true },
    { ...base, cacheSize: 2, pregated: true, compute: "auto", cpuThresholdTokens: 1 },
    { ...base, cacheSize: 2, prefetchExperts: 2 },
    { ...base, cacheSize: 3, eviction: "lfu", prefetchExperts: 2 },
    { ...base, cacheSize: 1, prefetchExperts: 3, prefetchLayers: 2 },
    { ...base, cacheSize: 1, prefetchExperts: 4, compute: "auto", cpuThresholdTokens: 1 },
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
    // The replay makes the run's guesses: recorded ones for speculative prefetch, the trace's next layer for pre-gated.
    assert.equal(sim.predictor, x.pregated ? "pre-gated" : x.prefetchExperts > 0 ? "recorded" : "none", label);
    assert.equal(r.experts.guesses, sim.guesses, label);
    assert.equal(r.experts.guessesUsed, sim.guessesUsed, label);
    assert.equal(r.experts.guessedLayerLookups, sim.guessedLayerLookups, label);
    assert.equal(r.experts.guessRecall, sim.guessRecall, label);
    assert.equal(r.experts.guessPrecision, sim.guessPrecision, label);
    assert.equal(r.experts.prefetchUsed + r.experts.wastedPrefetches, r.experts.prefetches, label);
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

test("pre-gated checkpoint: layer 0 keeps its gate, layers 0..L-2 hold the next layer's pre-gate; policy.pregated refuses a standard one", async () => {
  const config = readMixtralConfig(preGatedDir);
  assert.equal(config.preGated, true);
  assert.equal(readMixtralConfig(dir).preGated, false);
  const file = openSafetensors(join(preGatedDir, "model.safetensors"));
  try {
    const names = file.names();
    const routers = names.filter((n) => /gate\.weight$/.test(n)).sort();
    assert.deepEqual(routers, [
      "model.layers.0.block_sparse_moe.gate.weight",
      "model.layers.0.block_sparse_moe.pre_gate.weight",
      "model.layers.1.block_sparse_moe.pre_gate.weight",
      "model.layers.2.block_sparse_moe.pre_gate.weight",
    ]);
    assert.deepEqual(file.info("model.layers.2.block_sparse_moe.pre_gate.weight").shape, [8, 64]);
    assert.equal(names.length, mixtralTensorShapes(spec).length);
  } finally {
    file.close();
  }
  await assert.rejects(
    runMoe({ weightsDir: dir, policy: { ...base, pregated: true }, promptLen: 4, genLen: 3 }),
    (error: Error) => {
      assert.ok(error instanceof InputError);
      assert.match(error.message, /config\.json: pre_gated: policy\.pregated needs a pre-gated checkpoint/);
      return true;
    },
  );
  // The pre-gate's experts are the next layer's: every guess is used and every used expert was guessed.
  const r = await run({ cacheSize: 1, pregated: true });
  assert.equal(r.matchesReference, true);
  assert.equal(r.experts.guessRecall, 1);
  assert.equal(r.experts.guessPrecision, 1);
  assert.equal(r.experts.wastedPrefetches, 0);
  // Only layer 0 (no pre-gate before it) fetches on demand.
  const layer0Lookups = decodeLookups(r, 0);
  assert.ok(r.experts.demandFetches <= layer0Lookups, `${r.experts.demandFetches} > ${layer0Lookups}`);
  assert.ok(r.experts.prefetchUsed > 0);
});

/** Decode lookups of one layer: the batch's distinct experts, summed over decode steps. */
function decodeLookups(r: MoeRunResult, layer: number): number {
  const routing = decodeRouting(r.routing);
  let total = 0;
  for (let t = 0; t < routing.decodeTokens(0); t++) {
    const set = new Set<number>();
    for (let b = 0; b < routing.requests; b++) for (const e of routing.experts(b, t, layer)) set.add(e);
    total += set.size;
  }
  return total;
}

test("speculative prefetch applies the target layer's router to the current router input, and the run records the guesses", async () => {
  // On a pre-gated model, layer l + 1's router *is* applied to layer l's router input, so one layer
  // ahead the per-token guesses are exactly the routing: with room for the batch's 2 x top-2, recall is 1.
  const exact = await run({ cacheSize: 1, prefetchExperts: 4 }, { weightsDir: preGatedDir });
  assert.equal(exact.matchesReference, true);
  assert.equal(exact.experts.guessRecall, 1);
  const guesses = exact.routing.guesses!;
  assert.deepEqual([guesses.distance, guesses.perLayer], [1, 4]);
  for (let i = 0; i < exact.routing.numTokens; i++) {
    assert.equal(guessesAt(guesses, spec.numLayers, i, 0).length, 0);
    for (let l = 1; l < spec.numLayers; l++)
      assert.deepEqual(
        [...guessesAt(guesses, spec.numLayers, i, l).subarray(0, 2)],
        [...expertsAt(exact.routing, i, l)],
      );
  }
  // On the standard synthetic model (independent random gates) the guesses are far from exact.
  const standard = await run({ cacheSize: 1, prefetchExperts: 2 });
  assert.equal(standard.matchesReference, true);
  assert.ok(standard.experts.guessRecall < 1 && standard.experts.guessRecall > 0, `${standard.experts.guessRecall}`);
  assert.equal(standard.referenceRouting.guesses, undefined);
});

test("a run's routing written as CSV or JSONL and read back as plan --routing reads it replays the run exactly, and re-plans on its measured recall", async () => {
  const cases: ExpertPolicy[] = [
    { ...base, cacheSize: 1, prefetchExperts: 3 },
    { ...base, cacheSize: 2, eviction: "lfu", prefetchExperts: 2, prefetchLayers: 2 },
    { ...base, cacheSize: 1, pregated: true },
  ];
  for (const x of cases) {
    const r = await run(x);
    for (const extension of ["csv", "jsonl"]) {
      const path = join(dir, "..", `recorded-${cases.indexOf(x)}.${extension}`);
      if (extension === "csv") writeRoutingCsv(path, r.routing);
      else writeMegatronJsonl(path, r.routing);
      const { trace } = readRouting(path, { ...spec, name: r.model.name });
      assert.deepEqual(trace.experts, r.routing.experts);
      assert.deepEqual(trace.guesses?.experts, r.routing.guesses?.experts);
      const sim = replay({ ...r, routing: trace }, x).experts;
      const label = `${JSON.stringify(x)} via ${extension}`;
      for (const key of [
        "lookups",
        "demandFetches",
        "prefetches",
        "wastedPrefetches",
        "cpuComputed",
        "guesses",
      ] as const)
        assert.equal(sim[key], r.experts[key], `${label}: ${key}`);
      assert.equal(sim.hitRate, r.experts.hitRate, label);
      assert.equal(sim.guessRecall, r.experts.guessRecall, label);
      if (!x.pregated) {
        // plan --routing: the profile's recall at the recorded distance is the recorded guesses' recall.
        const profile = routingProfileFromTrace(trace, path);
        assert.equal(profile.speculativeRecall[x.prefetchLayers - 1], recordedGuessRecall(trace));
      }
    }
  }
});

test("synth-weights --pregated writes the pre-gated checkpoint of a Mixtral config, and refuses other models", () => {
  const configDir = join(dir, "..", "config-only");
  mkdirSync(configDir);
  writeFileSync(join(configDir, "config.json"), JSON.stringify(hfMixtralConfig(spec)));
  const out = join(dir, "..", "cli-pre-gated");
  runSynthWeights({ model: join(configDir, "config.json"), out, seed: "7", json: false, quiet: true, pregated: true });
  assert.equal(readMixtralConfig(out).preGated, true);
  assert.deepEqual(readFileSync(join(out, "model.safetensors")), readFileSync(join(preGatedDir, "model.safetensors")));
  for (const [model, why] of [
    ["opt-125m", /^--pregated: pre-gated checkpoints are Mixtral-family MoE models; opt-125m is a opt model$/],
    [
      "mixtral-8x7b",
      /^--pregated: pre-gated checkpoints are written as one file of at most 2\.00 GiB; mixtral-8x7b needs 86\.99 GiB$/,
    ],
  ] as const)
    assert.throws(
      () => runSynthWeights({ model, out: join(dir, "..", "refused"), seed: undefined, json: false, pregated: true }),
      (error: Error) => error instanceof InputError && why.test(error.message),
    );
  assert.equal(existsSync(join(dir, "..", "refused")), false);
});
