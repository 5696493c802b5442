import assert from "node:assert/strict";
import { test } from "node:test";
import { type ExpertBits, type ExpertPolicy, storedBytes } from "../../core/expert-policy.js";
import type { HardwareProfile } from "../../core/hardware-profile.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import type { Workload } from "../../core/workload.js";
import type { EnginePrediction, EngineStep } from "../../engines/engine-model.js";
import { engineModel } from "../../engines/engines.js";
import { kernelLaunches } from "../../engines/host-dispatch.js";
import { resolveRates } from "../../engines/kernel-rates.js";
import { HQQ_LAYOUTS, hqqStoredBitsPerValue } from "../../engines/mixtral-offloading/hqq.js";
import { mixtralOffloadingEngine } from "../../engines/mixtral-offloading.js";
import { stepTime } from "../../engines/step-time.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { routedExpertParams } from "../../planner/moe/evaluate-moe-policy.js";
import { moePolicy } from "../../planner/moe/moe-search.js";
import { touchedExperts } from "../../planner/moe/routing-profile.js";
import { BASE_EXPERT_POLICY } from "../moe-fixture.js";

const mixtral = findCatalogueModel("mixtral-8x7b")!;
const moe = mixtral.moe!;
const L = mixtral.numLayers;
const expertParams = routedExpertParams(mixtral);
const t4 = resolveHardware("t4");
const workload: Workload = { promptLen: 64, genLen: 32 };
/** The notebook's configuration: offload_per_layer 4 (4 slots of 8), 2-bit experts, 4-bit attention. */
const notebook: ExpertPolicy = { ...BASE_EXPERT_POLICY, cacheSize: 4, bits: 2 };

function predict(
  experts: Partial<ExpertPolicy> = {},
  options: { hardware?: HardwareProfile; batch?: number; workload?: Workload } = {},
): EnginePrediction {
  return mixtralOffloadingEngine.predict({
    model: mixtral,
    hardware: options.hardware ?? t4,
    workload: options.workload ?? workload,
    policy: moePolicy(mixtral, options.batch ?? 1, { ...notebook, ...experts }, false),
  });
}

const missSteps = (p: EnginePrediction, phase: "prefill" | "decode") =>
  p.steps.filter((s) => s.phase === phase && s.label.includes("cache miss"));
const missesOf = (steps: readonly EngineStep[]) => steps.reduce((a, s) => a + s.count, 0);
const withDispatch = (seconds: number): HardwareProfile => ({
  ...t4,
  cpu: { ...t4.cpu, eagerDispatchSeconds: { measured: { value: seconds, source: "test" } } },
});

test("mixtral-offloading: registered under its name", () => {
  assert.equal(engineModel("mixtral-offloading"), mixtralOffloadingEngine);
});

test("mixtral-offloading: a swap moves one expert each way, at the planner's storedBytes", () => {
  for (const bits of [2, 3, 4] as const) {
    const p = predict({ bits });
    const expertBytes = storedBytes(expertParams, bits);
    for (const phase of ["prefill", "decode"] as const) {
      const [miss] = missSteps(p, phase);
      assert.ok(miss, `${bits}-bit ${phase}: a miss step`);
      const copies = miss.chains.flat().filter((o) => o.lane === "h2d" || o.lane === "d2h");
      assert.deepEqual(
        copies.map((o) => [o.lane, o.bytes]),
        [
          ["h2d", expertBytes],
          ["d2h", expertBytes],
        ],
        `${bits}-bit ${phase}: the missing expert in, the evicted one written back`,
      );
    }
  }
});

test("mixtral-offloading: the HQQ layouts reproduce the published Mixtral-8x7B expert sizes", () => {
  // moe-offloading.md (bytes per Mixtral-8x7B expert): HQQ 2-bit g16 66.4 MB, 3-bit g64 76.1, 4-bit g64 93.6.
  const published = { 2: 66.4e6, 3: 76.1e6, 4: 93.6e6 } as const;
  for (const bits of [2, 3, 4] as const) {
    const bytes = (expertParams * hqqStoredBitsPerValue(HQQ_LAYOUTS[bits])) / 8;
    assert.ok(Math.abs(bytes - published[bits]) < 0.1e6, `${bits}-bit: ${bytes} vs ${published[bits]}`);
  }
});

test("mixtral-offloading: more cache slots, fewer misses, never slower; each miss costs at least its copies", () => {
  const rates = resolveRates(t4).rates;
  let previous: EnginePrediction | undefined;
  for (let slots = 1; slots <= moe.numExperts; slots++) {
    const p = predict({ cacheSize: slots });
    const expertBytes = storedBytes(expertParams, notebook.bits);
    // Both copies run on the default stream, one after the other.
    const copySeconds = expertBytes / rates.h2dPinnedBytesPerSecond + expertBytes / rates.d2hPinnedBytesPerSecond;
    for (const miss of missSteps(p, "decode"))
      assert.ok(stepTime(miss).seconds >= copySeconds, `slots ${slots}: ${stepTime(miss).seconds} < ${copySeconds}`);
    if (previous) {
      const fewer = missesOf(missSteps(previous, "decode")) - missesOf(missSteps(p, "decode"));
      assert.ok(fewer >= 0, `slots ${slots}: misses grew by ${-fewer}`);
      // Every miss saved saves at least its two copies.
      assert.ok(
        previous.decodeSeconds - p.decodeSeconds >= fewer * copySeconds * (1 - 1e-12),
        `slots ${slots}: ${previous.decodeSeconds - p.decodeSeconds} s saved for ${fewer} misses`,
      );
      assert.ok(p.totalSeconds <= previous.totalSeconds, `slots ${slots}: slower`);
    }
    previous = p;
  }
  assert.equal(missesOf(missSteps(previous!, "decode")) + missesOf(missSteps(previous!, "prefill")), 0);
  const linkBytes = previous!.steps.flatMap((s) => s.chains.flat()).filter((o) => o.lane === "h2d" || o.lane === "d2h");
  assert.equal(
    linkBytes.reduce((a, o) => a + o.bytes, 0),
    0,
    "every expert resident: no swaps, no write-backs",
  );
});

test("mixtral-offloading: one extra slot per layer moves one expert per layer from pinned host memory to the GPU", () => {
  const expertBytes = storedBytes(expertParams, notebook.bits);
  const a = predict({ cacheSize: 3 });
  const b = predict({ cacheSize: 4 });
  assert.ok(Math.abs(b.peakBytes.gpu - a.peakBytes.gpu - L * expertBytes) < 1);
  assert.ok(Math.abs(a.peakBytes.cpu - b.peakBytes.cpu - L * expertBytes) < 1);
  assert.equal(b.peakBytes.disk, 0);
  // The notebook's configuration fits a 16 GB T4 (the notebook: "approximately 16 GB of VRAM").
  assert.ok(b.feasible, b.infeasibleReasons.join("; "));
});

test("mixtral-offloading: host dispatch scales with the eager dispatch rate and bounds the small steps", () => {
  const at = (seconds: number) => predict({}, { hardware: withDispatch(seconds) });
  const one = at(10e-6);
  const two = at(20e-6);
  // The Triton launcher's Python path is host time of its own, which the dispatch rate does not scale.
  const tritonSeconds = (p: EnginePrediction) =>
    p.steps.reduce(
      (a, s) =>
        a +
        s.count * s.chains.flat().reduce((b, o) => b + (o.name.includes("Triton kernel launches") ? o.seconds : 0), 0),
      0,
    );
  assert.ok(tritonSeconds(one) > 0);
  assert.equal(tritonSeconds(two), tritonSeconds(one));
  const dispatchSeconds = (p: EnginePrediction) => p.laneSeconds.hostThread - tritonSeconds(p);
  // With no dispatch time per call, the host still makes every torch kernel's launch call
  // (engines/host-dispatch.ts): the step's GPU-lane launches times the profile's launch time.
  const zero = at(0);
  const rates = resolveRates(t4).rates;
  const launchSeconds = zero.steps.reduce(
    (a, s) => a + s.count * kernelLaunches(s.chains.flat()) * rates.gpuKernelLaunchSeconds,
    0,
  );
  assert.ok(launchSeconds > 0);
  assert.ok(Math.abs(dispatchSeconds(zero) / launchSeconds - 1) < 1e-9);
  assert.ok(dispatchSeconds(one) > dispatchSeconds(zero));
  // The rest is linear in the dispatch rate.
  assert.ok(
    Math.abs((dispatchSeconds(two) - dispatchSeconds(zero)) / (dispatchSeconds(one) - dispatchSeconds(zero)) - 2) <
      1e-9,
  );
  assert.ok(two.totalSeconds >= one.totalSeconds);
  // With dispatch slow enough that the host bounds every step but the swaps, the wall time grows by
  // exactly the extra dispatch time of those steps.
  const slow = at(1e-3);
  const slower = at(2e-3);
  const hostSeconds = (p: EnginePrediction) =>
    p.steps
      .filter((s) => s.phase === "decode" && !s.label.includes("cache miss"))
      .reduce((a, s) => a + s.count * stepTime({ ...s, chains: [s.chains[0]!] }).seconds, 0);
  const grown = slower.decodeSeconds - slow.decodeSeconds;
  assert.ok(Math.abs(grown - (hostSeconds(slower) - hostSeconds(slow))) < 1e-9 * slower.decodeSeconds);
  assert.equal(slower.bottleneck, "host dispatch");
});

test("mixtral-offloading: refuses dense models, other MoE families and non-HQQ precisions, with the reason", () => {
  const dense = findCatalogueModel("mistral-7b")!;
  const reason = mixtralOffloadingEngine.unsupported(dense);
  assert.match(reason ?? "", /mistral-7b is a dense model.*Mixture-of-Experts/);
  assert.throws(
    () =>
      mixtralOffloadingEngine.predict({
        model: dense,
        hardware: t4,
        workload,
        policy: moePolicy(mixtral, 1, notebook, false),
      }),
    /mixtral-offloading cannot run this: mistral-7b is a dense model/,
  );
  assert.match(mixtralOffloadingEngine.unsupported(findCatalogueModel("qwen1.5-moe-a2.7b")!) ?? "", /Mixtral only/);
  for (const bits of [16, 8] as ExpertBits[]) {
    const policy = moePolicy(mixtral, 1, { ...notebook, bits }, false);
    assert.match(mixtralOffloadingEngine.unsupported(mixtral, policy) ?? "", /nbits in \[2, 3, 4\]/);
    const attention = moePolicy(mixtral, 1, { ...notebook, attentionBits: bits }, false);
    assert.match(mixtralOffloadingEngine.unsupported(mixtral, attention) ?? "", /replace_attn_layers/);
  }
  assert.equal(mixtralOffloadingEngine.unsupported(mixtral, moePolicy(mixtral, 1, notebook, false)), undefined);
});

test("mixtral-offloading: no prefetch, LRU only, pinned host memory only: other asks are realized and noted", () => {
  const plain = predict();
  const asked = predict({ prefetchExperts: 2, eviction: "lfu", offloadTier: "disk", cacheSize: 0 });
  const realized = asked.realizedPolicy.experts!;
  assert.deepEqual(
    [realized.prefetchExperts, realized.eviction, realized.offloadTier, realized.cacheSize],
    [0, "lru", "cpu", 1],
  );
  assert.ok(asked.notes.some((n) => /does not prefetch/.test(n)));
  assert.ok(asked.notes.some((n) => /cacheSize 0 realized as 1/.test(n)));
  const prefetchOnly = predict({ prefetchExperts: 2 });
  assert.equal(prefetchOnly.totalSeconds, plain.totalSeconds, "a prefetch request changes nothing");
  assert.equal(plain.laneSeconds.diskRead, 0);
});

test("mixtral-offloading: a batch is one forward; its decode steps select the experts the batch's tokens touch", () => {
  const batch = 4;
  const p = predict({}, { batch });
  const decodeTokens = workload.genLen - 1;
  const selected = p.steps
    .filter((s) => s.phase === "decode" && s.label.includes("selected expert"))
    .reduce((a, s) => a + s.count, 0);
  assert.ok(Math.abs(selected - L * decodeTokens * touchedExperts(moe, batch)) < 1e-6 * selected);
  assert.equal(p.realizedPolicy.gpuBatchSize, batch);
  assert.ok(Math.abs(p.throughputTokensPerSecond - (batch * workload.genLen) / p.totalSeconds) < 1e-9);
});

// Known gap (issue 16): the model is 1.5-1.8x faster than the paper's measurements (host work counted as a
// lower bound); the 25% target stays and is reported as a TODO. With the host-dispatch lane (each torch
// kernel's launch call on the host, engines/host-dispatch.ts) and the sourced 2.261 us per operation
// replacing the unsourced 10 us the A100 profile fell back to: A100 2-bit 6.16 tok/s (was 4.88), 3-bit 5.53
// (was 4.47), T4 Colab 2-bit 2.38 (was 2.42). The launches alone slow the A100 rows by 8%; the smaller
// per-operation figure speeds them up by 39%. With the a100-80g profile's measured pinned link (25.8 / 25.7
// GB/s, a bandwidthTest on an A100 over PCIe 4.0, in place of the 31.5 GB/s datasheet): A100 2-bit 5.35, 3-bit
// 4.77; the T4 Colab row is unchanged. With the Triton launch at PR #3503's 13-parameter figure (62 us in
// place of its 6-parameter 40 us; the HQQ kernels take 20): A100 2-bit 5.15, 3-bit 4.62, T4 Colab 2.36.
test("mixtral-offloading: validation against the paper's measured speeds (not used to set any rate), within 25%", {
  todo: "KNOWN GAP: predicted 1.5-1.8x too fast (A100 2-bit 5.15 vs 2.918, 3-bit 4.62 vs 2.683; T4 Colab 2.36 vs 1.567)",
}, () => {
  // arXiv 2312.17238, Table 2, row "W/o expert pre-loading" (LRU cache, no prefetch: what the public
  // code does), Mixtral-8x7B-Instruct, 4-bit attention, batch 1, tokens per second: 2-bit experts A100
  // 2.918, T4 (Colab) 1.567; 3-bit experts A100 2.683. Cache k = 4 on these GPUs (section 4.3).
  // The paper's T4 is a free Colab instance (2 vCPUs): the t4-colab profile; the a100-80g profile's pinned
  // link is a bandwidthTest measurement on an A100 over PCIe 4.0 on another host, not the paper's. The RTX
  // 3060 is left out: the paper's ran on PCIe Gen.3, the rtx3060 profile is a PCIe 4.0 desktop.
  const cases = [
    { hardware: "a100-80g", bits: 2, measured: 2.918 },
    { hardware: "t4-colab", bits: 2, measured: 1.567 },
    { hardware: "a100-80g", bits: 3, measured: 2.683 },
  ] as const;
  const generation: Workload = { promptLen: 128, genLen: 256 };
  const misses: string[] = [];
  for (const c of cases) {
    const p = predict({ bits: c.bits }, { hardware: resolveHardware(c.hardware), workload: generation });
    const tokensPerSecond = (generation.genLen - 1) / p.decodeSeconds;
    const ratio = tokensPerSecond / c.measured;
    if (Math.abs(ratio - 1) > 0.25)
      misses.push(`${c.hardware} ${c.bits}-bit: ${tokensPerSecond.toFixed(3)} tok/s vs ${c.measured}`);
  }
  assert.deepEqual(misses, []);
});
