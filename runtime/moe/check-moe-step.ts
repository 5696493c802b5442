/**
 * A step's tokens checked before any work, by either decoder: `t` tokens for each of `batch` sequences,
 * at most `maxTokensPerStep`, positions within `positions` (`positionsOf` says whose), ids in the vocabulary.
 */
export function checkMoeStep(
  tokens: Int32Array,
  t: number,
  past: number,
  limits: {
    readonly batch: number;
    readonly maxTokensPerStep: number;
    readonly vocabSize: number;
    readonly positions: number;
    readonly positionsOf: string;
  },
): void {
  const { batch, maxTokensPerStep, vocabSize, positions, positionsOf } = limits;
  if (tokens.length !== batch * t) throw new Error(`step: ${tokens.length} tokens, expected ${batch} sequences x ${t}`);
  if (t > maxTokensPerStep) throw new Error(`step: ${t} tokens per sequence, at most ${maxTokensPerStep}`);
  if (past + t > positions) throw new Error(`step: position ${past + t - 1} is past ${positionsOf}`);
  for (const id of tokens)
    if (!(id >= 0 && id < vocabSize)) throw new Error(`token ${id} is outside the vocabulary (0..${vocabSize - 1})`);
}
