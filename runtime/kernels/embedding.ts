/**
 * OPT's input embeddings: token embeddings looked up by id, plus learned positional embeddings.
 * OPTLearnedPositionalEmbedding has num_positions = max_position_embeddings + 2 rows and reads row
 * position + 2 (an offset kept from fairseq, whose first rows were reserved for padding).
 */

export const OPT_POSITION_OFFSET = 2;

/** out[i, :] = table[ids[i], :] for each of ids.length tokens; table is [vocab, dim]. */
export function embedTokens(ids: Int32Array, table: Float32Array, dim: number, out: Float32Array): void {
  const vocab = Math.floor(table.length / dim);
  if (out.length < ids.length * dim)
    throw new RangeError(`embedTokens: out has ${out.length} values, needs ${ids.length * dim}`);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= vocab)
      throw new RangeError(`embedTokens: token id ${id} outside the vocabulary (0..${vocab - 1})`);
    out.set(table.subarray(id * dim, id * dim + dim), i * dim);
  }
}

/**
 * out[i, :] += positions[startPosition + i + 2, :] for i < t, where `positions` is [maxPos + 2, h]
 * and startPosition is the number of tokens already in the sequence (the KV cache length).
 */
export function addPositions(
  out: Float32Array,
  positions: Float32Array,
  startPosition: number,
  t: number,
  h: number,
): void {
  const rows = Math.floor(positions.length / h);
  const lastRow = startPosition + t - 1 + OPT_POSITION_OFFSET;
  if (startPosition < 0 || (t > 0 && lastRow >= rows)) {
    throw new RangeError(
      `addPositions: positions ${startPosition}..${startPosition + t - 1} need row ${lastRow}, table has ${rows} rows`,
    );
  }
  if (out.length < t * h) throw new RangeError(`addPositions: out has ${out.length} values, needs t*h = ${t * h}`);
  for (let i = 0; i < t; i++) {
    const src = (startPosition + i + OPT_POSITION_OFFSET) * h;
    const dst = i * h;
    for (let d = 0; d < h; d++) out[dst + d] = out[dst + d]! + positions[src + d]!;
  }
}
