/**
 * Speculative expert guessing as Eliseev & Mazur describe it (arXiv 2312.17238, section 3.2,
 * "speculative expert loading"): while layer l runs, apply the router of layer l + a to layer l's
 * hidden state and take its top experts as the guess for layer l + a.
 *
 * Which hidden state: layer l's router input, i.e. the residual stream after layer l's attention
 * passed through layer l's post-attention RMSNorm — exactly the vector layer l's own gate reads (in
 * dvmazur/mixtral-offloading, src/custom_layers.py, `SparseMoeWrapper.forward` applies `self.gate` to
 * the `hidden_states` the decoder layer hands the MoE block, which Hugging Face's MixtralDecoderLayer
 * has normalised with `post_attention_layernorm`). The released repository does not contain the
 * speculative loader itself (its README lists "speculative expert prefetching" as upcoming), so the
 * choice follows the paper's description (recalled, not re-checked against its text here): the guess is available as soon as layer l's router input is, before layer
 * l's experts run, at the cost of one small matrix product ([rows, hidden] x [hidden, experts]).
 *
 * Per token, the guess is the target router's top `perLayer` experts by softmax probability (ties:
 * the lower index), with those probabilities renormalised to sum to 1 — the model's own `route()` with
 * k = perLayer. A batch's guess for a layer combines its tokens' ranked lists with
 * simulator/expert-predictor.ts's `batchGuesses`, which the replay of a recorded trace shares.
 */
import type { ExpertBits } from "../../core/expert-policy.js";
import { linearScratchLength } from "../kernels/linear-f16.js";
import { linearAtBits } from "../kernels/linear-quantized.js";
import { type LookaheadGuesses, route } from "./mixtral-model.js";

/** rows x perLayer experts, best first per row, and their renormalised probabilities under the target layer's router. */
export type TokenGuesses = LookaheadGuesses;

export class GateLookahead {
  private logits = new Float32Array(0);
  private tile = new Float32Array(0);
  private tileOut = new Float32Array(0);

  /**
   * @param routers per layer t, the fp16 [numExperts, hidden] weights whose product with a router
   *   input gives layer t's routing logits (a standard model: layer t's gate; a pre-gated model: layer
   *   t - 1's pre-gate).
   * @param distance a: guesses for layer l + a are made from layer l's router input (>= 1).
   * @param perLayer experts guessed per token (1 .. numExperts).
   * @param routerBits the routers' stored precision (the policy's attentionBits; below 16 they arrive as
   *   views of their quantised bytes, as MixtralModel reads them).
   */
  constructor(
    private readonly routers: readonly Uint16Array[],
    readonly hiddenSize: number,
    readonly numExperts: number,
    readonly distance: number,
    readonly perLayer: number,
    private readonly routerBits: ExpertBits = 16,
  ) {
    if (!(Number.isInteger(distance) && distance >= 1)) throw new Error(`guess distance ${distance}; expected >= 1`);
    if (!(Number.isInteger(perLayer) && perLayer >= 1 && perLayer <= numExperts))
      throw new Error(`${perLayer} guesses per layer; expected 1..${numExperts}`);
  }

  /** The layer that layer `layer`'s router input guesses for. */
  target(layer: number): number {
    return layer + this.distance;
  }

  /**
   * Each token row's ranked guesses for layer `layer + distance`, from layer `layer`'s router input
   * ([rows, hidden], fp32); undefined when that layer is past the last one.
   */
  guess(layer: number, routerInput: Float32Array, rows: number): TokenGuesses | undefined {
    const router = this.routers[this.target(layer)];
    if (!router) return undefined;
    const { hiddenSize: h, numExperts: E, perLayer: m } = this;
    if (this.logits.length < rows * E) {
      const scratch = linearScratchLength(rows, h);
      this.logits = new Float32Array(rows * E);
      this.tile = new Float32Array(scratch.tile);
      this.tileOut = new Float32Array(scratch.out);
    }
    linearAtBits(
      routerInput,
      router,
      undefined,
      this.logits,
      { m: rows, k: h, n: E, bits: this.routerBits },
      { tile: this.tile, out: this.tileOut },
    );
    const experts = new Int32Array(rows * m);
    const weights = new Float32Array(rows * m);
    for (let row = 0; row < rows; row++) {
      route(
        this.logits.subarray(row * E, (row + 1) * E),
        m,
        experts.subarray(row * m, (row + 1) * m),
        weights.subarray(row * m, (row + 1) * m),
      );
    }
    return { experts, weights };
  }
}
