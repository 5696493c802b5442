import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { ExpertBits, ExpertPolicy } from "../../core/expert-policy.js";
import { isExpertTensor } from "../../core/model-spec.js";
import { moeWeightBytes } from "../../core/moe-weight-bytes.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { DeviceOutOfMemory } from "../../runtime/device-arena.js";
import { deviceBudget } from "../../runtime/moe/device-budget.js";
import { quantizedByteLength } from "../../runtime/moe/expert-quantization.js";
import { HomeCopies } from "../../runtime/moe/home-copies.js";
import { loadMoeCheckpoint, type MoeCheckpoint } from "../../runtime/moe/moe-checkpoint.js";
import { runMoe } from "../../runtime/moe/moe-runner.js";
import {
  LogitsRecorder,
  quantizedFidelity,
  quantizedTolerance,
  ROUTER_FLIP_ERROR_FLOOR,
} from "../../runtime/moe/quantized-fidelity.js";
import { nonExpertTensorBits } from "../../runtime/moe/quantized-weights.js";
import { mixtralTensorShapes } from "../../runtime/moe/synth-mixtral-weights.js";
import { synthesizeMoeWeights } from "../../runtime/moe/synth-moe-weights.js";
import { random } from "../helpers.js";
import { BASE_EXPERT_POLICY, TINY_MOE_RUN, tinyMixtralCheckpoint } from "../moe-fixture.js";

const { spec, run, dir } = tinyMixtralCheckpoint("spillway-moe-quantized-", BASE_EXPERT_POLICY);
const base = BASE_EXPERT_POLICY;
const { batch: BATCH, promptLen: PROMPT_LEN, genLen: GEN_LEN } = TINY_MOE_RUN;

test("quantised runs equal the all-resident run of the same quantised weights, token for token, whatever the caching", async () => {
  const configs: Array<[Partial<ExpertPolicy>, { threads?: boolean }]> = [
    [{ cacheSize: 0 }, {}],
    [{ cacheSize: 2, compute: "cpu", bits: 2, attentionBits: 8 }, {}],
    [{ cacheSize: 1, prefetchExperts: 3, prefetchLayers: 2, bits: 3, attentionBits: 16 }, { threads: true }],
    // Speculative guesses through quantised routers (the lookahead reads them as the model does).
    [{ cacheSize: 1, prefetchExperts: 2, prefetchLayers: 1, bits: 4, attentionBits: 4 }, {}],
  ];
  for (const [x, extra] of configs) {
    const r = await run(x, extra);
    const label = JSON.stringify(x);
    assert.equal(r.matchesReference, true, label);
    assert.deepEqual(r.tokens, r.referenceTokens, label);
    assert.deepEqual(r.routing.experts, r.referenceRouting.experts, label);
    const q = r.quantization!;
    assert.equal(q.bits, x.bits ?? 4);
    // The quantised reference is not the fp16 one: quantisation changed some token.
    assert.notDeepEqual(r.referenceTokens, q.fp16Tokens, label);
    assert.ok(q.tokenAgreement < 1, label);
    // Every expert copy moved exactly the planner's bytes per expert.
    const perExpert = moeWeightBytes(spec, { ...base, ...x }).bytesPerExpert;
    assert.equal(r.experts.fetchedBytes, (r.experts.demandFetches + r.experts.prefetches) * perExpert, label);
    if (x.compute !== "cpu") assert.ok(r.experts.demandFetches > 0, label);
    if (x.prefetchExperts) assert.ok(r.experts.guessRecall > 0.3 && r.routing.guesses, label);
  }
});

test("the device arena holds the planner's quantised bytes: experts exactly, non-expert tensors summing to its count", async () => {
  const aligned = (bytes: number) => Math.ceil(bytes / 64) * 64;
  for (const [bits, attentionBits] of [
    [8, 16],
    [4, 4],
    [3, 8],
    [2, 2],
  ] as [ExpertBits, ExpertBits][]) {
    const policy = { ...base, bits, attentionBits, cacheSize: 3 };
    const planner = moeWeightBytes(spec, policy);
    const budget = deviceBudget(spec, policy, BATCH, PROMPT_LEN + GEN_LEN - 1);
    const label = `${bits}/${attentionBits} bits`;
    assert.equal(budget.expertBytes, planner.bytesPerExpert, label);
    assert.equal(budget.expertCacheBytes, 3 * spec.numLayers * aligned(planner.bytesPerExpert), label);
    // The arena's non-expert blocks, before each is rounded up to 64 bytes, add up to the planner's count.
    const stored = mixtralTensorShapes(spec)
      .filter((t) => !isExpertTensor(t.name))
      .map((t) =>
        quantizedByteLength(
          t.shape.reduce((a, b) => a * b, 1),
          nonExpertTensorBits(t.name, attentionBits),
        ),
      );
    assert.equal(
      stored.reduce((a, b) => a + b, 0),
      planner.nonExpertBytes,
      label,
    );
    assert.equal(
      budget.nonExpertBytes,
      stored.map(aligned).reduce((a, b) => a + b, 0),
      label,
    );
    if (bits === 4 && attentionBits === 4) {
      const r = await run(policy, { deviceCapacityBytes: budget.totalBytes });
      assert.equal(r.matchesReference, true);
      assert.equal(r.device.peakBytes, budget.totalBytes);
      await assert.rejects(run(policy, { deviceCapacityBytes: budget.totalBytes - 64 }), DeviceOutOfMemory);
    }
  }
  // Fewer bits, a smaller arena.
  const totals = ([16, 8, 4, 3, 2] as ExpertBits[]).map(
    (b) => deviceBudget(spec, { ...base, bits: b, attentionBits: b }, BATCH, 31).totalBytes,
  );
  for (let i = 1; i < totals.length; i++) assert.ok(totals[i]! < totals[i - 1]!, `${totals}`);
});

test("agreement with the fp16 model: within tolerance at every width, closer with more bits, 8 bits nearly lossless", async () => {
  const errors: number[] = [];
  for (const bits of [8, 4, 3, 2] as ExpertBits[]) {
    const r = await run({ bits, attentionBits: bits, cacheSize: 8, eviction: "static" });
    const q = r.quantization!;
    assert.equal(r.matchesReference, true);
    assert.equal(q.withinTolerance, true, `${bits} bits: ${JSON.stringify({ ...q, fp16Tokens: undefined })}`);
    assert.ok(q.logitsRelativeError <= q.tolerance.logitsRelativeError);
    assert.ok(q.logitsRelativeError > 0 && q.logitsMaxAbsDiff > 0, `${bits} bits changes the logits`);
    errors.push(q.logitsRelativeError);
    if (bits === 8) assert.ok(q.top1Agreement >= 0.95, `8 bits: top-1 agreement ${q.top1Agreement}`);
    // Teacher-forced, most greedy tokens still agree even at 2 bits (unrelated models would agree ~1/256).
    assert.ok(q.top1Agreement >= 0.25, `${bits} bits: top-1 agreement ${q.top1Agreement}`);
  }
  for (let i = 1; i < errors.length; i++) assert.ok(errors[i]! > errors[i - 1]!, `logits errors ${errors}`);
});

test("the tolerance check fails for logits that do not follow the fp16 model, and fp16 policies report nothing", async () => {
  const next = random(5);
  const steps = 3;
  const fp16 = new LogitsRecorder();
  const close = new LogitsRecorder();
  const unrelated = new LogitsRecorder();
  for (let t = 0; t < steps; t++) {
    const ref = Float32Array.from({ length: BATCH * 16 }, () => next() * 4 - 2);
    fp16.add(ref);
    close.add(ref.map((v) => v * 1.01));
    unrelated.add(Float32Array.from(ref, () => next() * 4 - 2));
  }
  const tokens = (r: LogitsRecorder) =>
    Array.from({ length: BATCH }, (_, b) =>
      r.steps.map((s) => {
        const row = [...s.subarray(b * 16, (b + 1) * 16)];
        return row.indexOf(Math.max(...row));
      }),
    );
  const within = quantizedFidelity({ bits: 8, attentionBits: 16 }, tokens(fp16), tokens(fp16), fp16, close);
  assert.equal(within.withinTolerance, true);
  assert.equal(within.top1Agreement, 1);
  assert.equal(within.tokenAgreement, 1);
  assert.ok(Math.abs(within.logitsRelativeError - 0.01) < 1e-6);
  const off = quantizedFidelity({ bits: 2, attentionBits: 2 }, tokens(fp16), tokens(unrelated), fp16, unrelated);
  assert.equal(off.withinTolerance, false, `${off.logitsRelativeError} vs ${off.tolerance.logitsRelativeError}`);
  assert.ok(off.top1Agreement < 1);
  // The tolerance: twice the format's weight noise, never below the router-flip floor; the coarser width rules.
  assert.equal(quantizedTolerance(8, 16).logitsRelativeError, ROUTER_FLIP_ERROR_FLOOR);
  assert.equal(quantizedTolerance(16, 4).logitsRelativeError, 2 * quantizedTolerance(4, 4).weightNoise);
  assert.equal(quantizedTolerance(2, 8).weightNoise, quantizedTolerance(8, 2).weightNoise);
  assert.equal((await run({ bits: 16, attentionBits: 16 })).quantization, undefined);
  await assert.rejects(run({ offloadTier: "disk" }), /offloadTier "disk" is not supported/);
});

test("Qwen2-MoE runs quantised too: biases and the shared expert at attentionBits, experts at the planner's bytes", async () => {
  const qwen = findCatalogueModel("qwen2-moe-tiny")!;
  const dir = mkdtempSync(join(tmpdir(), "spillway-qwen-quantized-"));
  try {
    synthesizeMoeWeights(qwen, dir, { seed: TINY_MOE_RUN.weightsSeed });
    const policy = { ...base, bits: 4 as ExpertBits, attentionBits: 8 as ExpertBits, cacheSize: 2, batch: BATCH };
    const r = await runMoe({ weightsDir: dir, policy, promptLen: PROMPT_LEN, genLen: 8, seed: TINY_MOE_RUN.seed });
    assert.equal(r.matchesReference, true);
    assert.ok(r.quantization, "a quantised run reports its agreement with fp16");
    const perExpert = moeWeightBytes(qwen, policy).bytesPerExpert;
    assert.equal(r.device.budget.expertBytes, perExpert);
    assert.equal(r.experts.fetchedBytes, (r.experts.demandFetches + r.experts.prefetches) * perExpert);
    assert.ok(r.device.peakBytes <= r.device.budget.totalBytes);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a run's passes share each precision's expert home copies: every expert is read and quantised once per width", () => {
  const checkpoint = loadMoeCheckpoint(dir());
  try {
    const reads = new Map<string, number>();
    const counting: MoeCheckpoint = {
      dir: checkpoint.dir,
      config: checkpoint.config,
      fp16Bytes: (name) => {
        reads.set(name, (reads.get(name) ?? 0) + 1);
        return checkpoint.fp16Bytes(name);
      },
      close: () => checkpoint.close(),
    };
    const copies = new HomeCopies(counting);
    const first = copies.at(4);
    assert.equal(copies.at(4), first, "the second pass at 4 bits gets the same copies");
    const expertTensors = spec.numLayers * spec.moe!.numExperts * 3;
    assert.equal(reads.size, expertTensors);
    assert.ok(
      [...reads.values()].every((n) => n === 1),
      "each expert tensor read once",
    );
    const fp16 = copies.at(16);
    assert.notEqual(fp16, first);
    assert.ok(
      [...reads.values()].every((n) => n === 2),
      "another width reads them once more",
    );
    assert.equal(fp16[0]![0]!.byteLength, 3 * spec.hiddenSize * spec.moe!.expertFfnSize * 2);
    assert.equal(first[0]![0]!.byteLength, 3 * quantizedByteLength(spec.hiddenSize * spec.moe!.expertFfnSize, 4));
  } finally {
    checkpoint.close();
  }
});
