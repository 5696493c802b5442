/**
 * The steps mixtral-offloading repeats for one decoder layer, cut where the host waits for the GPU.
 *
 * Everything runs on PyTorch's default stream, so kernels and the expert copies of `ExpertCache._swap`
 * (non_blocking, but on that same stream) run one after another: one GPU chain per step, the copies on
 * the h2d and d2h lanes. The host thread dispatches each torch call and may run ahead of the GPU only
 * until the next synchronisation: the router's `unique().tolist()` and each expert's `torch.where` and
 * `.tolist()` (src/custom_layers.py `SparseMoeWrapper.forward`). So a layer is a sequence of steps, each
 * ending at such a wait and lasting as long as the longer of the host's dispatching and the GPU's
 * work in it (the dispatch chain beside the GPU chain):
 * - norms, attention and router, up to `unique().tolist()`;
 * - one step per expected cache miss: the swap copies, which the first expert's `torch.where` waits for;
 * - one step per selected expert: its gather, three HQQ linears, activation and index_add_.
 * The expert step that ends a layer is costed on its own although the host could already dispatch the
 * next layer's attention during it: a slight overestimate.
 */
import type { ModelSpec } from "../../core/model-spec.js";
import { headDim, kvDim, qDim } from "../../core/model-spec.js";
import type { EngineOperation, EngineStep } from "../engine-model.js";
import { hostDispatchSeconds, kernelLaunches } from "../host-dispatch.js";
import { gpuGemmSeconds, type KernelRates } from "../kernel-rates.js";
import { op } from "../step-time.js";
import {
  ATTENTION_OTHER_CALLS,
  DECODER_LAYER_CALLS,
  EXPERT_INDEX_UPLOADS,
  EXPERT_LOOP_CALLS,
  EXPERT_SYNCS,
  FORWARD_CALLS,
  FORWARD_SYNCS,
  HQQ_LINEAR_CALLS,
  RMS_NORM_CALLS,
  ROUTER_CALLS,
  ROUTER_SYNCS,
  SWAP_CALLS,
} from "./framework-ops.js";
import { type HqqLayout, hqqCallOperations, tritonLaunches } from "./hqq.js";

/** The chart terms the engine's operations are charged to. */
export const TERMS = {
  host: "host dispatch",
  sync: "host synchronisation",
  attention: "attention",
  router: "router",
  dequantize: "HQQ scale/zero dequantisation",
  expertFfn: "expert FFN",
  fetch: "expert fetch (host->device)",
  writeBack: "expert write-back (device->host)",
  head: "LM head and sampling",
} as const;

export interface LayerShape {
  readonly model: ModelSpec;
  readonly rates: KernelRates;
  readonly attention: HqqLayout;
  readonly experts: HqqLayout;
  /** Stored bytes of one expert (one packed storage, src/expert_wrapper.py): what a swap copies each way. */
  readonly expertBytes: number;
  /** Sequences in the forward. */
  readonly batch: number;
}

/** What one forward looks like to a layer: tokens per sequence, context, and the routed experts' expected counts. */
export interface LayerPass {
  readonly phase: "prefill" | "decode";
  /** Tokens per sequence in this forward: the prompt length, or 1. */
  readonly tokensPerSequence: number;
  /** Keys each new token attends to (the cache after this forward's tokens are appended). */
  readonly context: number;
  /** Distinct experts the forward's tokens select in a layer (expected). */
  readonly touched: number;
  /** Of those, not resident: each swapped in (expected). */
  readonly misses: number;
  /** Rows each selected expert multiplies. */
  readonly tokensPerExpert: number;
  /** How many times the layer pass happens (layers x forwards it stands for). */
  readonly repeat: number;
}

const MOE_SOURCE = "src/custom_layers.py SparseMoeWrapper.forward";
const ATTENTION_SOURCE = "transformers 4.36.1 modeling_mixtral.py MixtralAttention.forward (eager)";
const LAYER_SOURCE = "transformers 4.36.1 modeling_mixtral.py MixtralDecoderLayer.forward";
const SWAP_SOURCE = "src/expert_cache.py ExpertCache._swap";
const GENERATE_SOURCE = "transformers 4.36.1 MixtralForCausalLM.forward and GenerationMixin.sample";

/** Bytes per element of MixtralRMSNorm: fp32 upcast (2+4), pow (4+4), mean (4), scale (4+4), cast back (4+2), weight (2+2). */
const RMS_NORM_BYTES_PER_VALUE = 36;
/** Kernels of the rotary embedding on q and k: index cos and sin (2), unsqueeze views, then per tensor mul, neg, cat, mul, add (10). */
const ROTARY_KERNELS = 2 + 10;
/** Elementwise kernels of apply_rotary_pos_emb that read and write a whole q or k tensor: mul, neg+cat (one pass), mul, add, and the cat. */
const ROTARY_PASSES = 5;
/** Score bytes per element from QK^T to AV: divide (2+2), mask add (2+2), softmax in fp32 (2+4), cast back (4+2). */
const SCORE_BYTES_PER_VALUE = 4 + 4 + 6 + 6;
/** Router kernels after the gate GEMM: softmax, topk, sum, divide, cast, zeros, one_hot, unique (sort, unique, count: 3). */
const ROUTER_KERNELS = 10;
/** Router bytes per token and expert: softmax in fp32 (read 2, write 4) and topk reading it (4). */
const ROUTER_BYTES_PER_LOGIT = 6 + 4;
/** `one_hot` writes int64: 8 bytes per token, choice and expert (the expert mask each expert's `torch.where` reads a row of). */
const ONE_HOT_BYTES = 8;
/**
 * Bytes per vocabulary entry of one sampled row (fp32 logits): temperature divide (8), top-p sort (12,
 * one pass), softmax (8), cumsum (8), compare (5), scatter (10), masked_fill (9), softmax (8),
 * multinomial (4); and their kernels.
 */
const SAMPLING_BYTES_PER_LOGIT = 72;
const SAMPLING_KERNELS = 10;
/** Kernels of `_prepare_4d_causal_attention_mask` per forward. */
const MASK_KERNELS = 10;

function kernels(
  rates: KernelRates,
  name: string,
  count: number,
  bytes: number,
  rate: "elementwise" | "strided",
  term: string,
  source: string,
): EngineOperation {
  const bandwidth = rate === "elementwise" ? rates.gpuElementwiseBytesPerSecond : rates.gpuStridedBytesPerSecond;
  return op(name, "gpu", count * rates.gpuKernelLaunchSeconds + bytes / bandwidth, term, source, {
    bytes,
    launches: count,
  });
}

/** A batched matmul over activations (attention scores): roofline of FLOPs and bytes, plus a launch. */
function batchedMatmul(
  rates: KernelRates,
  name: string,
  flops: number,
  bytes: number,
  term: string,
  source: string,
): EngineOperation {
  const seconds =
    Math.max(flops / rates.gpuFlopsPerSecond, bytes / rates.gpuMemoryBytesPerSecond) + rates.gpuKernelLaunchSeconds;
  return op(name, "gpu", seconds, term, source, { bytes, flops, launches: 1 });
}

/** The host's dispatch of `calls` torch calls launching the torch kernels among `gpu` (engines/host-dispatch.ts). */
function dispatch(
  rates: KernelRates,
  what: string,
  calls: number,
  source: string,
  gpu: readonly EngineOperation[],
): EngineOperation {
  const launches = kernelLaunches(gpu);
  return op(
    `${what}: ${calls} torch calls dispatched, ${launches} kernel launches`,
    "hostThread",
    hostDispatchSeconds(rates, calls, launches),
    TERMS.host,
    source,
  );
}

function syncs(rates: KernelRates, what: string, count: number, source: string): EngineOperation {
  return op(`${what}: ${count} device->host waits`, "d2h", count * rates.d2hLatencySeconds, TERMS.sync, source);
}

/** Norms, attention, residuals and router of one layer, ending at the router's `unique().tolist()`. */
function attentionStep(shape: LayerShape, pass: LayerPass): EngineStep {
  const { model, rates, attention, batch } = shape;
  const h = model.hiddenSize;
  const q = qDim(model);
  const kv = kvDim(model);
  const heads = model.numHeads;
  const E = model.moe!.numExperts;
  const k = model.moe!.expertsPerToken;
  const Ts = pass.tokensPerSequence;
  const T = batch * Ts;
  const ctx = pass.context;
  const scores = batch * heads * Ts * ctx;
  const gpu: EngineOperation[] = [
    kernels(
      rates,
      "input and post-attention RMSNorm, residual adds",
      2 * RMS_NORM_CALLS + 2,
      2 * RMS_NORM_BYTES_PER_VALUE * T * h + 2 * 3 * T * h * 2,
      "elementwise",
      TERMS.attention,
      LAYER_SOURCE,
    ),
  ];
  const projections: [string, number, number][] = [
    ["q_proj", h, q],
    ["k_proj", h, kv],
    ["v_proj", h, kv],
  ];
  for (const [name, inputs, outputs] of projections)
    gpu.push(
      ...hqqCallOperations(rates, attention, { inputs, outputs, rows: T }, name, {
        dequantize: TERMS.dequantize,
        matmul: TERMS.attention,
      }),
    );
  gpu.push(
    kernels(
      rates,
      "rotary embedding of q and k",
      ROTARY_KERNELS,
      ROTARY_PASSES * 2 * T * (q + kv) * 2,
      "elementwise",
      TERMS.attention,
      ATTENTION_SOURCE,
    ),
  );
  if (pass.phase === "decode")
    gpu.push(
      kernels(
        rates,
        "KV cache append: DynamicCache.update's torch.cat copies the layer's cache",
        2,
        2 * batch * (2 * ctx - Ts) * kv * 2,
        "elementwise",
        TERMS.attention,
        "transformers 4.36.1 cache_utils.py DynamicCache.update",
      ),
    );
  gpu.push(
    kernels(
      rates,
      "repeat_kv: K and V copied out to every query head",
      2,
      2 * batch * ctx * (kv + q) * 2,
      "strided",
      TERMS.attention,
      ATTENTION_SOURCE,
    ),
    batchedMatmul(
      rates,
      "QK^T",
      2 * scores * headDim(model),
      batch * ctx * q * 2 + T * q * 2 + scores * 2,
      TERMS.attention,
      ATTENTION_SOURCE,
    ),
    kernels(
      rates,
      "scale, mask, softmax in fp32, cast",
      4,
      scores * SCORE_BYTES_PER_VALUE + T * ctx * 2,
      "elementwise",
      TERMS.attention,
      ATTENTION_SOURCE,
    ),
    batchedMatmul(
      rates,
      "attention x V",
      2 * scores * headDim(model),
      scores * 2 + batch * ctx * q * 2 + T * q * 2,
      TERMS.attention,
      ATTENTION_SOURCE,
    ),
    kernels(rates, "transpose().contiguous()", 1, 2 * T * q * 2, "elementwise", TERMS.attention, ATTENTION_SOURCE),
    ...hqqCallOperations(rates, attention, { inputs: q, outputs: h, rows: T }, "o_proj", {
      dequantize: TERMS.dequantize,
      matmul: TERMS.attention,
    }),
    op("router gate (fp16 nn.Linear)", "gpu", gpuGemmSeconds(rates, T, h, E), TERMS.router, MOE_SOURCE, {
      bytes: h * E * 2 + 2 * T * (h + E),
      flops: 2 * T * h * E,
      launches: 1,
    }),
    kernels(
      rates,
      "router softmax, top-k, one_hot, unique",
      ROUTER_KERNELS,
      T * h * 2 + T * E * ROUTER_BYTES_PER_LOGIT + T * k * E * ONE_HOT_BYTES,
      "elementwise",
      TERMS.router,
      MOE_SOURCE,
    ),
    syncs(rates, "unique() and .tolist() of the selected experts", ROUTER_SYNCS, MOE_SOURCE),
  );
  const calls = DECODER_LAYER_CALLS + ATTENTION_OTHER_CALLS + 4 * HQQ_LINEAR_CALLS + ROUTER_CALLS;
  return {
    phase: pass.phase,
    label: `${pass.phase} layer: norms, attention and router, until unique().tolist()`,
    count: pass.repeat,
    chains: [
      [dispatch(rates, "layer up to the router", calls, LAYER_SOURCE, gpu), tritonLaunches(4, "attention", TERMS.host)],
      gpu,
    ],
  };
}

/** One cache miss: `_swap` copies the expert in and the evicted one back, in order on the default stream. */
function missStep(shape: LayerShape, pass: LayerPass): EngineStep {
  const { rates, expertBytes } = shape;
  const copies = [
    op(
      "_swap: missing expert host->device (pinned, non_blocking, default stream)",
      "h2d",
      rates.h2dLatencySeconds + expertBytes / rates.h2dPinnedBytesPerSecond,
      TERMS.fetch,
      SWAP_SOURCE,
      { bytes: expertBytes },
    ),
    op(
      "_swap: evicted expert device->host write-back (pinned, non_blocking, default stream)",
      "d2h",
      rates.d2hLatencySeconds + expertBytes / rates.d2hPinnedBytesPerSecond,
      TERMS.writeBack,
      SWAP_SOURCE,
      { bytes: expertBytes },
    ),
  ];
  return {
    phase: pass.phase,
    label: `${pass.phase} layer: expert cache miss (swap in, write back)`,
    count: pass.repeat * pass.misses,
    chains: [[dispatch(rates, "_swap", SWAP_CALLS, SWAP_SOURCE, copies)], copies],
  };
}

/** One selected expert: from its `torch.where` to the next expert's (or the next layer). */
function expertStep(shape: LayerShape, pass: LayerPass): EngineStep {
  const { model, rates, experts, batch } = shape;
  const h = model.hiddenSize;
  const f = model.moe!.expertFfnSize;
  const k = model.moe!.expertsPerToken;
  const rows = pass.tokensPerExpert;
  const terms = { dequantize: TERMS.dequantize, matmul: TERMS.expertFfn };
  const gpu: EngineOperation[] = [
    kernels(
      rates,
      "expert_mask row, torch.where (nonzero)",
      1,
      batch * pass.tokensPerSequence * k * ONE_HOT_BYTES,
      "elementwise",
      TERMS.expertFfn,
      MOE_SOURCE,
    ),
    syncs(rates, "torch.where, top_x.tolist(), idx.tolist()", EXPERT_SYNCS, MOE_SOURCE),
    op(
      `${EXPERT_INDEX_UPLOADS} index lists copied to the GPU`,
      "h2d",
      EXPERT_INDEX_UPLOADS * rates.h2dLatencySeconds,
      TERMS.sync,
      MOE_SOURCE,
    ),
    kernels(rates, "gather the routed hidden states", 1, 2 * rows * h * 2, "elementwise", TERMS.expertFfn, MOE_SOURCE),
    ...hqqCallOperations(rates, experts, { inputs: h, outputs: f, rows }, "w1", terms),
    ...hqqCallOperations(rates, experts, { inputs: h, outputs: f, rows }, "w3", terms),
    kernels(rates, "SiLU(w1) * w3", 2, rows * f * 2 * (2 + 3), "elementwise", TERMS.expertFfn, MOE_SOURCE),
    ...hqqCallOperations(rates, experts, { inputs: f, outputs: h, rows }, "w2", terms),
    kernels(
      rates,
      "routing weight, multiply, index_add_",
      3,
      rows * h * 2 * (3 + 3),
      "elementwise",
      TERMS.expertFfn,
      MOE_SOURCE,
    ),
  ];
  return {
    phase: pass.phase,
    label: `${pass.phase} layer: one selected expert (where, tolist, HQQ w1/w3/w2)`,
    count: pass.repeat * pass.touched,
    chains: [
      [
        dispatch(rates, "expert loop body", EXPERT_LOOP_CALLS, MOE_SOURCE, gpu),
        tritonLaunches(3, "expert", TERMS.host),
      ],
      gpu,
    ],
  };
}

/** The steps of one layer pass: attention and router, the expected misses, the selected experts. */
export function layerSteps(shape: LayerShape, pass: LayerPass): EngineStep[] {
  const steps = [attentionStep(shape, pass)];
  if (pass.misses > 0) steps.push(missStep(shape, pass));
  steps.push(expertStep(shape, pass));
  return steps;
}

/**
 * Once per forward, outside the layers: embedding, causal mask, final norm, LM head (transformers
 * 4.36.1 computes logits for every position, then `.float()`), and `generate`'s sampling of one token
 * per sequence, with its two waits (the streamer's `.cpu()`, the stopping check).
 */
export function forwardStep(
  shape: LayerShape,
  phase: "prefill" | "decode",
  tokensPerSequence: number,
  context: number,
  count: number,
): EngineStep {
  const { model, rates, batch } = shape;
  const h = model.hiddenSize;
  const V = model.vocabSize;
  const T = batch * tokensPerSequence;
  const gpu: EngineOperation[] = [
    kernels(
      rates,
      "embedding, causal mask, final RMSNorm",
      1 + MASK_KERNELS + RMS_NORM_CALLS,
      2 * T * h * 2 + 2 * T * context * 2 + RMS_NORM_BYTES_PER_VALUE * T * h,
      "elementwise",
      TERMS.head,
      GENERATE_SOURCE,
    ),
    op("lm_head (fp16) over every position", "gpu", gpuGemmSeconds(rates, T, h, V), TERMS.head, GENERATE_SOURCE, {
      bytes: h * V * 2 + 2 * T * (h + V),
      flops: 2 * T * h * V,
      launches: 1,
    }),
    kernels(
      rates,
      "logits.float(), temperature, top-p, multinomial",
      1 + SAMPLING_KERNELS,
      T * V * (2 + 4) + batch * V * SAMPLING_BYTES_PER_LOGIT,
      "elementwise",
      TERMS.head,
      GENERATE_SOURCE,
    ),
    syncs(rates, "streamer .cpu() and the stopping check", FORWARD_SYNCS, GENERATE_SOURCE),
  ];
  return {
    phase,
    label: `${phase}: embedding, LM head and sampling (once per forward)`,
    count,
    chains: [[dispatch(rates, "forward and sampling", FORWARD_CALLS, GENERATE_SOURCE, gpu)], gpu],
  };
}
