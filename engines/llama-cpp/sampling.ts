/**
 * Token sampling on the host, which llama-server and llama-cli do per generated token and llama-bench does not.
 *
 * Count (ggml-org/llama.cpp common/sampling.cpp `common_sampler_sample`, common/common.h default `samplers`):
 * the candidates array is filled from the logits, one entry per vocabulary token, then the default chain runs:
 * penalties, DRY, top-n-sigma, typical and XTC are no-ops at their defaults (repeat penalty 1.0, DRY multiplier
 * 0, top-n-sigma -1, typical-p 1.0, XTC probability 0), top-k 40 selects over the whole vocabulary, and top-p,
 * min-p, temperature and the draw then see 40 candidates. The work is linear in the vocabulary.
 *
 * Rate. ggml-org/llama.cpp issue 34 (drosanda, 2024-12-15): llama-cli, default sampling, Llama-3.2-1B-Instruct
 * Q4_K_M (vocabulary 128,256) on an Intel Core i5-13400F: "sampling time = 8.69 ms / 137 runs (0.06 ms per
 * token)", the sampler chain's own timer (`llama_perf_sampler_print`), so 8.69 ms / 137 / 128,256 = 0.49 ns per
 * vocabulary entry. That timer leaves out the fill of the candidates array (counted separately since
 * ggml-org/llama.cpp PR 17382), so this is a lower bound, measured on a different CPU than the ones priced.
 */
export const SAMPLING_SECONDS_PER_VOCAB_ENTRY = 8.69e-3 / 137 / 128256;

/** Host time to sample one token over a vocabulary of `vocabSize` with llama.cpp's default sampler chain. */
export function samplingSecondsPerToken(vocabSize: number): number {
  return vocabSize * SAMPLING_SECONDS_PER_VOCAB_ENTRY;
}
