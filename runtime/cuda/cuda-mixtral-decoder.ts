/**
 * The MoE decoder on the CUDA backend (runtime/moe/moe-decoder.ts): everything but the routed experts'
 * cache decisions runs on the device, on the compute stream the expert memory uses
 * (cuda-expert-memory.ts), so expert kernels and the decoder's kernels are ordered by the stream alone.
 *
 * Device memory (the device pool, blocks named for out-of-memory errors): every non-expert weight as
 * stored (decoder-layer tensors at attentionBits, embeddings, final norm and LM head fp16; a Qwen2-MoE
 * shared expert's three matrices packed gate | up | down so spw_expert_swiglu runs it), the KV cache
 * (fp32, per layer and sequence, as the CPU backend's arena holds it) and the activations, allocated
 * block by block from ../moe/device-budget.ts's decoderActivationFloats: the count the planner
 * predicts as the plan's GPU peak (cudaMoeDeviceBytes), so the two cannot drift.
 *
 * Per step: token ids up; embedding. Per layer: RMSNorm (its weight dequantised on the device), q/k/v
 * (spw_linear_groupwise, with Qwen2-MoE's biases), RoPE on q and k, the new k/v rows copied into the
 * cache, causal GQA attention per sequence, o_proj, residual; RMSNorm, the router GEMM (or a pre-gated
 * model's pre-gate), with speculative prefetch the lookahead (gate-lookahead.ts: layer l + a's router
 * GEMM on this layer's router input and spw_router_top_k, the guesses per row), then ONE copy back of
 * the gate logits [rows, experts] (the router's softmax and top-k stay on the host, with route(): the
 * expert cache must read the routing) and the guesses [rows, 2 x guesses]; the router input stays on
 * the device. The
 * experts run through the executor with the device's rows (cuda-expert-rows.ts: a device expert's rows
 * are gathered and its outputs scattered by index on the device, into the outputs by rank [rows, k,
 * hidden], after one upload of the layer's indices; a CPU-computed miss
 * copies only its own rows back and its outputs up); the gate weights [rows, k] go up and
 * spw_moe_combine adds the outputs in rank order; the shared expert runs on the device. Then the final
 * RMSNorm, the LM head and argmax on the device, and each sequence's next token back.
 *
 * Numerics: the kernels compute what the CPU backend's ops compute (kernels.h), so on the emulated
 * device a run gives the CPU backend's tokens and routing.
 */
import type { ExpertPolicy } from "../../core/expert-policy.js";
import { headDim, kvDim, type ModelSpec, qDim } from "../../core/model-spec.js";
import { linearScratchLength } from "../kernels/linear-f16.js";
import { checkMoeStep } from "../moe/check-moe-step.js";
import {
  DECODER_ACTIVATIONS,
  type DecoderActivation,
  decoderActivationFloats,
  lookaheadGuessWidth,
} from "../moe/device-budget.js";
import {
  type ExpertExecutor,
  hostSwigluExpert,
  type MoePhase,
  type RoutingObserver,
  routeRows,
} from "../moe/mixtral-model.js";
import type { MoeDecoder, MoeDecoderSetup } from "../moe/moe-decoder.js";
import { routerOf } from "../moe/pre-gated.js";
import { nonExpertTensorBits } from "../moe/quantized-weights.js";
import { cudaExpertRows } from "./cuda-expert-rows.js";
import type { DecoderTracking } from "./decoder-tracking.js";
import type { DevicePointer, DevicePool } from "./device-pool.js";
import type { CudaNative } from "./native-api.js";

/** A weight in device memory with the width it is stored at. */
interface DeviceWeight {
  readonly pointer: number;
  readonly bits: number;
}

interface DeviceLayer {
  readonly inputNorm: DeviceWeight;
  readonly q: DeviceWeight;
  readonly k: DeviceWeight;
  readonly v: DeviceWeight;
  readonly o: DeviceWeight;
  readonly postNorm: DeviceWeight;
  readonly gate?: DeviceWeight;
  readonly preGate?: DeviceWeight;
  readonly biases?: { readonly q: DeviceWeight; readonly k: DeviceWeight; readonly v: DeviceWeight };
  readonly shared?: { readonly packed: DeviceWeight; readonly gate: DeviceWeight; readonly ffn: number };
  /** Per sequence: key and value cache [maxLength, kvWidth] fp32. */
  readonly keys: readonly number[];
  readonly values: readonly number[];
}

const bytesOf = (w: Uint16Array) => new Uint8Array(w.buffer, w.byteOffset, w.byteLength);

export class CudaMixtralDecoder implements MoeDecoder {
  private readonly model: ModelSpec;
  private readonly B: number;
  private readonly h: number;
  private readonly d: number;
  private readonly k: number;
  private readonly E: number;
  private readonly fe: number;
  private readonly qw: number;
  private readonly kvw: number;
  private readonly layers: DeviceLayer[];
  private readonly embed: DeviceWeight;
  private readonly finalNorm: DeviceWeight;
  private readonly lmHead: DeviceWeight;
  // Device activations.
  private readonly ids: number;
  private readonly x: number;
  private readonly xn: number;
  private readonly q: number;
  private readonly kNew: number;
  private readonly vNew: number;
  private readonly attn: number;
  private readonly proj: number;
  private readonly logits: number;
  private readonly nextLogits: number;
  private readonly normWeight: number;
  private readonly bias: number;
  private readonly scratch: number;
  private readonly outputs: number;
  private readonly gateWeights: number;
  /** Per layer, by expert: each routed row's router input row, then its output slot (int32 [2, rows · k]). */
  private readonly expertRowIndices: number;
  /** Speculative lookahead on the device: the target layer's router logits, then guesses (experts, weights). */
  private readonly lookaheadLogits: number;
  private readonly lookaheadExperts: number;
  private readonly sharedScratch: number;
  private readonly sharedOut: number;
  private readonly sharedGateLogit: number;
  private readonly last: number;
  private readonly vocab: number;
  private readonly nextIds: number;
  // Pinned host buffers (reused only after the compute stream has passed their copies).
  private readonly idsHost: Int32Array;
  private readonly xnHost: Float32Array;
  private readonly logitsHost: Float32Array;
  private readonly nextLogitsHost: Float32Array;
  private readonly outputsHost: Float32Array;
  private readonly gateWeightsHost: Float32Array;
  private readonly nextIdsHost: Int32Array;
  /** The lookahead's guesses as they come back: experts [m, g] int32, then weights [m, g] fp32. */
  private readonly lookaheadHost: ArrayBuffer;
  // Host routing and the host's CPU-computed experts.
  private readonly chosen: Int32Array;
  /** A CPU-computed miss's rows [≤ rows, hidden]. */
  private readonly missRowsHost: Float32Array;
  private readonly expertRowIndicesHost: Int32Array;
  private readonly hostScratch: {
    gate: Float32Array;
    up: Float32Array;
    out: Float32Array;
    tile: Float32Array;
    tileOut: Float32Array;
  };
  private readonly vocabHost: Float32Array;

  constructor(
    private readonly native: CudaNative,
    pool: DevicePool,
    private readonly stream: number,
    pinned: (bytes: number) => ArrayBuffer,
    private readonly setup: MoeDecoderSetup,
    private readonly tracking: DecoderTracking,
    /** The pass's expert policy (a speculative lookahead's guesses run on the device). */
    private readonly policy: ExpertPolicy,
  ) {
    const { model, weights, batch: B, maxTokensPerStep, maxLength, bits } = setup;
    const moe = model.moe!;
    this.model = model;
    this.B = B;
    this.h = model.hiddenSize;
    this.d = headDim(model);
    this.k = moe.expertsPerToken;
    this.E = moe.numExperts;
    this.fe = moe.expertFfnSize;
    this.qw = qDim(model);
    this.kvw = kvDim(model);
    const { h, k, E, kvw } = this;
    const a = bits.attention;
    const allocate = (bytes: number, what: string): DevicePointer => pool.allocate(Math.max(4, bytes), what);
    const upload = (values: Uint16Array | Uint8Array, what: string, bitsOf: number): DeviceWeight => {
      const block = allocate(values.byteLength, what);
      native.memcpyHtoD(block.pointer, values, stream);
      return { pointer: block.pointer, bits: bitsOf };
    };
    const put = (values: Uint16Array, what: string, bitsOf = a) => upload(values, what, bitsOf);
    this.embed = put(weights.embed, "embed_tokens", 16);
    this.layers = weights.layers.map((w, l): DeviceLayer => {
      const name = (tensor: string) => `layer ${l} ${tensor}`;
      const shared = w.sharedExpert;
      const packedShared = shared
        ? (() => {
            const parts = [shared.gateProj, shared.upProj, shared.downProj].map(bytesOf);
            const packed = new Uint8Array(parts.reduce((sum, p) => sum + p.byteLength, 0));
            let at = 0;
            for (const p of parts) {
              packed.set(p, at);
              at += p.byteLength;
            }
            return upload(packed, name("shared expert"), a);
          })()
        : undefined;
      return {
        inputNorm: put(w.inputNorm, name("input_layernorm")),
        q: put(w.q, name("q_proj")),
        k: put(w.k, name("k_proj")),
        v: put(w.v, name("v_proj")),
        o: put(w.o, name("o_proj")),
        postNorm: put(w.postNorm, name("post_attention_layernorm")),
        ...(routerOf(weights.layers, l) === w.gate ? { gate: put(w.gate, name("router")) } : {}),
        ...(w.preGate ? { preGate: put(w.preGate, name("pre-gate")) } : {}),
        ...(w.attentionBiases
          ? {
              biases: {
                q: put(w.attentionBiases.q, name("q_proj bias")),
                k: put(w.attentionBiases.k, name("k_proj bias")),
                v: put(w.attentionBiases.v, name("v_proj bias")),
              },
            }
          : {}),
        ...(shared && packedShared
          ? {
              shared: { packed: packedShared, gate: put(shared.gate, name("shared_expert_gate")), ffn: shared.ffnSize },
            }
          : {}),
        keys: Array.from(
          { length: B },
          (_, b) => allocate(maxLength * kvw * 4, name(`sequence ${b} key cache`)).pointer,
        ),
        values: Array.from(
          { length: B },
          (_, b) => allocate(maxLength * kvw * 4, name(`sequence ${b} value cache`)).pointer,
        ),
      };
    });
    this.finalNorm = put(weights.finalNorm, "final norm", nonExpertTensorBits("model.norm.weight", bits.attention));
    // Tied embeddings: the LM head is the embedding table, held once (as the budget counts it).
    this.lmHead = weights.lmHead === weights.embed ? this.embed : put(weights.lmHead, "lm_head", 16);

    const m = B * maxTokensPerStep;
    // Every activation block the plan's GPU memory counts (device-budget.ts), allocated from that count.
    const floats = decoderActivationFloats(model, policy, { batch: B, maxTokensPerStep, maxLength });
    const scratchFloats = native.attentionScratchFloats(maxTokensPerStep, maxLength - maxTokensPerStep, model.numHeads);
    if (scratchFloats > floats.attentionScratch)
      throw new Error(
        `the attention kernel needs ${scratchFloats} floats of scratch, the device budget counts ${floats.attentionScratch}`,
      );
    const at = Object.fromEntries(
      Object.entries(floats).map(([key, n]) => [
        key,
        allocate(n * 4, DECODER_ACTIVATIONS[key as DecoderActivation]).pointer,
      ]),
    ) as Record<DecoderActivation, number>;
    this.ids = at.ids;
    this.x = at.x;
    this.xn = at.xn;
    this.q = at.q;
    this.kNew = at.kNew;
    this.vNew = at.vNew;
    this.attn = at.attn;
    this.proj = at.proj;
    this.logits = at.logits;
    this.nextLogits = at.nextLogits;
    this.normWeight = at.normWeight;
    this.bias = at.bias;
    this.scratch = at.attentionScratch;
    this.outputs = at.outputs;
    this.gateWeights = at.gateWeights;
    this.expertRowIndices = at.expertRowIndices;
    this.lookaheadLogits = at.lookaheadLogits;
    this.lookaheadExperts = at.lookaheadExperts;
    this.sharedScratch = at.sharedScratch;
    this.sharedOut = at.sharedOut;
    this.sharedGateLogit = at.sharedGateLogit;
    this.last = at.last;
    this.vocab = at.vocab;
    this.nextIds = at.nextIds;

    this.idsHost = new Int32Array(pinned(m * 4));
    this.xnHost = new Float32Array(pinned(m * h * 4));
    this.logitsHost = new Float32Array(pinned(m * E * 4));
    this.nextLogitsHost = new Float32Array(pinned(m * E * 4));
    this.outputsHost = new Float32Array(pinned(m * k * h * 4));
    this.gateWeightsHost = new Float32Array(pinned(m * k * 4));
    this.nextIdsHost = new Int32Array(pinned(B * 4));
    this.lookaheadHost = pinned(floats.lookaheadExperts * 4);
    this.chosen = new Int32Array(m * k);
    this.missRowsHost = new Float32Array(pinned(m * h * 4));
    this.expertRowIndicesHost = new Int32Array(pinned(2 * m * k * 4));
    const tiles = linearScratchLength(m, Math.max(h, this.fe));
    this.hostScratch = {
      gate: new Float32Array(m * this.fe),
      up: new Float32Array(m * this.fe),
      out: new Float32Array(m * h),
      tile: new Float32Array(tiles.tile),
      tileOut: new Float32Array(tiles.out),
    };
    this.vocabHost = new Float32Array(B * model.vocabSize);
    native.streamSynchronize(stream); // the weights are up before the pageable sources go
  }

  /** The LM head's logits of the last step, copied back on demand (the quantisation check reads them). */
  get lmHeadLogits(): Float32Array {
    this.native.memcpyDtoH(this.vocabHost, this.vocab, this.stream);
    return this.vocabHost;
  }

  private linear(x: number, w: DeviceWeight, out: number, m: number, k: number, n: number): void {
    this.native.linearGroupwise(x, w.pointer, w.bits, out, m, k, n, this.stream);
  }

  private linearBias(
    x: number,
    w: DeviceWeight,
    bias: DeviceWeight | undefined,
    out: number,
    m: number,
    k: number,
    n: number,
  ): void {
    if (!bias) {
      this.linear(x, w, out, m, k, n);
      return;
    }
    this.native.dequantizeGroupwiseF32(bias.pointer, n, bias.bits, this.bias, this.stream);
    this.native.linearGroupwiseBias(x, w.pointer, w.bits, this.bias, out, m, k, n, this.stream);
  }

  private rmsNorm(x: number, weight: DeviceWeight, out: number, rows: number): void {
    this.native.dequantizeGroupwiseF32(weight.pointer, this.h, weight.bits, this.normWeight, this.stream);
    this.native.rmsNorm(x, this.normWeight, out, rows, this.h, this.setup.rmsNormEps, this.stream);
  }

  step(
    tokens: Int32Array,
    t: number,
    past: number,
    phase: MoePhase,
    experts: ExpertExecutor,
    observe?: RoutingObserver,
  ): Int32Array {
    const { model, B, h, native, stream } = this;
    const m = B * t;
    checkMoeStep(tokens, t, past, {
      batch: B,
      maxTokensPerStep: this.setup.maxTokensPerStep,
      vocabSize: model.vocabSize,
      positions: this.setup.maxLength,
      positionsOf: `the ${this.setup.maxLength} positions the pass holds`,
    });
    this.idsHost.set(tokens);
    this.tracking.copy("h2d", -1, m * 4, () => native.memcpyHtoD(this.ids, this.idsHost.subarray(0, m), stream));
    this.tracking.compute(-1, () =>
      native.embedding(this.embed.pointer, this.ids, m, h, model.vocabSize, this.x, stream),
    );
    for (let l = 0; l < model.numLayers; l++) this.moeBlock(l, t, past, phase, experts, observe);
    this.tracking.compute(-1, () => {
      for (let b = 0; b < B; b++)
        native.memcpyDtoD(this.last + b * h * 4, this.x + (b * t + t - 1) * h * 4, h * 4, stream);
      this.rmsNorm(this.last, this.finalNorm, this.last, B);
      this.linear(this.last, this.lmHead, this.vocab, B, h, model.vocabSize);
      native.argmaxRows(this.vocab, B, model.vocabSize, this.nextIds, stream);
    });
    this.tracking.copy("d2h", -1, B * 4, () => native.memcpyDtoH(this.nextIdsHost, this.nextIds, stream));
    native.streamSynchronize(stream);
    return Int32Array.from(this.nextIdsHost);
  }

  private attentionBlock(l: number, t: number, past: number): void {
    const { model, B, h, d, qw, kvw, native, stream } = this;
    const w = this.layers[l]!;
    const m = B * t;
    this.rmsNorm(this.x, w.inputNorm, this.xn, m);
    this.linearBias(this.xn, w.q, w.biases?.q, this.q, m, h, qw);
    this.linearBias(this.xn, w.k, w.biases?.k, this.kNew, m, h, kvw);
    this.linearBias(this.xn, w.v, w.biases?.v, this.vNew, m, h, kvw);
    native.rope(this.q, m, model.numHeads, d, t, past, this.setup.ropeTheta, stream);
    native.rope(this.kNew, m, model.numKvHeads, d, t, past, this.setup.ropeTheta, stream);
    for (let b = 0; b < B; b++) {
      const rows = b * t * kvw * 4;
      native.memcpyDtoD(w.keys[b]! + past * kvw * 4, this.kNew + rows, t * kvw * 4, stream);
      native.memcpyDtoD(w.values[b]! + past * kvw * 4, this.vNew + rows, t * kvw * 4, stream);
      native.gqaAttention(
        this.q + b * t * qw * 4,
        w.keys[b]!,
        w.values[b]!,
        this.attn + b * t * qw * 4,
        this.scratch,
        t,
        past,
        model.numHeads,
        model.numKvHeads,
        d,
        stream,
      );
    }
    this.linear(this.attn, w.o, this.proj, m, qw, h);
    native.add(this.x, this.proj, m * h, stream);
  }

  /** Layer l: attention and the router on the device, routing on the host, the experts, their combine. */
  private moeBlock(
    l: number,
    t: number,
    past: number,
    phase: MoePhase,
    experts: ExpertExecutor,
    observe?: RoutingObserver,
  ): void {
    const { B, h, k, E, native, stream } = this;
    const w = this.layers[l]!;
    const m = B * t;
    // Speculative prefetch: the router of layer l + a applied to this layer's router input and its
    // top-k per row (gate-lookahead.ts) on the device, so only the guesses come back.
    const g = lookaheadGuessWidth(this.policy);
    const lookaheadRouter = g > 0 ? this.routerOf(l + this.policy.prefetchLayers) : undefined;
    this.tracking.compute(l, () => {
      this.attentionBlock(l, t, past);
      this.rmsNorm(this.x, w.postNorm, this.xn, m);
      // A pre-gated model routes this layer with the logits the previous layer's pre-gate computed.
      if (w.gate) this.linear(this.xn, w.gate, this.logits, m, h, E);
      else native.memcpyDtoD(this.logits, this.nextLogits, m * E * 4, stream);
      if (w.preGate) this.linear(this.xn, w.preGate, this.nextLogits, m, h, E);
      if (lookaheadRouter) {
        this.linear(this.xn, lookaheadRouter, this.lookaheadLogits, m, h, E);
        const weightsAt = this.lookaheadExperts + m * g * 4;
        native.routerTopK(this.lookaheadLogits, m, E, g, this.lookaheadExperts, weightsAt, stream);
      }
    });
    // The one read-back per layer: the gate logits (and a pre-gate's), the lookahead's guesses, and the
    // router input only where it is read otherwise (an executor reading it without device guesses).
    const routerInputBack = experts.readsRouterInput !== false && g === 0;
    const guessed = lookaheadRouter ? new Int32Array(this.lookaheadHost, 0, 2 * m * g) : undefined;
    const routerBytes = ((routerInputBack ? m * h : 0) + (w.preGate ? 2 : 1) * m * E + (guessed?.length ?? 0)) * 4;
    this.tracking.copy("d2h", l, routerBytes, () => {
      if (routerInputBack) native.memcpyDtoH(this.xnHost.subarray(0, m * h), this.xn, stream);
      native.memcpyDtoH(this.logitsHost.subarray(0, m * E), this.logits, stream);
      if (w.preGate) native.memcpyDtoH(this.nextLogitsHost.subarray(0, m * E), this.nextLogits, stream);
      if (guessed) native.memcpyDtoH(guessed, this.lookaheadExperts, stream);
    });
    native.streamSynchronize(stream);
    const { normTopKProb } = this.setup;
    const weights = this.gateWeightsHost;
    const needed = routeRows(this.logitsHost, m, k, E, normTopKProb, this.chosen, weights);
    observe?.(l, this.chosen.subarray(0, m * k), weights.subarray(0, m * k));
    const nextLayerExperts = w.preGate
      ? routeRows(this.nextLogitsHost, m, k, E, normTopKProb, new Int32Array(m * k), new Float32Array(m * k))
      : undefined;
    const hostRouterInput = routerInputBack ? this.xnHost.subarray(0, m * h) : undefined;
    const lookaheadGuesses = guessed && {
      experts: guessed.slice(0, m * g),
      weights: new Float32Array(this.lookaheadHost, m * g * 4, m * g).slice(),
    };
    experts.beforeExperts?.(l, phase, hostRouterInput ?? new Float32Array(0), m, nextLayerExperts, lookaheadGuesses);
    const io = cudaExpertRows(
      native,
      stream,
      this.tracking,
      { h, k, experts: E },
      { routerInput: this.xn, outputs: this.outputs, indices: this.expertRowIndices },
      { rows: this.missRowsHost, outputs: this.outputsHost, indices: this.expertRowIndicesHost },
      { layer: l, m, chosen: this.chosen, hostRouterInput },
    );
    const shape = { hidden: h, ffn: this.fe, bits: this.setup.bits.expert };
    experts.runExperts(
      l,
      phase,
      needed,
      (expert, packed) => {
        const { input, rows } = io.gather(expert);
        hostSwigluExpert(input, packed, { ...shape, rows }, this.hostScratch);
        io.scatter(expert, this.hostScratch.out);
      },
      io,
    );
    this.tracking.copy("h2d", l, m * k * 4, () =>
      native.memcpyHtoD(this.gateWeights, weights.subarray(0, m * k), stream),
    );
    this.tracking.compute(l, () => {
      native.moeCombine(this.x, this.outputs, this.gateWeights, m, k, h, stream);
      if (w.shared) this.sharedExpert(w.shared, m);
    });
  }

  /** Layer t's router on the device (a pre-gated model's: layer t - 1's pre-gate, as pre-gated.ts's routerOf); undefined past the last layer. */
  private routerOf(t: number): DeviceWeight | undefined {
    return this.layers[t]?.gate ?? this.layers[t - 1]?.preGate;
  }

  /** Qwen2-MoE's shared expert: x += sigmoid(shared_expert_gate · xn) · down(silu(gate xn) · up xn). */
  private sharedExpert(shared: NonNullable<DeviceLayer["shared"]>, m: number): void {
    const { h, native, stream } = this;
    native.expertSwiglu(
      this.xn,
      shared.packed.pointer,
      shared.packed.bits,
      m,
      h,
      shared.ffn,
      this.sharedScratch,
      this.sharedOut,
      stream,
    );
    this.linear(this.xn, shared.gate, this.sharedGateLogit, m, h, 1);
    native.sigmoidGatedAdd(this.x, this.sharedOut, this.sharedGateLogit, m, h, stream);
  }
}
