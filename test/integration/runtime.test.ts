import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { readRouting } from "../../cli/routing-flag.js";
import { runSynthWeights } from "../../cli/synth-weights-command.js";
import { withCapacities } from "../../core/hardware-profile.js";
import type { ModelSpec } from "../../core/model-spec.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import type { FixedExperts } from "../../planner/moe/moe-search.js";
import { type FixedPolicy, PlanError, plan } from "../../planner/plan.js";
import { compare } from "../../runtime/compare.js";
import { createEmulatedNative } from "../../runtime/cuda/emulated-native.js";
import { cudaStatus } from "../../runtime/cuda/load-native.js";
import { float16BitsToFloat32, float32ToFloat16Bits } from "../../runtime/fp16.js";
import { synthesizeMoeWeights } from "../../runtime/moe/synth-moe-weights.js";
import { synthesizePreGatedWeights } from "../../runtime/moe/synth-pre-gated.js";
import { loadOptCheckpoint, optTensorShapes } from "../../runtime/opt-checkpoint.js";
import { type RunOptions, run, syntheticPrompts } from "../../runtime/run.js";
import { writeSafetensors } from "../../runtime/safetensors.js";
import { hfOptConfig, synthesizeOptWeights } from "../../runtime/synth-weights.js";
import { CLI, random, TINY_OPT } from "../helpers.js";
import { hostCudaAddon } from "../host-cuda-addon.js";

const TINY: ModelSpec = TINY_OPT;

/**
 * A tiny OPT checkpoint with weights large enough that greedy tokens depend on the whole context
 * (HF's 0.02 init makes a tiny random model repeat one token, which would hide decode bugs).
 */
function sharpCheckpoint(): string {
  const dir = mkdtempSync(join(tmpdir(), "spillway-tiny-"));
  const rand = random(5);
  const normal = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  const tensors = optTensorShapes(TINY).map(({ name, shape }) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) {
      data[i] = name.endsWith("layer_norm.weight")
        ? 1
        : name.endsWith("layer_norm.bias")
          ? 0
          : normal() * (name.includes("embed") ? 1 : 0.3);
    }
    return { name, dtype: "F16" as const, shape, data };
  });
  writeSafetensors(join(dir, "model.safetensors"), tensors);
  writeFileSync(join(dir, "config.json"), JSON.stringify(hfOptConfig(TINY)));
  return dir;
}

const weightsDir = sharpCheckpoint();
after(() => rmSync(weightsDir, { recursive: true, force: true }));
const hardware = withCapacities(resolveHardware("t4"), { gpu: 4 * 2 ** 20, cpu: 2 ** 30, disk: 2 ** 30 });
const workload = { promptLen: 12, genLen: 5 };

const MATRIX: { name: string; fixed: FixedPolicy }[] = [
  { name: "all on device", fixed: { gbs: 2, nb: 2, percent: [100, 0, 100, 0, 100, 0] } },
  { name: "weights on host", fixed: { gbs: 2, nb: 2, percent: [0, 100, 100, 0, 100, 0] } },
  { name: "weights on disk", fixed: { gbs: 2, nb: 2, percent: [0, 0, 100, 0, 100, 0] } },
  { name: "KV on host", fixed: { gbs: 2, nb: 2, percent: [100, 0, 0, 100, 100, 0] } },
  { name: "KV on disk", fixed: { gbs: 2, nb: 2, percent: [100, 0, 0, 0, 100, 0] } },
  { name: "activations on host", fixed: { gbs: 2, nb: 2, percent: [100, 0, 100, 0, 0, 100] } },
  { name: "activations on disk", fixed: { gbs: 2, nb: 2, percent: [100, 0, 100, 0, 0, 0] } },
  // Three GPU batches: each batch meets each staging buffer in turn, so a missing wait on one is seen.
  { name: "activations on disk, KV on host, nb = 3", fixed: { gbs: 2, nb: 3, percent: [100, 0, 0, 100, 0, 0] } },
  {
    name: "CPU attention over host and disk KV",
    fixed: { gbs: 4, nb: 1, percent: [100, 0, 0, 50, 100, 0], cpuAttention: true },
  },
  { name: "everything spread, nb = 1", fixed: { gbs: 4, nb: 1, percent: [30, 40, 25, 25, 0, 100] } },
  { name: "compressed weights", fixed: { gbs: 2, nb: 2, percent: [40, 60, 100, 0, 100, 0], compressWeight: true } },
  {
    name: "compressed KV on host and disk",
    fixed: { gbs: 2, nb: 2, percent: [100, 0, 0, 50, 100, 0], compressCache: true },
  },
];

const uncompressedTokens: string[] = [];

/**
 * The correctness matrix runs on every backend: the CPU backend, the CUDA backend over the emulated
 * device twice (its streams run deferred until the host synchronises, once running the stream waited
 * for first and once the others first, so a missing event wait either way shows up as wrong tokens), the
 * CUDA backend over the addon's own sources built for the CPU (native/cuda/kernels.cu and addon.cpp
 * against the host emulation of the CUDA runtime: the real kernels and binding, every call completing
 * before it returns; skipped where no C++ compiler is found), and the CUDA backend on a real GPU where
 * one is usable (skipped with the reason otherwise). Every run is checked against the all-on-device
 * reference computed on the CPU backend.
 */
const gpu = cudaStatus();
const host = hostCudaAddon();
const BACKENDS: { name: string; options: () => Partial<RunOptions>; skip?: string }[] = [
  { name: "cpu", options: () => ({}) },
  {
    name: "cuda, emulated device, waited-for stream first",
    options: () => ({
      backend: "cuda",
      cudaNative: createEmulatedNative({ deviceBytes: 64 * 2 ** 20, seed: 7, order: "waited-first" }),
    }),
  },
  {
    name: "cuda, emulated device, other streams first",
    options: () => ({
      backend: "cuda",
      cudaNative: createEmulatedNative({ deviceBytes: 64 * 2 ** 20, seed: 7, order: "others-first" }),
    }),
  },
  {
    name: "cuda, kernels.cu on the CPU",
    options: () => ({ backend: "cuda", ...("native" in host ? { cudaNative: host.native } : {}) }),
    ...("reason" in host ? { skip: `no host build of the CUDA sources here: ${host.reason}` } : {}),
  },
  {
    name: "cuda",
    options: () => ({ backend: "cuda" }),
    ...(gpu.available ? {} : { skip: `no usable GPU here: ${gpu.reason}` }),
  },
];

for (const backend of BACKENDS) {
  for (const c of MATRIX) {
    test(
      `runtime correctness [${backend.name}]: ${c.name} generates the all-on-device reference's tokens, moving the planned bytes`,
      backend.skip ? { skip: backend.skip } : {},
      async (t) => {
        const p = await plan({ model: TINY, hardware, workload, fixed: c.fixed });
        assert.equal(p.predicted.feasible, true, p.predicted.infeasibleReasons.join("; "));
        let r;
        try {
          r = await run(p, hardware, { weightsDir, capacityBytes: p.predicted.capacityBytes, ...backend.options() });
        } catch (error) {
          // A policy this backend does not run yet is refused up front, with the policy field named.
          if (error instanceof PlanError && error.message.startsWith("--backend cuda cannot run this plan yet")) {
            t.skip(error.message);
            return;
          }
          throw error;
        }
        assert.equal(
          r.matchesReference,
          true,
          `tokens ${JSON.stringify(r.tokens)} vs reference ${JSON.stringify(r.referenceTokens)}`,
        );
        assert.equal(r.tokens.length, p.policy.gpuBatchSize * p.policy.numGpuBatches);
        for (const sequence of r.tokens) assert.equal(sequence.length, workload.genLen);
        // The model is not degenerate: sequences differ and a sequence does not just repeat one token.
        assert.ok(new Set(r.tokens.map((x) => x.join(","))).size > 1);
        assert.ok(r.tokens.some((x) => new Set(x).size > 1));
        for (const link of ["h2d", "d2h", "diskRead", "diskWrite"] as const) {
          const planned = p.predicted.bytes[link];
          assert.ok(
            Math.abs(r.bytes[link] - planned) <= 0.01 * Math.max(planned, 1),
            `${link}: measured ${r.bytes[link]} vs planned ${planned}`,
          );
        }
        for (const tier of ["gpu", "cpu", "disk"] as const)
          assert.ok(
            r.peakBytes[tier] <= r.capacityBytes[tier],
            `${tier} peak ${r.peakBytes[tier]} over capacity ${r.capacityBytes[tier]}`,
          );
        if (backend.name === "cpu" && !c.fixed.compressWeight && !c.fixed.compressCache)
          uncompressedTokens.push(JSON.stringify(r.tokens.flat().slice(0, 4 * workload.genLen)));
      },
    );
  }
}

/**
 * Mixture-of-Experts rows: tiny Mixtral and Qwen2-MoE checkpoints (spillway synth-weights), MoE plans
 * with fixed expert policies (each eviction, GPU / CPU / auto misses, speculative and pre-gated
 * prefetch), run through compare(): the tokens must equal the all-resident reference's, and the
 * simulator's replay of the routing the run recorded must count exactly the run's hits, fetches,
 * prefetches and CPU experts. On the CUDA backends the routed experts live and run on the device
 * (expert slots, staging and prefetch buffers in its pool, copies on their own stream ordered by events:
 * runtime/cuda/cuda-expert-memory.ts) and so does the rest of the decoder (norms, attention over the KV
 * cache in the pool, routers, the shared expert, the LM head: runtime/cuda/cuda-mixtral-decoder.ts),
 * checked against the same CPU-backend reference.
 */
const MOE_MODELS = { mixtral: findCatalogueModel("mixtral-tiny")!, qwen: findCatalogueModel("qwen2-moe-tiny")! };
const moeWeights = mkdtempSync(join(tmpdir(), "spillway-moe-matrix-"));
after(() => rmSync(moeWeights, { recursive: true, force: true }));
for (const model of Object.values(MOE_MODELS)) synthesizeMoeWeights(model, join(moeWeights, model.name), { seed: 5 });
// Pre-gated policies run on a pre-gated checkpoint (layer l holds layer l + 1's router: runtime/moe/pre-gated.ts).
const PRE_GATED_DIR = join(moeWeights, "mixtral-tiny-pre-gated");
synthesizePreGatedWeights(MOE_MODELS.mixtral, PRE_GATED_DIR, 5);
const MOE_FIXED: FixedExperts = { bits: 16, attentionBits: 16, cacheOnCpu: false, batchSize: 3, prefetchExperts: 0 };
const MOE_MATRIX: { name: string; model: ModelSpec; experts: FixedExperts }[] = [
  {
    name: "Mixtral, LRU cache of 2, misses fetched",
    model: MOE_MODELS.mixtral,
    experts: { cacheSize: 2, eviction: "lru", compute: "gpu" },
  },
  {
    name: "Mixtral, LFU cache of 3, misses fetched",
    model: MOE_MODELS.mixtral,
    experts: { cacheSize: 3, eviction: "lfu", compute: "gpu" },
  },
  {
    name: "Mixtral, static cache of 2, misses on the CPU",
    model: MOE_MODELS.mixtral,
    experts: { cacheSize: 2, eviction: "static", compute: "cpu" },
  },
  {
    name: "Mixtral, no cache, auto misses",
    model: MOE_MODELS.mixtral,
    experts: { cacheSize: 0, eviction: "lru", compute: "auto", cpuThresholdTokens: 1 },
  },
  {
    name: "Mixtral, LRU cache of 1, speculative prefetch of 2",
    model: MOE_MODELS.mixtral,
    experts: { cacheSize: 1, eviction: "lru", compute: "gpu", prefetchExperts: 2, prefetchLayers: 1 },
  },
  {
    name: "Mixtral, LFU cache of 2, pre-gated",
    model: MOE_MODELS.mixtral,
    experts: { cacheSize: 2, eviction: "lfu", compute: "gpu", pregated: true },
  },
  {
    name: "Qwen2-MoE, LRU cache of 2, misses on the CPU",
    model: MOE_MODELS.qwen,
    experts: { cacheSize: 2, eviction: "lru", compute: "cpu" },
  },
  {
    name: "Qwen2-MoE, LFU cache of 3, speculative prefetch of 2 two layers ahead",
    model: MOE_MODELS.qwen,
    experts: { cacheSize: 3, eviction: "lfu", compute: "gpu", prefetchExperts: 2, prefetchLayers: 2 },
  },
];
const moeWorkload = { promptLen: 6, genLen: 6 };

/**
 * The host build runs kernels.cu's kernels one thread at a time (~7 s a row): three rows cover its
 * decoder and expert paths (fetched and CPU misses; Qwen2-MoE's biases and shared expert with a
 * speculative prefetch).
 */
const HOST_BUILD_MOE_ROWS = new Set([0, 2, 7]);
for (const backend of BACKENDS) {
  for (const [i, c] of MOE_MATRIX.entries()) {
    const skip =
      backend.skip ??
      (backend.name === "cuda, kernels.cu on the CPU" && !HOST_BUILD_MOE_ROWS.has(i)
        ? "the emulated device's rows cover it; the host build runs three MoE rows to keep the suite short"
        : undefined);
    test(
      `runtime correctness [${backend.name}]: MoE ${c.name} generates the all-resident reference's tokens, counting what the replay counts`,
      skip ? { skip } : {},
      async () => {
        const request = { model: c.model, hardware, workload: moeWorkload, experts: { ...MOE_FIXED, ...c.experts } };
        const weightsDir = c.experts.pregated ? PRE_GATED_DIR : join(moeWeights, c.model.name);
        const { comparison: cmp, measured, plan } = await compare({ ...request, weightsDir, ...backend.options() });
        assert.equal(measured.backend, backend.name === "cpu" ? "cpu" : "cuda");
        assert.equal(cmp.matchesReference, true, JSON.stringify(measured.tokens));
        assert.equal(measured.tokens.length, 3);
        for (const sequence of measured.tokens) assert.equal(sequence.length, moeWorkload.genLen);
        const x = cmp.experts!;
        for (const key of [
          "lookups",
          "hitRate",
          "demandFetches",
          "prefetches",
          "wastedPrefetches",
          "cpuComputed",
          "prefetchRecall",
          "prefetchPrecision",
          "expertBytes",
        ] as const)
          assert.equal(
            x.measured[key],
            x.simulated[key],
            `${key}: measured ${x.measured[key]}, replayed ${x.simulated[key]}`,
          );
        assert.ok(x.predicted && x.predicted.lookups > 0);
        assert.ok(x.measured.lookups >= (moeWorkload.genLen - 1) * c.model.numLayers * 2);
        if (c.experts.compute === "cpu") assert.equal(x.measured.demandFetches, 0);
        else if (c.experts.compute === "gpu") assert.equal(x.measured.cpuComputed, 0);
        if (c.experts.compute === "gpu" && !c.experts.pregated && !c.experts.prefetchExperts)
          assert.ok(x.measured.demandFetches > 0);
        if (c.experts.pregated || c.experts.prefetchExperts) assert.ok(x.measured.prefetches > 0);
        // Every expert copy is on the host->GPU link, the decode's among them. On the CPU backend nothing
        // else moves; the CUDA backend keeps the routed rows on the device and reads each layer's gate
        // logits back (and a CPU-computed miss's rows, whose outputs go up): its byte totals are checked
        // exactly in test/unit/cuda-moe.test.ts.
        assert.ok(measured.bytes.h2d >= x.measured.expertBytes);
        assert.equal(measured.bytes.diskRead + measured.bytes.diskWrite, 0);
        if (backend.name === "cpu") assert.equal(measured.bytes.d2h, 0);
        else assert.ok(measured.bytes.d2h > 0);
        assert.ok(measured.peakBytes.gpu <= measured.capacityBytes.gpu);
        // The plan's GPU peak is the CUDA device pool's, block by block (runtime/moe/device-budget.ts);
        // the CPU backend's arena holds those blocks but the activations.
        if (backend.name === "cpu") assert.ok(measured.peakBytes.gpu < plan.predicted.peakBytes.gpu);
        else assert.equal(measured.peakBytes.gpu, plan.predicted.peakBytes.gpu);
        assert.ok(measured.throughputTokensPerSecond > 0 && cmp.simulated.throughputTokensPerSecond > 0);
      },
    );
  }
}

test("spillway synth-weights --model mixtral-tiny, then compare with an MoE policy: predicted, simulated and measured throughput and expert figures, tokens matching", async () => {
  const dir = join(moeWeights, "cli");
  runSynthWeights({ model: "mixtral-tiny", out: dir, seed: undefined, json: false, quiet: true });
  const { spawnSync } = await import("node:child_process");
  const args = ["--model", dir, "--hardware", "t4", "--gpu-mem", "0.004", "--prompt-len", "8", "--gen-len", "5"];
  const policy = ["--batch-size", "2", "--expert-cache", "2", "--expert-eviction", "lfu", "--expert-compute", "cpu"];
  const fp16 = ["--expert-bits", "16", "--attention-bits", "16", "--no-cpu-attention", "--prefetch-experts", "0"];
  const out = spawnSync(process.execPath, [CLI, "compare", ...args, ...policy, ...fp16, "--weights", dir, "--json"], {
    encoding: "utf8",
  });
  assert.equal(out.status, 0, out.stderr);
  const c = JSON.parse(out.stdout);
  assert.equal(c.matchesReference, true);
  assert.equal(c.policy.experts.eviction, "lfu");
  for (const key of ["predicted", "simulated", "measured"]) {
    assert.ok(c[key].throughputTokensPerSecond > 0, key);
    for (const figure of ["hitRate", "expertBytes", "stallSeconds", "cpuComputed", "prefetchRecall"])
      assert.equal(typeof c.experts[key][figure], "number", `${key} ${figure}`);
  }
  assert.ok(c.experts.measured.cpuComputed > 0);
  assert.equal(c.experts.measured.cpuComputed, c.experts.simulated.cpuComputed);
  // The run's progress, then the reference's, on stderr.
  assert.match(out.stderr, /^reference: 100% .*token 5\/5/m);
  assert.match(out.stderr, /^run: 100% .*token 5\/5/m);
});

test("an MoE run writes the dense run's trace: compute and expert slices, expert copies on the host->GPU lane", async () => {
  const model = MOE_MODELS.mixtral;
  const p = await plan({
    model,
    hardware,
    workload: moeWorkload,
    experts: { ...MOE_FIXED, cacheSize: 1, eviction: "lru", compute: "gpu", prefetchExperts: 2 },
  });
  const tracePath = join(moeWeights, "trace.json");
  const routingPath = join(moeWeights, "routing.csv");
  const r = await run(p, hardware, {
    weightsDir: join(moeWeights, model.name),
    capacityBytes: p.predicted.capacityBytes,
    tracePath,
    routingPath,
    reference: false,
  });
  assert.equal(r.matchesReference, undefined);
  // --record-routing: the run's routing with the speculative guesses, as plan/simulate --routing read it.
  const recorded = readRouting(routingPath, model).trace;
  const batch = p.policy.gpuBatchSize * p.policy.numGpuBatches;
  assert.equal(recorded.tokens.length, batch * (moeWorkload.promptLen + moeWorkload.genLen - 1));
  assert.equal(recorded.guesses?.distance, 1);
  assert.equal(recorded.guesses?.perLayer, 2);
  // A dense plan routes nothing: the flag is bad input there.
  const t4 = resolveHardware("t4");
  const dense = await plan({ model: findCatalogueModel("opt-125m")!, hardware: t4, workload: moeWorkload });
  await assert.rejects(
    run(dense, t4, { weightsDir: moeWeights, capacityBytes: dense.predicted.capacityBytes, routingPath }),
    /only a Mixture-of-Experts plan/,
  );
  const trace = JSON.parse(readFileSync(tracePath, "utf8")) as {
    traceEvents: { ph: string; name: string; cat: string; dur: number; args: { token: number; layer: number } }[];
    otherData: { source: string };
  };
  assert.equal(trace.otherData.source, "run");
  const slices = trace.traceEvents.filter((e) => e.ph === "X");
  assert.equal(slices.length, r.events);
  const names = new Set(slices.map((e) => `${e.name}@${e.cat}`));
  for (const name of ["compute@gpu", "expert@gpu", "stream-expert@h2d", "load-expert@h2d", "prefetch-expert@h2d"])
    assert.ok(names.has(name), `${name} in ${[...names]}`);
  // Per decode step and layer, one attention slice; the busy time is the slices'.
  const decodeCompute = slices.filter((e) => e.name === "compute" && e.args.token > 0 && e.args.layer >= 0);
  assert.equal(decodeCompute.length, (moeWorkload.genLen - 1) * model.numLayers);
  const h2d = slices.filter((e) => e.cat === "h2d").reduce((a, e) => a + e.dur / 1e6, 0);
  assert.ok(Math.abs(h2d - r.busySeconds.h2d) < 1e-6);
});

test("placement never changes the numbers: every uncompressed policy generates the same tokens", () => {
  assert.ok(uncompressedTokens.length >= 8);
  assert.equal(new Set(uncompressedTokens).size, 1);
});

test("an interrupted run (Ctrl-C, SIGHUP, SIGQUIT) leaves no offload files behind", async () => {
  const work = mkdtempSync(join(tmpdir(), "spillway-interrupt-"));
  const planPath = join(work, "plan.json");
  const p = await plan({
    model: TINY,
    hardware,
    workload: { promptLen: 64, genLen: 150 },
    fixed: { gbs: 8, nb: 4, percent: [0, 0, 0, 0, 0, 0] },
  });
  writeFileSync(planPath, JSON.stringify({ ...p, hardware: "t4" }));
  for (const [signal, exitCode] of [
    ["SIGINT", 130],
    ["SIGHUP", 129],
    ["SIGQUIT", 131],
  ] as const) {
    const offload = join(work, `offload-${signal}`);
    mkdirSync(offload);
    const child = spawn(
      process.execPath,
      [CLI, "run", planPath, "--weights", weightsDir, "--offload-dir", offload, "--no-reference", "--quiet"],
      { stdio: "ignore" },
    );
    const deadline = Date.now() + 20_000;
    while (readdirSync(offload).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(readdirSync(offload).length, 1, `${signal}: the run made its offload folder`);
    // Interrupted once it has written offload files (a state, not a delay).
    const runFolder = join(offload, readdirSync(offload)[0]!);
    while (readdirSync(runFolder).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(readdirSync(runFolder).length > 0, `${signal}: the run wrote offload files`);
    child.kill(signal);
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    assert.equal(code, exitCode, signal);
    assert.deepEqual(readdirSync(offload), [], `${signal}: nothing left`);
  }
  rmSync(work, { recursive: true, force: true });
});

/**
 * An independent OPT forward pass, written from the architecture (learned positions offset by 2,
 * pre-LayerNorm, scaled multi-head causal attention with biases, ReLU FFN, tied LM head) with plain
 * loops in float64, rounding hidden states and KV to fp16 where the runtime stores them.
 */
function naiveGreedy(prompts: Int32Array, sequences: number, promptLen: number, genLen: number): number[][] {
  const checkpoint = loadOptCheckpoint(weightsDir);
  const { hiddenSize: h, ffnSize: f, numHeads: nh, numLayers: L, vocabSize: vocab } = TINY;
  const hd = h / nh;
  const get = (name: string) => Array.from(checkpoint.tensor(name));
  const f16 = (x: number) => float16BitsToFloat32(float32ToFloat16Bits(x));
  const tokenTable = get("model.decoder.embed_tokens.weight");
  const positions = get("model.decoder.embed_positions.weight");
  const layers = Array.from({ length: L }, (_, i) => {
    const p = `model.decoder.layers.${i}`;
    return Object.fromEntries(
      [
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.out_proj",
        "self_attn_layer_norm",
        "fc1",
        "fc2",
        "final_layer_norm",
      ].flatMap((m) => [
        [`${m}.weight`, get(`${p}.${m}.weight`)],
        [`${m}.bias`, get(`${p}.${m}.bias`)],
      ]),
    ) as Record<string, number[]>;
  });
  const lnF = [get("model.decoder.final_layer_norm.weight"), get("model.decoder.final_layer_norm.bias")];
  const layerNormOf = (x: number[], w: number[], b: number[]) => {
    const mean = x.reduce((a, v) => a + v, 0) / x.length;
    const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
    return x.map((v, i) => ((v - mean) / Math.sqrt(variance + 1e-5)) * w[i]! + b[i]!);
  };
  const linearOf = (x: number[], w: number[], b: number[] | undefined, outDim: number) =>
    Array.from({ length: outDim }, (_, o) => x.reduce((a, v, i) => a + v * w[o * x.length + i]!, b ? b[o]! : 0));
  const out: number[][] = [];
  for (let s = 0; s < sequences; s++) {
    const keys: number[][][] = Array.from({ length: L }, () => []);
    const values: number[][][] = Array.from({ length: L }, () => []);
    const generated: number[] = [];
    let input = Array.from(prompts.subarray(s * promptLen, (s + 1) * promptLen));
    let position = 0;
    for (let step = 0; step < genLen; step++) {
      let last: number[] = [];
      for (const id of input) {
        let x = Array.from({ length: h }, (_, c) => f16(tokenTable[id * h + c]! + positions[(position + 2) * h + c]!));
        for (let l = 0; l < L; l++) {
          const w = layers[l]!;
          const y = layerNormOf(x, w["self_attn_layer_norm.weight"]!, w["self_attn_layer_norm.bias"]!);
          const q = linearOf(y, w["self_attn.q_proj.weight"]!, w["self_attn.q_proj.bias"], h);
          keys[l]!.push(linearOf(y, w["self_attn.k_proj.weight"]!, w["self_attn.k_proj.bias"], h).map(f16));
          values[l]!.push(linearOf(y, w["self_attn.v_proj.weight"]!, w["self_attn.v_proj.bias"], h).map(f16));
          const attended = new Array<number>(h).fill(0);
          for (let head = 0; head < nh; head++) {
            const scores = keys[l]!.map((k) => {
              let d = 0;
              for (let c = 0; c < hd; c++) d += q[head * hd + c]! * k[head * hd + c]!;
              return d / Math.sqrt(hd);
            });
            const top = Math.max(...scores);
            const e = scores.map((v) => Math.exp(v - top));
            const z = e.reduce((a, v) => a + v, 0);
            e.forEach((p, j) => {
              for (let c = 0; c < hd; c++) attended[head * hd + c]! += (p / z) * values[l]![j]![head * hd + c]!;
            });
          }
          const o = linearOf(attended, w["self_attn.out_proj.weight"]!, w["self_attn.out_proj.bias"], h);
          x = x.map((v, i) => v + o[i]!);
          const ff = linearOf(
            layerNormOf(x, w["final_layer_norm.weight"]!, w["final_layer_norm.bias"]!),
            w["fc1.weight"]!,
            w["fc1.bias"],
            f,
          ).map((v) => Math.max(0, v));
          const down = linearOf(ff, w["fc2.weight"]!, w["fc2.bias"], h);
          x = x.map((v, i) => f16(v + down[i]!));
        }
        last = x;
        position++;
      }
      const logits = linearOf(layerNormOf(last, lnF[0]!, lnF[1]!), tokenTable, undefined, vocab);
      const next = logits.indexOf(Math.max(...logits));
      generated.push(next);
      input = [next];
    }
    out.push(generated);
  }
  checkpoint.close();
  return out;
}

test("the runtime's greedy tokens equal an independent float64 implementation of OPT", async () => {
  const p = await plan({
    model: TINY,
    hardware,
    workload,
    fixed: { gbs: 2, nb: 2, percent: [50, 50, 50, 50, 0, 100] },
  });
  const r = await run(p, hardware, { weightsDir, capacityBytes: p.predicted.capacityBytes, reference: false });
  const expected = naiveGreedy(
    syntheticPrompts(4, workload.promptLen, TINY.vocabSize, 0),
    4,
    workload.promptLen,
    workload.genLen,
  );
  assert.deepEqual(r.tokens, expected);
});

test("spillway compare prints predicted, simulated and measured side by side, as JSON too", async () => {
  const { spawnSync } = await import("node:child_process");
  const out = spawnSync(
    process.execPath,
    [
      CLI,
      "compare",
      "--model",
      weightsDir,
      "--weights",
      weightsDir,
      "--hardware",
      "t4",
      "--gpu-mem",
      "0.004",
      "--prompt-len",
      "12",
      "--gen-len",
      "4",
      "--gbs",
      "2",
      "--nb",
      "2",
      "--percent",
      "0",
      "100",
      "0",
      "100",
      "100",
      "0",
      "--no-overlap",
      "--json",
    ],
    { encoding: "utf8" },
  );
  assert.equal(out.status, 0, out.stderr);
  const c = JSON.parse(out.stdout);
  for (const key of ["predicted", "simulated", "measured"]) assert.ok(c[key].throughputTokensPerSecond > 0, key);
  // Progress on stderr (a pipe: plain lines), stdout the JSON alone: the policy is scored, not searched,
  // then simulated, run and run again as the reference, each counted from 0% to 100% in at most 11 lines.
  const lines = out.stderr.trimEnd().split("\n");
  for (const phase of ["simulate", "run", "reference"]) {
    const own = lines.filter((l) => l.startsWith(`${phase}: `));
    assert.match(own[0]!, new RegExp(`^${phase}: 0% \\(0/\\d+\\)$`));
    assert.match(own.at(-1)!, new RegExp(`^${phase}: 100% \\((\\d+)/\\1\\), token 4/4`));
    assert.ok(own.length <= 11, `${phase}: ${own.length} lines`);
  }
  assert.match(out.stderr, /^run: \d+% .*token 1\/4 \(prefill\), layer 1\/2$/m, "the prefill moves layer by layer");
  assert.equal(lines.filter((l) => !/^(simulate|run|reference): \d+% /.test(l)).length, 0, out.stderr);
  assert.equal(c.matchesReference, true);
  assert.ok(
    Math.abs(
      c.relativeError.throughput -
        (c.measured.throughputTokensPerSecond - c.predicted.throughputTokensPerSecond) /
          c.predicted.throughputTokensPerSecond,
    ) < 1e-12,
  );
});

// How much the transfers overlap the compute is measured by npm run bench (bench/overlap.ts), not asserted.
test("with overlap, transfers run on worker threads and give the same tokens and bytes; without, never at the same time as a compute", async () => {
  const model: ModelSpec = {
    ...TINY,
    name: "opt-small",
    numLayers: 3,
    hiddenSize: 256,
    ffnSize: 1024,
    numHeads: 4,
    numKvHeads: 4,
    wordEmbedDim: 256,
  };
  const dir = mkdtempSync(join(tmpdir(), "spillway-overlap-"));
  try {
    synthesizeOptWeights(model, dir, { seed: 3 });
    const hw = withCapacities(resolveHardware("t4"), { gpu: 64 * 2 ** 20, cpu: 2 ** 30, disk: 2 ** 30 });
    const p = await plan({
      model,
      hardware: hw,
      workload: { promptLen: 48, genLen: 3 },
      fixed: { gbs: 4, nb: 2, percent: [0, 0, 0, 100, 100, 0] },
    });
    type Slice = { cat: string; ts: number; dur: number; ph: string };
    const slices = (path: string) =>
      (JSON.parse(readFileSync(path, "utf8")) as { traceEvents: Slice[] }).traceEvents.filter(
        (e) => e.ph === "X" && e.dur > 0,
      );
    const overlapping = (events: Slice[]) => {
      const compute = events.filter((e) => e.cat === "gpu");
      const moves = events.filter((e) => e.cat !== "gpu" && e.cat !== "cpu");
      return moves.filter((m) => compute.some((c) => m.ts < c.ts + c.dur && c.ts < m.ts + m.dur)).length;
    };
    const withOverlap = await run(p, hw, {
      weightsDir: dir,
      capacityBytes: p.predicted.capacityBytes,
      tracePath: join(dir, "on.json"),
    });
    const without = await run(p, hw, {
      weightsDir: dir,
      capacityBytes: p.predicted.capacityBytes,
      tracePath: join(dir, "off.json"),
      overlap: false,
      reference: false,
    });
    assert.equal(withOverlap.overlap, true);
    assert.equal(withOverlap.matchesReference, true);
    assert.deepEqual(without.tokens, withOverlap.tokens);
    assert.equal(overlapping(slices(join(dir, "off.json"))), 0);
    // The same bytes either way, and FlexGen's loop with overlap computes the same tokens.
    assert.deepEqual(without.bytes, withOverlap.bytes);
    const flexgen = await run(p, hw, {
      weightsDir: dir,
      capacityBytes: p.predicted.capacityBytes,
      schedule: "flexgen",
      reference: false,
    });
    assert.deepEqual(flexgen.tokens, withOverlap.tokens);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
