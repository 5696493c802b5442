/**
 * Runs a Mixtral-style checkpoint on the CPU backend with a real expert cache, in two passes:
 *
 * 1. the all-resident reference: every expert of every layer in device memory (cacheSize = experts,
 *    static), no prefetch; its tokens are the ground truth and its router's choices are recorded as a
 *    RoutingTrace (prefill and decode tokens);
 * 2. the configuration under test: non-expert weights and KV cache resident in a device arena, every
 *    expert's home copy in host memory, `cacheSize` slots per layer warmed with the layer's most popular
 *    experts in the reference's decode routing (simulator/moe-replay.ts's `popularity`, so the replay
 *    of that routing starts from the same caches), misses fetched host -> device through the copy
 *    engine or computed on the CPU, and the prefetcher: pre-gated (the checkpoint's pre-gates give the
 *    next layer's experts; pre-gated.ts) or speculative (the router of layer l + a applied to layer l's
 *    router input; gate-lookahead.ts). The run's routing is recorded with the speculative guesses beside
 *    it (RoutingTrace.guesses), so the replay of that trace makes the same prefetches.
 *
 * The sequences run in lockstep: one prefill step of the prompts, then genLen - 1 decode steps of one
 * token each (the first generated token comes from prefill), exactly the decode steps the replay
 * replays. The counts are the replay's; the tokens must equal the reference's bit for bit, since an
 * expert's bytes are the same wherever they are read from.
 *
 * Quantised policies (bits or attentionBits below 16, quantized-weights.ts) have their own reference:
 * the all-resident run of the same quantised weights, which the configuration's tokens must equal bit
 * for bit; beside it the fp16 all-resident run and the quantised model teacher-forced on the fp16
 * run's tokens measure what quantisation costs (quantized-fidelity.ts).
 */
import { join } from "node:path";
import { type ExpertBits, type ExpertPolicy, plainExpertPolicy } from "../../core/expert-policy.js";
import { InputError } from "../../core/input-error.js";
import { kvDim, type ModelSpec } from "../../core/model-spec.js";
import type { OnProgress } from "../../core/progress.js";
import {
  allocateRoutingGuesses,
  allocateRoutingTrace,
  PHASE_DECODE,
  PHASE_PREFILL,
  type RoutingTrace,
} from "../../routing/routing-trace.js";
import { decodeRouting } from "../../simulator/decode-routing.js";
import { popularity } from "../../simulator/moe-replay.js";
import type { TraceSink } from "../../simulator/trace-sink.js";
import { DeviceArena, type DeviceBlock } from "../device-arena.js";
import { runProgress } from "../run-progress.js";
import { syntheticPrompts } from "../synthetic-prompts.js";
import { type DeviceBudget, deviceBudget } from "./device-budget.js";
import { arenaExpertDevice, type ExpertDevice, type OpenExpertDevice } from "./expert-device.js";
import { type ExpertCounts, ExpertStore } from "./expert-store.js";
import { GateLookahead } from "./gate-lookahead.js";
import { HomeCopies } from "./home-copies.js";
import { type MixtralKvCache, MixtralModel } from "./mixtral-model.js";
import { loadMoeCheckpoint, type MoeCheckpoint } from "./moe-checkpoint.js";
import type { MoeDecoder } from "./moe-decoder.js";
import { MoePassClock, type MoePassTiming } from "./moe-pass-clock.js";
import { PRE_GATED_CONFIG_KEY, routerOf } from "./pre-gated.js";
import { LogitsRecorder, type QuantizedFidelity, quantizedFidelity } from "./quantized-fidelity.js";
import { placeResidentWeights } from "./resident-weights.js";
import { unrunnableExpertPolicy } from "./runnable-expert-policy.js";

export interface MoeRunPolicy extends ExpertPolicy {
  /** Sequences decoded side by side (default: the number of prompts). */
  readonly batch?: number;
}

export interface MoeRunOptions {
  /** A checkpoint folder: config.json (model_type "mixtral" or "qwen2_moe") and safetensors files (runtime/moe/moe-checkpoint.ts). */
  readonly weightsDir: string;
  readonly policy: MoeRunPolicy;
  /** One prompt per sequence, all the same length; absent: `batch` synthetic prompts of `promptLen` tokens from `seed`. */
  readonly promptTokens?: readonly (readonly number[])[];
  readonly promptLen?: number;
  /** Tokens generated per sequence (>= 2: the first comes from prefill, then genLen - 1 decode steps). */
  readonly genLen: number;
  readonly seed?: number;
  /** Device arena capacity for the configuration under test (default: exactly its deviceBudget). */
  readonly deviceCapacityBytes?: number;
  /** Copy engine on worker threads (prefetches overlap compute); default false (copies run inline). */
  readonly threads?: boolean;
  /**
   * Where the configuration under test keeps and computes its experts (expert-device.ts); default the
   * CPU backend's arena. The references always run on the CPU backend.
   */
  readonly expertDevice?: ExpertDevice;
  /** Where the configuration under test's steps and copies are reported (the reference's are not). */
  readonly trace?: TraceSink;
  /** Called as each layer of each step computes: phase "reference" for the all-resident pass, then "run". */
  readonly onProgress?: OnProgress;
}

export interface MoeExpertFigures extends ExpertCounts {
  readonly hitRate: number;
  /** Bytes copied host -> device for decode misses and prefetches, and the seconds those copies took. */
  readonly fetchedBytes: number;
  readonly fetchSeconds: number;
  /** Of the experts decode layers used, the share the prefetcher had guessed (guessesUsed / guessedLayerLookups; 0 without guesses). */
  readonly guessRecall: number;
  /** Of the experts the prefetcher guessed, the share the layer used (guessesUsed / guesses; 0 without guesses). */
  readonly guessPrecision: number;
}

export interface MoeRunResult {
  readonly model: ModelSpec;
  readonly tokens: number[][];
  /** The all-resident run of the same weights (quantised ones for a quantised policy). */
  readonly referenceTokens: number[][];
  readonly matchesReference: boolean;
  readonly experts: MoeExpertFigures;
  /**
   * The router's choices in the configuration under test (identical to the reference's when the tokens
   * match), with the speculative prefetcher's per-token guesses (`guesses`) when it had one.
   */
  readonly routing: RoutingTrace;
  readonly referenceRouting: RoutingTrace;
  /** Per layer, the experts the caches were warmed with (most popular first). */
  readonly initialExperts: number[][];
  readonly device: { readonly capacityBytes: number; readonly peakBytes: number; readonly budget: DeviceBudget };
  readonly seconds: { readonly reference: number; readonly run: number };
  /** The configuration under test's steps, timed from its prefill on (setup and the caches' warm-up excluded). */
  readonly timing: MoePassTiming;
  /** Quantised policies only: agreement of the quantised model with the fp16 one, and its tolerance. */
  readonly quantization?: QuantizedFidelity;
}

interface PassResult {
  readonly tokens: number[][];
  readonly routing: RoutingTrace;
  readonly counts: ExpertCounts;
  readonly fetchedBytes: number;
  readonly fetchSeconds: number;
  readonly peakBytes: number;
  readonly seconds: number;
  readonly timing: MoePassTiming;
}

function prompts(options: MoeRunOptions, vocab: number): number[][] {
  if (options.promptTokens) {
    const given = options.promptTokens.map((p) => [...p]);
    if (given.length === 0 || given[0]!.length === 0) throw new Error("runMoe: expected at least one non-empty prompt");
    if (given.some((p) => p.length !== given[0]!.length))
      throw new Error("runMoe: the prompts run in lockstep and must have the same length");
    if (options.policy.batch !== undefined && options.policy.batch !== given.length)
      throw new Error(`runMoe: batch ${options.policy.batch} but ${given.length} prompts`);
    return given;
  }
  const batch = options.policy.batch ?? 1;
  const length = options.promptLen ?? 8;
  const ids = syntheticPrompts(batch, length, vocab, options.seed ?? 1);
  return Array.from({ length: batch }, (_, b) => Array.from(ids.subarray(b * length, (b + 1) * length)));
}

/** The all-resident reference's expert policy (at the given precisions). */
export function allResident(model: ModelSpec, bits: ExpertBits = 16, attentionBits: ExpertBits = 16): ExpertPolicy {
  return plainExpertPolicy({ cacheSize: model.moe!.numExperts, eviction: "static", bits, attentionBits });
}

async function runPass(
  checkpoint: MoeCheckpoint,
  homeCopies: HomeCopies,
  policy: ExpertPolicy,
  promptIds: number[][],
  genLen: number,
  capacityBytes: number,
  initial: readonly (readonly number[])[],
  threads: boolean,
  device: ExpertDevice,
  sink: TraceSink | undefined,
  progress: ((at: { readonly token: number; readonly layer: number }) => void) | undefined,
  logits?: { readonly record: LogitsRecorder; readonly forcedTokens?: readonly (readonly number[])[] },
): Promise<PassResult> {
  const started = performance.now();
  const { model, ropeTheta, rmsNormEps, normTopKProb } = checkpoint.config;
  const B = promptIds.length;
  const s = promptIds[0]!.length;
  const total = s + genLen - 1;
  const moe = model.moe!;
  const L = model.numLayers;
  const arena = new DeviceArena(capacityBytes);
  let fetchedBytes = 0,
    fetchSeconds = 0;
  let clock: MoePassClock | undefined;
  let experts: OpenExpertDevice | undefined;
  try {
    // Non-expert weights, resident (decoder-layer tensors at attentionBits).
    const weights = placeResidentWeights(checkpoint, policy.attentionBits, (name, raw) => {
      const block = arena.allocate(raw.byteLength, name);
      arena.uint8(block, raw.byteLength).set(raw);
      return arena.uint16(block, raw.byteLength / 2);
    });
    // Every expert's home copy in host memory, stored at policy.bits: gate | up | down (w1 | w3 | w2).
    experts = await device.open({
      model,
      policy,
      arena,
      capacityBytes,
      rowsPerStep: B * s,
      host: homeCopies.at(policy.bits),
      threads,
      onCopy: (done) => {
        clock?.transfer(done);
        if (done.meta.kind === "demand" || done.meta.kind === "prefetch") {
          fetchedBytes += done.bytes;
          fetchSeconds += (done.endMs - done.startMs) / 1000;
        }
      },
      onExpert: (layer, startMs, endMs) => clock?.deviceExpert(layer, startMs, endMs),
      onCompute: (layer, startMs, endMs) => clock?.deviceCompute(layer, startMs, endMs),
    });
    const { host } = experts;
    const bits = { expert: policy.bits, attention: policy.attentionBits };
    const runner: MoeDecoder =
      experts.decoder?.({
        model,
        weights,
        batch: B,
        maxTokensPerStep: s,
        maxLength: total,
        ropeTheta,
        rmsNormEps,
        normTopKProb,
        bits,
      }) ??
      new MixtralModel(
        model,
        weights,
        residentKv(arena, L, B, total, kvDim(model)),
        B,
        s,
        ropeTheta,
        rmsNormEps,
        normTopKProb,
        bits,
      );
    // Speculative prefetch: the router of layer l + a applied to layer l's router input.
    const lookahead =
      !policy.pregated && policy.prefetchExperts > 0
        ? new GateLookahead(
            Array.from({ length: L }, (_, t) => routerOf(weights.layers, t)),
            model.hiddenSize,
            moe.numExperts,
            policy.prefetchLayers,
            policy.prefetchExperts,
            policy.attentionBits,
          )
        : undefined;
    const store = new ExpertStore(model, policy, B, experts.memory, host, initial, lookahead);
    // A device decoder times its own compute by device events (the clock's host-timed compute slices are left out).
    clock = new MoePassClock(store, (l, e, w) => w === host[l]![e]!, sink, progress, experts.decoder !== undefined);

    const meta = { model: model.name, numLayers: L, numExperts: moe.numExperts, expertsPerToken: moe.expertsPerToken };
    const guesses = lookahead && allocateRoutingGuesses(meta, B * total, lookahead.distance, lookahead.perLayer);
    const trace: RoutingTrace = { ...allocateRoutingTrace(meta, B * total), ...(guesses ? { guesses } : {}) };
    for (let b = 0; b < B; b++) {
      for (let p = 0; p < total; p++) {
        const i = b * total + p;
        trace.requests[i] = b;
        trace.tokens[i] = p;
        trace.phases[i] = p < s ? PHASE_PREFILL : PHASE_DECODE;
      }
    }
    // The current step's tokens per sequence and past positions, for recording.
    let stepTokens = s,
      stepPast = 0;
    /** Copies per-row values (sequence-major, `width` per row) of one layer into a [token, layer, width] table. */
    const recordRows = (
      to: Uint16Array | Float32Array,
      from: Int32Array | Float32Array,
      layer: number,
      width: number,
    ) => {
      for (let b = 0; b < B; b++) {
        for (let i = 0; i < stepTokens; i++) {
          const row = b * stepTokens + i;
          to.set(from.subarray(row * width, (row + 1) * width), ((b * total + stepPast + i) * L + layer) * width);
        }
      }
    };
    const k = moe.expertsPerToken;
    const record = (layer: number, experts: Int32Array, gateWeights: Float32Array) => {
      recordRows(trace.experts, experts, layer, k);
      recordRows(trace.gateWeights, gateWeights, layer, k);
    };
    if (guesses)
      store.onGuesses = (layer, _phase, g) => {
        const target = layer + guesses.distance;
        recordRows(guesses.experts, g.experts, target, guesses.perLayer);
        recordRows(guesses.weights, g.weights, target, guesses.perLayer);
      };

    const tokens: number[][] = Array.from({ length: B }, () => []);
    clock.beginStep(0);
    let next = runner.step(Int32Array.from(promptIds.flat()), s, 0, "prefill", clock, record);
    clock.endStep();
    next.forEach((id, b) => tokens[b]!.push(id));
    logits?.record.add(runner.lmHeadLogits);
    stepTokens = 1;
    for (let t = 0; t < genLen - 1; t++) {
      stepPast = s + t;
      // Teacher forcing: the given stream's token t, not this pass's own.
      const input = logits?.forcedTokens ? Int32Array.from(logits.forcedTokens, (f) => f[t]!) : next;
      clock.beginStep(t + 1);
      next = runner.step(input, 1, s + t, "decode", clock, record);
      clock.endStep();
      next.forEach((id, b) => tokens[b]!.push(id));
      logits?.record.add(runner.lmHeadLogits);
    }
    experts.drain();
    return {
      tokens,
      routing: trace,
      counts: { ...store.counts },
      fetchedBytes,
      fetchSeconds,
      peakBytes: experts.peakBytes(),
      seconds: (performance.now() - started) / 1000,
      timing: clock.timing(),
    };
  } finally {
    await experts?.close();
  }
}

/** The KV cache resident in the arena: per layer and sequence, fp32 key and value rows [maxLength, kvWidth]. */
function residentKv(
  arena: DeviceArena,
  layers: number,
  batch: number,
  maxLength: number,
  kvWidth: number,
): MixtralKvCache {
  const blocks = (kind: string): DeviceBlock[][] =>
    Array.from({ length: layers }, (_, l) =>
      Array.from({ length: batch }, (_, b) =>
        arena.allocate(maxLength * kvWidth * 4, `layer ${l} sequence ${b} ${kind} cache`),
      ),
    );
  const keys = blocks("key");
  const values = blocks("value");
  return {
    key: (l, b) => arena.float32(keys[l]![b]!, maxLength * kvWidth),
    value: (l, b) => arena.float32(values[l]![b]!, maxLength * kvWidth),
  };
}

/** Runs the all-resident reference, then `options.policy`'s cached configuration on the same prompts. */
export async function runMoe(options: MoeRunOptions): Promise<MoeRunResult> {
  if (options.genLen < 2)
    throw new Error(`runMoe: genLen ${options.genLen}; expected at least 2 (one prefill token and a decode step)`);
  const x = options.policy;
  const unrunnable = unrunnableExpertPolicy(x);
  if (unrunnable) throw new Error(`runMoe: ${unrunnable}`);
  const checkpoint = loadMoeCheckpoint(options.weightsDir);
  try {
    if (x.pregated && !checkpoint.config.preGated)
      throw new InputError(
        join(options.weightsDir, "config.json"),
        PRE_GATED_CONFIG_KEY,
        'policy.pregated needs a pre-gated checkpoint (config.json "pre_gated": true, as `spillway synth-weights --pregated` writes); this one is not',
      );
    const { model } = checkpoint.config;
    const moe = model.moe!;
    const promptIds = prompts(options, model.vocabSize);
    const B = promptIds.length;
    const maxLen = promptIds[0]!.length + options.genLen - 1;
    if (maxLen > model.maxPositions)
      throw new Error(`runMoe: ${maxLen} positions, the model has ${model.maxPositions}`);
    const window = checkpoint.config.slidingWindow;
    if (window !== undefined && maxLen > window)
      throw new Error(`runMoe: ${maxLen} positions, past the model's sliding window of ${window} (not implemented)`);
    const threads = options.threads ?? false;
    const homeCopies = new HomeCopies(checkpoint);
    const shape = { numLayers: model.numLayers, numGpuBatches: 1, genLen: options.genLen };
    const everyExpert = Array.from({ length: model.numLayers }, () =>
      Array.from({ length: moe.numExperts }, (_, e) => e),
    );
    const allResidentPass = (
      all: ExpertPolicy,
      phase: string,
      logits?: { readonly record: LogitsRecorder; readonly forcedTokens?: readonly (readonly number[])[] },
    ) =>
      runPass(
        checkpoint,
        homeCopies,
        all,
        promptIds,
        options.genLen,
        deviceBudget(model, all, B, maxLen).totalBytes,
        everyExpert,
        threads,
        arenaExpertDevice,
        undefined,
        runProgress(options.onProgress, phase, shape),
        logits,
      );
    const quantized = x.bits !== 16 || x.attentionBits !== 16;
    const fp16Logits = new LogitsRecorder();
    const fp16 = await allResidentPass(
      allResident(model),
      quantized ? "fp16 reference" : "reference",
      quantized ? { record: fp16Logits } : undefined,
    );
    // A quantised policy's reference: the same quantised weights, all resident.
    const reference = quantized
      ? await allResidentPass(allResident(model, x.bits, x.attentionBits), "reference")
      : fp16;
    // Caches start warm with the reference's most popular decode experts, as the replay warms them.
    const initial = popularity(decodeRouting(reference.routing));
    const budget = deviceBudget(model, options.policy, B, maxLen);
    const capacityBytes = options.deviceCapacityBytes ?? budget.totalBytes;
    const run = await runPass(
      checkpoint,
      homeCopies,
      options.policy,
      promptIds,
      options.genLen,
      capacityBytes,
      initial,
      threads,
      options.expertDevice ?? arenaExpertDevice,
      options.trace,
      runProgress(options.onProgress, "run", shape),
    );
    let quantization: QuantizedFidelity | undefined;
    if (quantized) {
      const forcedLogits = new LogitsRecorder();
      await allResidentPass(allResident(model, x.bits, x.attentionBits), "quantization check", {
        record: forcedLogits,
        forcedTokens: fp16.tokens,
      });
      quantization = quantizedFidelity(x, fp16.tokens, reference.tokens, fp16Logits, forcedLogits);
    }
    const c = run.counts;
    return {
      model,
      tokens: run.tokens,
      referenceTokens: reference.tokens,
      matchesReference: JSON.stringify(run.tokens) === JSON.stringify(reference.tokens),
      experts: {
        ...c,
        hitRate: c.lookups > 0 ? c.hits / c.lookups : 1,
        fetchedBytes: run.fetchedBytes,
        fetchSeconds: run.fetchSeconds,
        guessRecall: c.guessedLayerLookups > 0 ? c.guessesUsed / c.guessedLayerLookups : 0,
        guessPrecision: c.guesses > 0 ? c.guessesUsed / c.guesses : 0,
      },
      routing: run.routing,
      referenceRouting: reference.routing,
      initialExperts: initial,
      device: { capacityBytes, peakBytes: run.peakBytes, budget },
      seconds: { reference: reference.seconds, run: run.seconds },
      timing: run.timing,
      ...(quantization ? { quantization } : {}),
    };
  } finally {
    checkpoint.close();
  }
}
