/**
 * What the MoE runner steps: a Mixtral-style decoder over its resident weights (MixtralModel, the CPU
 * backend's, by default), or the decoder of the device that holds the experts (the CUDA backend's runs
 * attention, norms, routers, the shared expert and the LM head on the device:
 * ../cuda/cuda-mixtral-decoder.ts). Both route on the host with the same route() and hand each layer's
 * experts to the same ExpertExecutor, so routing, caching and counts are the backend's only through
 * the numbers the router sees.
 */
import type { ModelSpec } from "../../core/model-spec.js";
import type {
  ExpertExecutor,
  MixtralResidentWeights,
  MixtralWeightBits,
  MoePhase,
  RoutingObserver,
} from "./mixtral-model.js";

export interface MoeDecoder {
  /** One lockstep step of `t` tokens per sequence at positions past .. past + t - 1; each sequence's greedy next token. */
  step(
    tokens: Int32Array,
    t: number,
    past: number,
    phase: MoePhase,
    experts: ExpertExecutor,
    observe?: RoutingObserver,
  ): Int32Array;
  /** The LM head's logits of the last step, [batch, vocab]. */
  readonly lmHeadLogits: Float32Array;
}

/** Everything a decoder needs to be built for a pass (as MixtralModel's constructor takes it). */
export interface MoeDecoderSetup {
  readonly model: ModelSpec;
  /** The non-expert weights as placed for the pass (host-addressable). */
  readonly weights: MixtralResidentWeights;
  readonly batch: number;
  readonly maxTokensPerStep: number;
  /** Positions per sequence the pass reaches (prompt + generated - 1): the KV cache's rows. */
  readonly maxLength: number;
  readonly ropeTheta: number;
  readonly rmsNormEps: number;
  readonly normTopKProb: boolean;
  readonly bits: MixtralWeightBits;
}
