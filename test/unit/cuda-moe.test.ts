import assert from "node:assert/strict";
import { test } from "node:test";
import type { ExpertPolicy } from "../../core/expert-policy.js";
import { moeWeightBytes } from "../../core/moe-weight-bytes.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import type { Resource } from "../../core/resources.js";
import { evaluateMoePolicy } from "../../planner/moe/evaluate-moe-policy.js";
import { moePolicy } from "../../planner/moe/moe-search.js";
import { uniformRoutingProfile } from "../../planner/moe/routing-profile.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { cudaExpertDevice } from "../../runtime/cuda/cuda-expert-device.js";
import { createEmulatedNative } from "../../runtime/cuda/emulated-native.js";
import { CUDA_NATIVE_FUNCTIONS, type CudaNative } from "../../runtime/cuda/native-api.js";
import { DeviceOutOfMemory } from "../../runtime/device-arena.js";
import { cudaMoeDeviceBytes, deviceBudget, moePassShape } from "../../runtime/moe/device-budget.js";
import type { MoeRunResult } from "../../runtime/moe/moe-runner.js";
import type { TraceSink } from "../../simulator/trace-sink.js";
import { BASE_EXPERT_POLICY, TINY_MOE_RUN, tinyMixtralCheckpoint } from "../moe-fixture.js";

// The CUDA backend's MoE path on the emulated device (runtime/cuda/emulated-native.ts): its streams run
// deferred, in a seeded order, so a copy or a kernel that is not ordered by an event reads stale bytes.
// (The host build of kernels.cu and a real GPU run the runtime matrix's MoE rows: test/integration/runtime.test.ts.)
const { spec, run } = tinyMixtralCheckpoint("spillway-cuda-moe-", BASE_EXPERT_POLICY);
const GEN_LEN = 8;
const CAPACITY = 8 * 2 ** 20;

const emulated = (seed: number) => createEmulatedNative({ deviceBytes: 32 * 2 ** 20, seed });
const onCuda = (
  x: Partial<ExpertPolicy>,
  native: CudaNative,
  extra: { readonly deviceCapacityBytes?: number; readonly genLen?: number } = {},
) =>
  run(x, {
    genLen: GEN_LEN,
    deviceCapacityBytes: CAPACITY,
    expertDevice: cudaExpertDevice(native),
    ...extra,
  });

/** The counts both backends must agree on (copy times are each backend's own). */
const counts = (r: MoeRunResult) => ({ ...r.experts, fetchSeconds: 0 });

/** The plan's predicted GPU peak for the tiny run's pass (any hardware: memory does not depend on it). */
const plannedGpuPeak = (x: Partial<ExpertPolicy>, genLen = GEN_LEN) =>
  evaluateMoePolicy(
    spec,
    hardwareRates(resolveHardware("t4")),
    { promptLen: TINY_MOE_RUN.promptLen, genLen },
    moePolicy(spec, TINY_MOE_RUN.batch, { ...BASE_EXPERT_POLICY, ...x }, false),
    uniformRoutingProfile(spec.moe!),
  ).peakBytes.gpu;

test("on the emulated device, MoE runs generate the CPU backend's reference tokens and count what the CPU backend counts, and the device pool's peak is the plan's predicted GPU peak to the byte: 16-, 4- and 2-bit experts, LRU and LFU, CPU misses, speculative prefetch", async () => {
  const configs: Partial<ExpertPolicy>[] = [
    { bits: 16, attentionBits: 16 },
    { bits: 4, attentionBits: 4 },
    { bits: 2, attentionBits: 8, eviction: "lfu" },
    { bits: 16, attentionBits: 16, eviction: "lfu", compute: "cpu" },
    { bits: 4, attentionBits: 16, cacheSize: 1, prefetchExperts: 2, prefetchLayers: 1 },
  ];
  const { batch: B, promptLen } = TINY_MOE_RUN;
  for (const [i, x] of configs.entries()) {
    const label = JSON.stringify(x);
    const cpu = await run(x, { genLen: GEN_LEN, deviceCapacityBytes: CAPACITY });
    const cuda = await onCuda(x, emulated(11 + i));
    assert.equal(cuda.matchesReference, true, label);
    assert.deepEqual(cuda.tokens, cpu.tokens, label);
    assert.deepEqual(cuda.referenceTokens, cpu.referenceTokens, label);
    assert.deepEqual(counts(cuda), counts(cpu), label);
    assert.deepEqual(cuda.routing.experts, cpu.routing.experts, label);
    // The model is not degenerate, and the policy really fetched, prefetched or computed on the CPU.
    assert.ok(
      cuda.tokens.some((t) => new Set(t).size > 1),
      label,
    );
    if (x.compute === "cpu") assert.ok(cuda.experts.cpuComputed > 0 && cuda.experts.demandFetches === 0, label);
    else assert.ok(cuda.experts.demandFetches > 0 && cuda.experts.cpuComputed === 0, label);
    if (x.prefetchExperts) assert.ok(cuda.experts.prefetches > 0 && cuda.experts.prefetchUsed > 0, label);
    const perExpert = moeWeightBytes(spec, { ...BASE_EXPERT_POLICY, ...x }).bytesPerExpert;
    assert.equal(cuda.experts.fetchedBytes, (cuda.experts.demandFetches + cuda.experts.prefetches) * perExpert, label);
    assert.ok(cuda.device.peakBytes <= CAPACITY, label);
    // Every block the pass allocates is counted by the one function the planner and the runtime share.
    const counted = cudaMoeDeviceBytes(spec, { ...BASE_EXPERT_POLICY, ...x }, moePassShape(B, promptLen, GEN_LEN));
    assert.equal(cuda.device.peakBytes, counted.totalBytes, label);
    assert.equal(cuda.device.peakBytes, plannedGpuPeak(x), label);
    assert.ok(counted.decoderActivationBytes > 0 && counted.expertActivationBytes > 0, label);
    // The CPU backend's arena holds the same weights, KV cache and experts, its activations off it.
    assert.ok(cpu.device.peakBytes < cuda.device.peakBytes, label);
    if (x.bits !== 16) assert.ok(cuda.quantization, label);
  }
});

test("a copy the expert kernel does not wait for (no stream-event waits) gives other tokens on the emulated device", async () => {
  const native = emulated(5);
  // Every streamWaitEvent dropped: kernels and copies race as a missing wait would let them.
  const racing: CudaNative = Object.create(native, { streamWaitEvent: { value: () => undefined } });
  const r = await onCuda({ bits: 16, attentionBits: 16 }, racing);
  assert.equal(r.matchesReference, false);
});

test("the expert cache, staging block and prefetch buffers are blocks of the device pool, named when the plan's memory is too small", async () => {
  await assert.rejects(
    onCuda({ bits: 16, attentionBits: 16, cacheSize: 4 }, emulated(3), { deviceCapacityBytes: 2 ** 20 }),
    (error: unknown) => {
      assert.ok(error instanceof DeviceOutOfMemory, String(error));
      assert.match(
        error.message,
        /allocating (layer \d+ expert slot \d+|expert staging|expert prefetch buffer \d+) \(/,
      );
      return true;
    },
  );
});

test("a GPU of exactly the counted bytes runs an MoE pass on the CUDA backend; one pool block less is refused, naming the block", async () => {
  const x = { bits: 4, attentionBits: 4, cacheSize: 1, prefetchExperts: 2, prefetchLayers: 1 } as const;
  const genLen = 3;
  const { batch: B, promptLen } = TINY_MOE_RUN;
  const need = cudaMoeDeviceBytes(spec, { ...BASE_EXPERT_POLICY, ...x }, moePassShape(B, promptLen, genLen)).totalBytes;
  assert.equal(need, plannedGpuPeak(x, genLen));
  const fits = await onCuda(x, emulated(41), { deviceCapacityBytes: need, genLen });
  assert.equal(fits.matchesReference, true);
  assert.equal(fits.device.peakBytes, need);
  await assert.rejects(onCuda(x, emulated(41), { deviceCapacityBytes: need - 1, genLen }), (error: unknown) => {
    assert.ok(error instanceof DeviceOutOfMemory, String(error));
    assert.match(error.message, /device memory exhausted allocating .+ \(\d+ bytes\)/);
    return true;
  });
});

/** A run on the emulated device with its trace's slices: `on(kind)` and the bytes `total(kind)`. */
async function traced(x: Partial<ExpertPolicy>, seed: number) {
  const slices: { kind: string; resource: Resource; start: number; end: number; bytes: number }[] = [];
  const sink: TraceSink = {
    events: 0,
    task: () => undefined,
    slice: (kind, resource, start, end, bytes) => void slices.push({ kind, resource, start, end, bytes }),
    memory: () => undefined,
    describe: () => undefined,
    close: () => undefined,
    abort: () => undefined,
  };
  const r = await run(x, {
    genLen: GEN_LEN,
    deviceCapacityBytes: CAPACITY,
    expertDevice: cudaExpertDevice(emulated(seed)),
    trace: sink,
  });
  const on = (kind: string) => slices.filter((s) => s.kind === kind);
  const total = (kind: string) => on(kind).reduce((sum, s) => sum + s.bytes, 0);
  return { r, on, total };
}

test("an MoE run on the CUDA backend traces the decoder's and the experts' kernels on the GPU lane (device events), expert copies, rows and activations on the PCIe lanes", async () => {
  const x = { bits: 16, attentionBits: 16, cacheSize: 1, prefetchExperts: 2, prefetchLayers: 1 } as const;
  const { r, on, total } = await traced(x, 9);
  const perExpert = moeWeightBytes(spec, { ...BASE_EXPERT_POLICY, ...x }).bytesPerExpert;
  assert.ok(on("expert").length > 0 && on("expert").every((s) => s.resource === "gpu" && s.end > s.start));
  assert.equal(on("load-expert").length, r.experts.demandFetches);
  assert.equal(on("prefetch-expert").length, r.experts.prefetches);
  for (const kind of ["load-expert", "prefetch-expert", "stream-expert"])
    assert.ok(
      on(kind).every((s) => s.resource === "h2d" && s.bytes === perExpert && s.end > s.start),
      kind,
    );
  // The device experts' rows and outputs move device to device (cuda-expert-rows.ts): none cross the bus.
  assert.equal(on("send-expert-rows").length + on("return-expert-rows").length, 0);
  // The decoder's own work, timed by device events: per step the embedding and the LM head, per layer
  // attention with the router, then the experts' combine.
  assert.equal(on("compute").length, GEN_LEN * (2 + 2 * spec.numLayers));
  assert.ok(on("compute").every((s) => s.resource === "gpu" && s.end > s.start));
  // The decoder's activations, per step: tokens up and next tokens back; per layer: the logits back and,
  // for each layer with a layer prefetchLayers ahead, the speculative guesses the device computed (the
  // lookahead router's top-k: an expert id and a weight per row and guess) instead of the router input
  // the host applied that router to; the experts' gate weights and the routed rows' indices (two int32
  // each: router input row, output slot) up.
  const { batch: B, promptLen } = TINY_MOE_RUN;
  const { hiddenSize: h, numLayers: L } = spec;
  const { numExperts: E, expertsPerToken: k } = spec.moe!;
  const rowsPerStep = [B * promptLen, ...Array.from({ length: GEN_LEN - 1 }, () => B)];
  const sum = (f: (m: number) => number) => rowsPerStep.reduce((acc, m) => acc + f(m), 0);
  const guessingLayers = L - x.prefetchLayers;
  const back = total("return-activations");
  assert.equal(
    back,
    sum((m) => 4 * (B + L * m * E + guessingLayers * m * 2 * x.prefetchExperts)),
  );
  // With the lookahead on the host, every layer's router input came back besides the logits.
  const hostLookahead = sum((m) => 4 * (B + L * m * (h + E)));
  assert.ok(back < hostLookahead / 4, `${back} bytes back, ${hostLookahead} with the lookahead on the host`);
  assert.equal(on("return-activations").length, GEN_LEN * (L + 1)); // one copy per layer and the next tokens
  assert.equal(
    total("send-activations"),
    sum((m) => 4 * (m + L * m * k * 3)),
  );
  assert.ok(on("return-activations").every((s) => s.resource === "d2h" && s.end > s.start));
  assert.ok(on("send-activations").every((s) => s.resource === "h2d" && s.end > s.start));
  assert.equal(r.timing.bytes.d2h, total("return-expert-rows") + total("return-activations"));
  assert.equal(
    r.timing.bytes.h2d,
    total("load-expert") +
      total("prefetch-expert") +
      total("stream-expert") +
      total("send-expert-rows") +
      total("send-activations"),
  );
});

test("per step only the gate logits and gate weights cross the bus for device experts, and a CPU miss moves only its own rows: far fewer bytes than the host round trip of the router input and the outputs by rank", async () => {
  const { batch: B, promptLen } = TINY_MOE_RUN;
  const { hiddenSize: h, numLayers: L } = spec;
  const { numExperts: E, expertsPerToken: k } = spec.moe!;
  const rowsPerStep = [B * promptLen, ...Array.from({ length: GEN_LEN - 1 }, () => B)];
  const sum = (f: (m: number) => number) => rowsPerStep.reduce((acc, m) => acc + f(m), 0);
  // What a step moved when expert rows went through the host: the router input back, the outputs by
  // rank up (and each device expert's rows up and outputs down besides).
  const roundTripAtLeast = sum((m) => 4 * L * m * (h + k * h));
  for (const x of [
    { bits: 16, attentionBits: 16 },
    { bits: 4, attentionBits: 4, compute: "cpu" },
  ] as const) {
    const label = JSON.stringify(x);
    const { r, on, total } = await traced(x, 31);
    assert.equal(r.matchesReference, true, label);
    assert.equal(on("send-expert-rows").length + on("return-expert-rows").length, 0, label);
    const back = total("return-activations") - sum((m) => 4 * (B + L * m * E)); // next tokens, logits
    const up = total("send-activations") - sum((m) => 4 * (m + L * m * k)); // token ids, gate weights
    // The rest: the routed rows' indices (8 bytes per row and rank) for each layer that runs a device
    // expert, and the CPU misses' rows, each back once per expert it routes to and its output up.
    const indexBytes = up - back;
    assert.equal(back % (4 * h), 0, label);
    if (x.compute === "cpu") {
      assert.ok(r.experts.cpuComputed > 0 && back >= r.experts.cpuComputed * 4 * h, label);
      assert.ok(indexBytes >= 0 && indexBytes < sum((m) => 8 * L * m * k) && indexBytes % (8 * B * k) === 0, label);
    } else {
      assert.equal(back, 0, label);
      assert.equal(
        indexBytes,
        sum((m) => 8 * L * m * k),
        label,
      );
    }
    const moved = total("return-activations") + total("send-activations");
    assert.ok(moved < roundTripAtLeast, `${label}: ${moved} bytes of activations, ${roundTripAtLeast} before`);
  }
});

/** `native` with every call counted by name. */
function counted(native: CudaNative): {
  readonly native: CudaNative;
  readonly calls: (name: keyof CudaNative) => number;
} {
  const calls = new Map<string, number>();
  const wrapped = Object.fromEntries(
    CUDA_NATIVE_FUNCTIONS.map((name) => [
      name,
      (...args: unknown[]) => {
        calls.set(name, (calls.get(name) ?? 0) + 1);
        return (native[name] as (...a: unknown[]) => unknown).apply(native, args);
      },
    ]),
  ) as unknown as CudaNative;
  return { native: wrapped, calls: (name) => calls.get(name) ?? 0 };
}

test("on the CUDA backend the decoder runs on the device: per step and layer RMSNorms, q/k/v/o and router GEMMs, RoPE, GQA attention per sequence and the experts' combine are device launches, and only the logits (and a CPU miss's rows) come back", async () => {
  for (const x of [
    { bits: 16, attentionBits: 16 },
    { bits: 4, attentionBits: 4, compute: "cpu" },
  ] as const) {
    const label = JSON.stringify(x);
    const { native, calls } = counted(emulated(21));
    const r = await onCuda(x, native);
    assert.equal(r.matchesReference, true, label);
    const steps = GEN_LEN; // the prefill and GEN_LEN - 1 decode steps
    const L = spec.numLayers;
    const B = TINY_MOE_RUN.batch;
    assert.equal(calls("embedding"), steps, label);
    assert.equal(calls("rmsNorm"), steps * (2 * L + 1), label); // two per layer, the final norm
    assert.equal(calls("rope"), steps * L * 2, label); // queries and keys
    assert.equal(calls("gqaAttention"), steps * L * B, label);
    assert.equal(calls("linearGroupwise"), steps * (5 * L + 1), label); // q, k, v, o, router; the LM head
    assert.equal(calls("moeCombine"), steps * L, label);
    assert.equal(calls("argmaxRows"), steps, label);
    // Per layer the logits come back, per step the next tokens; nothing of the device experts (their
    // rows gathered and outputs scattered by index on the device, a launch each), and of a CPU miss only
    // its rows, a copy each (its outputs go up the same way).
    const deviceExperts = calls("expertSwiglu");
    assert.equal(calls("gatherRows"), deviceExperts, label);
    assert.equal(calls("scatterRows"), deviceExperts, label);
    if (x.compute === "cpu") assert.ok(r.experts.cpuComputed > 0 && deviceExperts < r.experts.lookups, label);
    else assert.ok(deviceExperts > 0, label);
    const missRows = calls("memcpyDtoH") - steps * (L + 1);
    if (x.compute === "cpu") assert.ok(missRows >= r.experts.cpuComputed, label);
    else assert.equal(missRows, 0, label);
    // Weights, KV cache and experts are all in the device pool, and the activations besides.
    const budget = deviceBudget(spec, { ...BASE_EXPERT_POLICY, ...x }, B, TINY_MOE_RUN.promptLen + GEN_LEN - 1);
    assert.ok(r.device.peakBytes > budget.totalBytes && r.device.peakBytes <= CAPACITY, label);
  }
});

test("speculative prefetch on the CUDA backend: the lookahead router's product and top-k run on the device (a GEMM and a routerTopK per guessing layer and step), no router input comes back, and the guesses are the CPU backend's", async () => {
  const x = { bits: 16, attentionBits: 16, cacheSize: 1, prefetchExperts: 2, prefetchLayers: 1 } as const;
  const genLen = 3;
  const { native, calls } = counted(emulated(51));
  const cuda = await onCuda(x, native, { genLen });
  const cpu = await run(x, { genLen, deviceCapacityBytes: CAPACITY });
  assert.equal(cuda.matchesReference, true);
  const L = spec.numLayers;
  const guessing = L - x.prefetchLayers;
  assert.equal(calls("routerTopK"), genLen * guessing);
  assert.equal(calls("linearGroupwise"), genLen * (5 * L + 1 + guessing)); // q, k, v, o, router, lookahead; LM head
  // Per step: each layer's logits, each guessing layer's guesses, the next tokens; nothing else.
  assert.equal(calls("memcpyDtoH"), genLen * (L + 1 + guessing));
  const guesses = cuda.routing.guesses!;
  assert.ok(guesses && cuda.experts.prefetches > 0);
  assert.deepEqual(guesses.experts, cpu.routing.guesses!.experts);
  // The weights: route() of logits that the device's GEMM and the CPU's linear compute within fp32
  // rounding of each other (the layers' own gate weights differ between the backends the same way).
  const cpuWeights = cpu.routing.guesses!.weights;
  assert.equal(guesses.weights.length, cpuWeights.length);
  for (const [i, w] of guesses.weights.entries())
    assert.ok(Math.abs(w - cpuWeights[i]!) <= 1e-6, `guess weight ${i}: ${w} vs ${cpuWeights[i]}`);
  assert.deepEqual(counts(cuda), counts(cpu));
});
