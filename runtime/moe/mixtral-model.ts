/**
 * The forward pass of a Mixtral-style decoder on the CPU backend, for a batch of sequences in lockstep
 * (every sequence has the same number of new tokens and of past tokens): prefill is one step of the
 * prompt's tokens, decode one step of one token each.
 *
 * Per layer: RMSNorm → q/k/v projections → rotary embedding (HF rotate_half, rope_theta) → grouped-query
 * causal attention over the KV cache → o_proj → residual; RMSNorm → router (softmax over the gate
 * logits, top-k, the k weights renormalised to sum to 1, as Mixtral does) → SwiGLU experts
 * w2(silu(w1 x) · w3 x) → the weighted sum of the k expert outputs → residual. Then the final RMSNorm,
 * the LM head on each sequence's last token, and greedy argmax.
 *
 * Compute is fp32 over fp16 weights (linearF16 decodes weight tiles on the fly), or over group-wise
 * quantised ones (MixtralWeightBits; linearQuantized dequantises weight tiles on the fly). Which memory an
 * expert's weights come from (a device cache slot, a staging buffer, the host copy) is decided by an
 * ExpertExecutor; the model only asks it, layer by layer, to run the batch's experts. Each token's k
 * expert outputs are summed in rank order whatever order the executor runs experts in, so the result is
 * bit-for-bit independent of caching.
 *
 * Qwen2-MoE (modeling_qwen2_moe.py) is the same decoder with q/k/v biases, a router that keeps the
 * softmax probabilities of its top k unless norm_topk_prob, and a shared expert on every token gated by
 * a sigmoid, added after the routed experts.
 */
import type { ExpertBits } from "../../core/expert-policy.js";
import { headDim, kvDim, type ModelSpec, qDim } from "../../core/model-spec.js";
import { fromFloat16Array } from "../fp16.js";
import { argmax } from "../kernels/argmax.js";
import { linearScratchLength } from "../kernels/linear-f16.js";
import { linearAtBits } from "../kernels/linear-quantized.js";
import { checkMoeStep } from "./check-moe-step.js";
import { dequantizeGroupwise, quantizedByteLength } from "./expert-quantization.js";
import { gqaAttention } from "./gqa-attention.js";
import { routerOf } from "./pre-gated.js";
import { rmsNorm } from "./rms-norm.js";
import { Rope } from "./rope.js";
import { siluGateInPlace } from "./silu.js";

export type MoePhase = "prefill" | "decode";

/** One layer's non-expert weights, fp16 ([out, in] row-major as in the checkpoint). */
export interface MixtralLayerWeights {
  readonly inputNorm: Uint16Array;
  readonly q: Uint16Array;
  readonly k: Uint16Array;
  readonly v: Uint16Array;
  readonly o: Uint16Array;
  readonly postNorm: Uint16Array;
  /** The router: [numExperts, hidden]. Unused (may be empty) when the previous layer has a `preGate`. */
  readonly gate: Uint16Array;
  /** Qwen2-MoE: the q, k and v projections' biases (fp16). */
  readonly attentionBiases?: { readonly q: Uint16Array; readonly k: Uint16Array; readonly v: Uint16Array };
  /** Qwen2-MoE: the always-active shared expert's SwiGLU matrices and its sigmoid gate [1, hidden]. */
  readonly sharedExpert?: {
    readonly gateProj: Uint16Array;
    readonly upProj: Uint16Array;
    readonly downProj: Uint16Array;
    readonly ffnSize: number;
    readonly gate: Uint16Array;
  };
  /**
   * A pre-gated model's (Pre-gated MoE, arXiv 2308.12066) pre-gate: the next layer's router
   * [numExperts, hidden], applied to this layer's router input, so the next layer's experts are known
   * before this layer's experts run.
   */
  readonly preGate?: Uint16Array;
}

/** Everything but the routed experts. */
export interface MixtralResidentWeights {
  readonly embed: Uint16Array;
  readonly layers: readonly MixtralLayerWeights[];
  readonly finalNorm: Uint16Array;
  readonly lmHead: Uint16Array;
}

/** Per layer and sequence, fp32 key and value rows [maxLen, kvDim]. */
export interface MixtralKvCache {
  key(layer: number, sequence: number): Float32Array;
  value(layer: number, sequence: number): Float32Array;
}

/**
 * An expert's packed fp16 weights: w1 [ffn, hidden], then w3 [ffn, hidden], then w2 [hidden, ffn] —
 * one contiguous block, so fetching an expert is a single copy.
 */
export function expertValues(model: ModelSpec): number {
  return 3 * model.hiddenSize * model.moe!.expertFfnSize;
}

/**
 * Stored precision of the routed experts and of the decoder layers' other weights (quantized-weights.ts);
 * weights below 16 bits arrive as Uint16Array views of their stored bytes. Embeddings, the final norm
 * and the LM head are always fp16.
 */
export interface MixtralWeightBits {
  readonly expert: ExpertBits;
  readonly attention: ExpertBits;
}

const FP16_WEIGHTS: MixtralWeightBits = { expert: 16, attention: 16 };

const bytesOf = (w: Uint16Array) => new Uint8Array(w.buffer, w.byteOffset, w.byteLength);

/** Per token row, guessed experts best first and their renormalised probabilities ([rows, guesses] each). */
export interface LookaheadGuesses {
  readonly experts: Int32Array;
  readonly weights: Float32Array;
}

/** Runs a layer's experts: calls `compute` once for each expert of `needed`, with its packed weights. */
export interface ExpertExecutor {
  /**
   * False when `beforeExperts` never reads its router input (no speculative prefetch), so a decoder
   * holding the router input elsewhere (the CUDA device) need not copy it to the host; absent: it may.
   */
  readonly readsRouterInput?: boolean;
  /**
   * Called once per layer before `runExperts`, with the layer's router input (the post-attention
   * RMSNorm of the residual stream, [rows, hidden]) and, in a pre-gated model, the batch's experts of
   * the next layer that this layer's pre-gate chose (first-seen order, as `needed` lists them).
   * `lookaheadGuesses`: the speculative lookahead's per-row guesses for the layer it guesses for, where
   * the decoder computed them beside the router input (the CUDA device: gate-lookahead.ts's product
   * and top-k as device kernels); the router input is then empty.
   */
  beforeExperts?(
    layer: number,
    phase: MoePhase,
    routerInput: Float32Array,
    rows: number,
    nextLayerExperts: readonly number[] | undefined,
    lookaheadGuesses?: LookaheadGuesses,
  ): void;
  /**
   * `compute` runs an expert on this backend's CPU from weights in host-addressable memory; an executor
   * that runs experts elsewhere (the CUDA backend's device) takes the expert's token rows from `io`
   * instead and hands their outputs back through it.
   */
  runExperts(
    layer: number,
    phase: MoePhase,
    needed: readonly number[],
    compute: (expert: number, weights: Uint16Array) => void,
    io?: ExpertIo,
  ): void;
}

/** A layer's expert inputs and outputs, for an executor that computes experts itself. */
export interface ExpertIo {
  /** The token rows routed to `expert` in this layer, in row order: their router inputs [rows, hidden]. */
  gather(expert: number): { readonly input: Float32Array; readonly rows: number };
  /** The expert's outputs [rows, hidden] for the rows gather() gave, in the same order. */
  scatter(expert: number, output: Float32Array): void;
}

/** The router's choices of one step and layer: per token row (sequence-major), k experts in rank order and their renormalised weights. */
export type RoutingObserver = (layer: number, experts: Int32Array, weights: Float32Array) => void;

export class MixtralModel {
  private readonly rope: Rope;
  private readonly h: number;
  private readonly d: number;
  private readonly fe: number;
  private readonly k: number;
  private readonly E: number;
  // Activations, sized for the largest step.
  private readonly x: Float32Array;
  private readonly xn: Float32Array;
  private readonly q: Float32Array;
  private readonly kNew: Float32Array;
  private readonly vNew: Float32Array;
  private readonly attn: Float32Array;
  private readonly proj: Float32Array;
  private readonly logits: Float32Array;
  /** A pre-gated model's routing logits for the next layer, computed by this layer's pre-gate. */
  private readonly nextLogits: Float32Array;
  private readonly chosen: Int32Array;
  private readonly chosenWeights: Float32Array;
  private readonly expertOut: Float32Array;
  private readonly gathered: Float32Array;
  private readonly gateAct: Float32Array;
  private readonly upAct: Float32Array;
  private readonly down: Float32Array;
  private readonly norm: Float32Array;
  private readonly bias: Float32Array;
  private readonly sharedGateAct: Float32Array;
  private readonly sharedUpAct: Float32Array;
  private readonly sharedGateLogit: Float32Array;
  private readonly scores: Float32Array;
  private readonly tile: Float32Array;
  private readonly tileOut: Float32Array;
  private readonly last: Float32Array;
  private readonly vocabLogits: Float32Array;

  constructor(
    readonly model: ModelSpec,
    readonly weights: MixtralResidentWeights,
    readonly kv: MixtralKvCache,
    readonly batch: number,
    readonly maxTokensPerStep: number,
    ropeTheta: number,
    readonly rmsNormEps: number,
    /** Whether the router's top-k weights are renormalised to sum to one (Mixtral; Qwen2-MoE's norm_topk_prob). */
    readonly normTopKProb = true,
    readonly bits: MixtralWeightBits = FP16_WEIGHTS,
  ) {
    const moe = model.moe;
    if (!moe) throw new Error(`${model.name} has no experts`);
    this.h = model.hiddenSize;
    this.d = headDim(model);
    this.fe = moe.expertFfnSize;
    this.k = moe.expertsPerToken;
    this.E = moe.numExperts;
    this.rope = new Rope(this.d, ropeTheta);
    const m = batch * maxTokensPerStep;
    this.x = new Float32Array(m * this.h);
    this.xn = new Float32Array(m * this.h);
    this.q = new Float32Array(m * qDim(model));
    this.kNew = new Float32Array(m * kvDim(model));
    this.vNew = new Float32Array(m * kvDim(model));
    this.attn = new Float32Array(m * qDim(model));
    this.proj = new Float32Array(m * this.h);
    this.logits = new Float32Array(m * this.E);
    this.nextLogits = new Float32Array(m * this.E);
    this.chosen = new Int32Array(m * this.k);
    this.chosenWeights = new Float32Array(m * this.k);
    this.expertOut = new Float32Array(m * this.k * this.h);
    this.gathered = new Float32Array(m * this.h);
    this.gateAct = new Float32Array(m * this.fe);
    this.upAct = new Float32Array(m * this.fe);
    this.down = new Float32Array(m * this.h);
    this.norm = new Float32Array(this.h);
    this.bias = new Float32Array(Math.max(qDim(model), kvDim(model)));
    const fs = weights.layers[0]?.sharedExpert?.ffnSize ?? 0;
    this.sharedGateAct = new Float32Array(m * fs);
    this.sharedUpAct = new Float32Array(m * fs);
    this.sharedGateLogit = new Float32Array(m);
    this.scores = new Float32Array(model.maxPositions);
    const widest = Math.max(this.h, this.fe, qDim(model), fs);
    const scratch = linearScratchLength(m, widest);
    this.tile = new Float32Array(scratch.tile);
    this.tileOut = new Float32Array(scratch.out);
    this.last = new Float32Array(batch * this.h);
    this.vocabLogits = new Float32Array(batch * model.vocabSize);
  }

  /** out = x W^T (+ bias), W stored at `bits` (16: fp16), a bias stored at the attention precision. */
  private linear(
    x: Float32Array,
    w: Uint16Array,
    out: Float32Array,
    m: number,
    k: number,
    n: number,
    bits = 16,
    bias?: Uint16Array,
  ): void {
    const b = bias ? this.biasValues(bias, n) : undefined;
    linearAtBits(x, w, b, out, { m, k, n, bits: bits as ExpertBits }, { tile: this.tile, out: this.tileOut });
  }

  /** A bias vector of `n` values (Qwen2-MoE's q/k/v), stored at the attention precision. */
  private biasValues(bias: Uint16Array, n: number): Float32Array {
    const out = this.bias.subarray(0, n);
    if (this.bits.attention === 16) return fromFloat16Array(bias, out);
    dequantizeGroupwise(bytesOf(bias), this.bits.attention, n, 0, n, out);
    return out;
  }

  /** A decoder layer's RMSNorm weight, stored at the attention precision. */
  private layerNormWeights(w: Uint16Array): Float32Array {
    if (this.bits.attention === 16) return this.normWeights(w);
    dequantizeGroupwise(bytesOf(w), this.bits.attention, this.h, 0, this.h, this.norm);
    return this.norm;
  }

  /** The LM head's logits of the last step, [batch, vocab] (overwritten by the next step). */
  get lmHeadLogits(): Float32Array {
    return this.vocabLogits;
  }

  private normWeights(w: Uint16Array): Float32Array {
    return fromFloat16Array(w, this.norm);
  }

  /**
   * One step: `tokens` holds `t` new tokens per sequence (sequence-major), at positions past .. past+t-1.
   * Returns each sequence's greedy next token.
   */
  step(
    tokens: Int32Array,
    t: number,
    past: number,
    phase: MoePhase,
    experts: ExpertExecutor,
    observe?: RoutingObserver,
  ): Int32Array {
    const { model, batch: B, h } = this;
    const m = B * t;
    checkMoeStep(tokens, t, past, {
      batch: B,
      maxTokensPerStep: this.maxTokensPerStep,
      vocabSize: model.vocabSize,
      positions: model.maxPositions,
      positionsOf: `the model's ${model.maxPositions} positions`,
    });
    for (let i = 0; i < m; i++) {
      const id = tokens[i]!;
      fromFloat16Array(this.weights.embed.subarray(id * h, (id + 1) * h), this.x.subarray(i * h, (i + 1) * h));
    }
    for (let l = 0; l < model.numLayers; l++) {
      this.attentionBlock(l, t, past);
      this.moeBlock(l, m, phase, experts, observe);
    }
    // Final norm and LM head on each sequence's last token.
    for (let b = 0; b < B; b++) this.last.set(this.x.subarray((b * t + t - 1) * h, (b * t + t) * h), b * h);
    rmsNorm(this.last, this.normWeights(this.weights.finalNorm), this.last, B, h, this.rmsNormEps);
    this.linear(this.last, this.weights.lmHead, this.vocabLogits, B, h, model.vocabSize);
    const next = new Int32Array(B);
    for (let b = 0; b < B; b++) next[b] = argmax(this.vocabLogits, b * model.vocabSize, model.vocabSize);
    return next;
  }

  private attentionBlock(l: number, t: number, past: number): void {
    const { model, batch: B, h, d } = this;
    const w = this.weights.layers[l]!;
    const m = B * t;
    const qw = qDim(model);
    const kvw = kvDim(model);
    const a = this.bits.attention;
    rmsNorm(this.x, this.layerNormWeights(w.inputNorm), this.xn, m, h, this.rmsNormEps);
    const biases = w.attentionBiases;
    this.linear(this.xn, w.q, this.q, m, h, qw, a, biases?.q);
    this.linear(this.xn, w.k, this.kNew, m, h, kvw, a, biases?.k);
    this.linear(this.xn, w.v, this.vNew, m, h, kvw, a, biases?.v);
    for (let b = 0; b < B; b++) {
      const kCache = this.kv.key(l, b);
      const vCache = this.kv.value(l, b);
      for (let i = 0; i < t; i++) {
        const row = b * t + i;
        this.rope.apply(this.q, row, model.numHeads, past + i);
        this.rope.apply(this.kNew, row, model.numKvHeads, past + i);
        kCache.set(this.kNew.subarray(row * kvw, (row + 1) * kvw), (past + i) * kvw);
        vCache.set(this.vNew.subarray(row * kvw, (row + 1) * kvw), (past + i) * kvw);
      }
      gqaAttention(
        this.q.subarray(b * t * qw, (b + 1) * t * qw),
        kCache,
        vCache,
        this.attn.subarray(b * t * qw, (b + 1) * t * qw),
        t,
        past,
        model.numHeads,
        model.numKvHeads,
        d,
        this.scores,
      );
    }
    this.linear(this.attn, w.o, this.proj, m, qw, h, a);
    for (let i = 0; i < m * h; i++) this.x[i]! += this.proj[i]!;
  }

  private routeRows(logits: Float32Array, m: number, chosen = this.chosen, weights = this.chosenWeights): number[] {
    return routeRows(logits, m, this.k, this.E, this.normTopKProb, chosen, weights);
  }

  private moeBlock(l: number, m: number, phase: MoePhase, experts: ExpertExecutor, observe?: RoutingObserver): void {
    const { h, k, E, fe } = this;
    const w = this.weights.layers[l]!;
    rmsNorm(this.x, this.layerNormWeights(w.postNorm), this.xn, m, h, this.rmsNormEps);
    // A pre-gated model routes this layer with the logits the previous layer's pre-gate computed.
    if (routerOf(this.weights.layers, l) !== w.gate) this.logits.set(this.nextLogits.subarray(0, m * E));
    else this.linear(this.xn, w.gate, this.logits, m, h, E, this.bits.attention);
    const needed = this.routeRows(this.logits, m);
    observe?.(l, this.chosen.subarray(0, m * k), this.chosenWeights.subarray(0, m * k));
    let nextLayerExperts: number[] | undefined;
    if (w.preGate) {
      this.linear(this.xn, w.preGate, this.nextLogits, m, h, E, this.bits.attention);
      nextLayerExperts = this.routeRows(this.nextLogits, m, new Int32Array(m * k), new Float32Array(m * k));
    }
    experts.beforeExperts?.(l, phase, this.xn, m, nextLayerExperts);
    const eb = this.bits.expert;
    const io = expertRowsIo(l, m, h, k, this.chosen, this.xn, this.gathered, this.expertOut);
    const scratch = { gate: this.gateAct, up: this.upAct, out: this.down, tile: this.tile, tileOut: this.tileOut };
    experts.runExperts(
      l,
      phase,
      needed,
      (expert, packed) => {
        const { input, rows: n } = io.gather(expert);
        hostSwigluExpert(input, packed, { rows: n, hidden: h, ffn: fe, bits: eb }, scratch);
        io.scatter(expert, this.down);
      },
      io,
    );
    for (let row = 0; row < m; row++) {
      for (let r = 0; r < k; r++) {
        const weight = this.chosenWeights[row * k + r]!;
        const base = (row * k + r) * h;
        for (let c = 0; c < h; c++) this.x[row * h + c]! += weight * this.expertOut[base + c]!;
      }
    }
    if (w.sharedExpert) this.sharedExpert(w.sharedExpert, m);
  }

  /**
   * Qwen2-MoE's shared expert on every token: x += sigmoid(shared_expert_gate · xn) · down(silu(gate xn) · up xn),
   * added after the routed experts (modeling_qwen2_moe.py's Qwen2MoeSparseMoeBlock.forward).
   */
  private sharedExpert(shared: NonNullable<MixtralLayerWeights["sharedExpert"]>, m: number): void {
    const { h } = this;
    const fs = shared.ffnSize;
    this.linear(this.xn, shared.gateProj, this.sharedGateAct, m, h, fs, this.bits.attention);
    this.linear(this.xn, shared.upProj, this.sharedUpAct, m, h, fs, this.bits.attention);
    siluGateInPlace(this.sharedGateAct, this.sharedUpAct, m * fs);
    this.linear(this.sharedGateAct, shared.downProj, this.down, m, fs, h, this.bits.attention);
    this.linear(this.xn, shared.gate, this.sharedGateLogit, m, h, 1, this.bits.attention);
    for (let row = 0; row < m; row++) {
      const g = 1 / (1 + Math.exp(-this.sharedGateLogit[row]!));
      for (let c = 0; c < h; c++) this.x[row * h + c]! += g * this.down[row * h + c]!;
    }
  }
}

/**
 * Mixtral's router for one token: softmax over the gate logits, the top k by probability (ties: the
 * lower index), their probabilities renormalised to sum to one (Qwen2-MoE only with norm_topk_prob:
 * `renormalise` false keeps the softmax probabilities).
 */
export function route(
  logits: Float32Array,
  k: number,
  experts: Int32Array,
  weights: Float32Array,
  renormalise = true,
): void {
  const E = logits.length;
  let max = -Infinity;
  for (let e = 0; e < E; e++) if (logits[e]! > max) max = logits[e]!;
  let sum = 0;
  const probs = new Float64Array(E);
  for (let e = 0; e < E; e++) {
    probs[e] = Math.exp(logits[e]! - max);
    sum += probs[e]!;
  }
  const taken = new Uint8Array(E);
  let chosenSum = 0;
  for (let r = 0; r < k; r++) {
    let best = -1;
    for (let e = 0; e < E; e++) if (!taken[e] && (best < 0 || probs[e]! > probs[best]!)) best = e;
    taken[best] = 1;
    experts[r] = best;
    weights[r] = probs[best]! / sum;
    chosenSum += probs[best]! / sum;
  }
  if (renormalise) for (let r = 0; r < k; r++) weights[r] = weights[r]! / chosenSum;
}

/**
 * Routes every row of `logits` [m, E] into `chosen`/`weights` [m, k] (route() per row); returns the
 * batch's experts in first-seen order.
 */
export function routeRows(
  logits: Float32Array,
  m: number,
  k: number,
  E: number,
  renormalise: boolean,
  chosen: Int32Array,
  weights: Float32Array,
): number[] {
  const needed: number[] = [];
  const seen = new Uint8Array(E);
  for (let row = 0; row < m; row++) {
    route(
      logits.subarray(row * E, (row + 1) * E),
      k,
      chosen.subarray(row * k, (row + 1) * k),
      weights.subarray(row * k, (row + 1) * k),
      renormalise,
    );
    for (let r = 0; r < k; r++) {
      const e = chosen[row * k + r]!;
      if (!seen[e]) {
        seen[e] = 1;
        needed.push(e);
      }
    }
  }
  return needed;
}

/** The token rows of layer l's routing `chosen` [m, k] that route to `expert` (row order), and the rank of each. */
export function routedRows(
  l: number,
  m: number,
  k: number,
  chosen: Int32Array,
  expert: number,
): { rows: number[]; ranks: number[] } {
  const rows: number[] = [];
  const ranks: number[] = [];
  for (let row = 0; row < m; row++) {
    for (let r = 0; r < k; r++)
      if (chosen[row * k + r] === expert) {
        rows.push(row);
        ranks.push(r);
      }
  }
  if (rows.length === 0) throw new Error(`layer ${l}: expert ${expert} was run but no token routes to it`);
  return { rows, ranks };
}

/**
 * Layer l's expert rows over a step's `m` token rows: router choices in `chosen` [m, k], inputs in `xn`
 * [m, hidden]; gathered rows go through `gathered`, outputs land in `expertOut` [m, k, hidden] by rank.
 */
export function expertRowsIo(
  l: number,
  m: number,
  h: number,
  k: number,
  chosen: Int32Array,
  xn: Float32Array,
  gathered: Float32Array,
  expertOut: Float32Array,
): ExpertIo {
  const rowsOf = (expert: number) => routedRows(l, m, k, chosen, expert);
  return {
    gather: (expert) => {
      const { rows } = rowsOf(expert);
      for (let i = 0; i < rows.length; i++) gathered.set(xn.subarray(rows[i]! * h, (rows[i]! + 1) * h), i * h);
      return { input: gathered.subarray(0, rows.length * h), rows: rows.length };
    },
    scatter: (expert, output) => {
      const { rows, ranks } = rowsOf(expert);
      for (let i = 0; i < rows.length; i++)
        expertOut.set(output.subarray(i * h, (i + 1) * h), (rows[i]! * k + ranks[i]!) * h);
    },
  };
}

/** Scratch of hostSwigluExpert: gate and up [rows, ffn], out [rows, hidden], and the linear's tiles. */
export interface HostExpertScratch {
  readonly gate: Float32Array;
  readonly up: Float32Array;
  readonly out: Float32Array;
  readonly tile: Float32Array;
  readonly tileOut: Float32Array;
}

/** A routed expert on the host's CPU from its packed stored weights (w1 | w3 | w2): scratch.out = w2(silu(w1 x) · w3 x). */
export function hostSwigluExpert(
  input: Float32Array,
  packed: Uint16Array,
  shape: { readonly rows: number; readonly hidden: number; readonly ffn: number; readonly bits: ExpertBits },
  scratch: HostExpertScratch,
): void {
  const { rows: n, hidden: h, ffn: fe, bits } = shape;
  const w1Len = quantizedByteLength(fe * h, bits) / 2; // one matrix's stored bytes, in halves
  const tiles = { tile: scratch.tile, out: scratch.tileOut };
  linearAtBits(input, packed.subarray(0, w1Len), undefined, scratch.gate, { m: n, k: h, n: fe, bits }, tiles);
  linearAtBits(input, packed.subarray(w1Len, 2 * w1Len), undefined, scratch.up, { m: n, k: h, n: fe, bits }, tiles);
  siluGateInPlace(scratch.gate, scratch.up, n * fe);
  linearAtBits(
    scratch.gate,
    packed.subarray(2 * w1Len, 3 * w1Len),
    undefined,
    scratch.out,
    { m: n, k: fe, n: h, bits },
    tiles,
  );
}
