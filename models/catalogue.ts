/**
 * Built-in model catalogue: architecture numbers from each model's published Hugging Face config.json.
 */
import type { ModelSpec } from "../core/model-spec.js";

function opt(name: string, numLayers: number, hiddenSize: number, numHeads: number, wordEmbedDim = hiddenSize): ModelSpec {
  return {
    name, family: "opt", numLayers, hiddenSize, ffnSize: 4 * hiddenSize, numHeads, numKvHeads: numHeads,
    vocabSize: 50272, maxPositions: 2048, ffnKind: "relu", wordEmbedDim, tiedEmbeddings: true, bytesPerParam: 2,
  };
}

function llamaLike(
  name: string, family: "llama" | "mistral" | "mixtral", numLayers: number, hiddenSize: number, ffnSize: number,
  numHeads: number, numKvHeads: number, vocabSize: number, maxPositions: number, moe?: { numExperts: number; expertsPerToken: number },
): ModelSpec {
  return {
    name, family, numLayers, hiddenSize, ffnSize, numHeads, numKvHeads, vocabSize, maxPositions, ffnKind: "swiglu",
    wordEmbedDim: hiddenSize, tiedEmbeddings: false, bytesPerParam: 2,
    ...(moe ? { moe: { ...moe, expertFfnSize: ffnSize } } : {}),
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
];

/** Accepts catalogue names case-insensitively, with or without a "facebook/" style prefix. */
export function findCatalogueModel(name: string): ModelSpec | undefined {
  const key = name.toLowerCase().replace(/^.*\//, "").replace(/-v0\.\d$/, "").replace(/-hf$/, "");
  return MODEL_CATALOGUE.find((m) => m.name === key);
}
