/**
 * Built-in model catalogue: architecture numbers from each model's published Hugging Face config.json.
 */
import type { ModelSpec, MoeSpec } from "../core/model-spec.js";

function opt(
  name: string,
  numLayers: number,
  hiddenSize: number,
  numHeads: number,
  wordEmbedDim = hiddenSize,
): ModelSpec {
  return {
    name,
    family: "opt",
    numLayers,
    hiddenSize,
    ffnSize: 4 * hiddenSize,
    numHeads,
    numKvHeads: numHeads,
    vocabSize: 50272,
    maxPositions: 2048,
    ffnKind: "relu",
    wordEmbedDim,
    tiedEmbeddings: true,
    bytesPerParam: 2,
  };
}

function llamaLike(
  name: string,
  family: "llama" | "mistral" | "mixtral",
  numLayers: number,
  hiddenSize: number,
  ffnSize: number,
  numHeads: number,
  numKvHeads: number,
  vocabSize: number,
  maxPositions: number,
  moe?: { numExperts: number; expertsPerToken: number },
): ModelSpec {
  return {
    name,
    family,
    numLayers,
    hiddenSize,
    ffnSize,
    numHeads,
    numKvHeads,
    vocabSize,
    maxPositions,
    ffnKind: "swiglu",
    wordEmbedDim: hiddenSize,
    tiedEmbeddings: false,
    bytesPerParam: 2,
    ...(moe ? { moe: { ...moe, expertFfnSize: ffnSize } } : {}),
  };
}

/**
 * An MoE model from its config.json: `ffnSize` is the config's dense `intermediate_size` (no layer of
 * these models is dense), `moe.expertFfnSize` the routed experts' width. Untied embeddings throughout.
 */
function moeModel(
  name: string,
  family: "qwen2_moe" | "olmoe" | "qwen3_moe",
  numLayers: number,
  hiddenSize: number,
  ffnSize: number,
  numHeads: number,
  numKvHeads: number,
  vocabSize: number,
  maxPositions: number,
  moe: MoeSpec,
  headDim?: number,
): ModelSpec {
  return {
    name,
    family,
    numLayers,
    hiddenSize,
    ffnSize,
    numHeads,
    ...(headDim !== undefined ? { headDim } : {}),
    numKvHeads,
    vocabSize,
    maxPositions,
    ffnKind: "swiglu",
    wordEmbedDim: hiddenSize,
    tiedEmbeddings: false,
    bytesPerParam: 2,
    moe,
  };
}

export const MODEL_CATALOGUE: readonly ModelSpec[] = [
  opt("opt-125m", 12, 768, 12),
  opt("opt-350m", 24, 1024, 16, 512),
  opt("opt-1.3b", 24, 2048, 32),
  opt("opt-2.7b", 32, 2560, 32),
  opt("opt-6.7b", 32, 4096, 32),
  opt("opt-13b", 40, 5120, 40),
  opt("opt-30b", 48, 7168, 56),
  opt("opt-66b", 64, 9216, 72),
  opt("opt-175b", 96, 12288, 96),
  llamaLike("llama-2-7b", "llama", 32, 4096, 11008, 32, 32, 32000, 4096),
  llamaLike("llama-2-13b", "llama", 40, 5120, 13824, 40, 40, 32000, 4096),
  llamaLike("llama-2-70b", "llama", 80, 8192, 28672, 64, 8, 32000, 4096),
  llamaLike("mistral-7b", "mistral", 32, 4096, 14336, 32, 8, 32000, 32768),
  llamaLike("mixtral-8x7b", "mixtral", 32, 4096, 14336, 32, 8, 32000, 32768, { numExperts: 8, expertsPerToken: 2 }),
  llamaLike("mixtral-8x22b", "mixtral", 56, 6144, 16384, 48, 8, 32768, 65536, { numExperts: 8, expertsPerToken: 2 }),
  // Qwen/Qwen1.5-MoE-A2.7B: 60 experts of 1408, top-4, plus one sigmoid-gated shared expert of 5632.
  moeModel("qwen1.5-moe-a2.7b", "qwen2_moe", 24, 2048, 5632, 16, 16, 151936, 8192, {
    numExperts: 60,
    expertsPerToken: 4,
    expertFfnSize: 1408,
    sharedExperts: 1,
    sharedExpertFfnSize: 5632,
  }),
  // allenai/OLMoE-1B-7B-0924: 64 experts of 1024 (its intermediate_size), top-8.
  moeModel("olmoe-1b-7b", "olmoe", 16, 2048, 1024, 16, 16, 50304, 4096, {
    numExperts: 64,
    expertsPerToken: 8,
    expertFfnSize: 1024,
  }),
  // Qwen/Qwen3-30B-A3B: 128 experts of 768, top-8; 32 heads of 128 over hidden 2048 (q_proj 2048 x 4096).
  moeModel(
    "qwen3-30b-a3b",
    "qwen3_moe",
    48,
    2048,
    6144,
    32,
    4,
    151936,
    40960,
    { numExperts: 128, expertsPerToken: 8, expertFfnSize: 768 },
    128,
  ),
  // Tiny synthetic MoE models for the CPU runtime (spillway synth-weights writes seeded checkpoints of them):
  // Mixtral's layout at 4 layers, hidden 64, 4 heads over 2 KV heads, 8 experts of 128 top-2, vocab 256 ...
  llamaLike("mixtral-tiny", "mixtral", 4, 64, 128, 4, 2, 256, 256, { numExperts: 8, expertsPerToken: 2 }),
  // ... and Qwen2-MoE's (q/k/v biases) with 8 experts of 128 top-2 beside one sigmoid-gated shared expert of 256.
  moeModel("qwen2-moe-tiny", "qwen2_moe", 4, 64, 256, 4, 2, 256, 256, {
    numExperts: 8,
    expertsPerToken: 2,
    expertFfnSize: 128,
    sharedExperts: 1,
    sharedExpertFfnSize: 256,
  }),
];

/** Accepts catalogue names case-insensitively, with or without a "facebook/" style prefix. */
export function findCatalogueModel(name: string): ModelSpec | undefined {
  const key = name
    .toLowerCase()
    .replace(/^.*\//, "")
    .replace(/-v0\.\d$/, "")
    .replace(/-hf$/, "")
    .replace(/^(olmoe-1b-7b)-\d{4}$/, "$1");
  return MODEL_CATALOGUE.find((m) => m.name === key);
}
