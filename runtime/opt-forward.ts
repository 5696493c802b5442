/**
 * The OPT forward pass, written once over the device operations (device-ops.ts) that both backends
 * implement: a decoder layer in two halves around attention (pre-LayerNorm, q/k/v projections, then
 * the output projection, residual, LayerNorm, ReLU FFN and residual), attention of one sequence over
 * its KV as the cache stores it, the input embedding, and the LM head (final LayerNorm of the last
 * positions, then logits against a possibly streamed token table with a running argmax).
 *
 * The executors own everything around it: where buffers live, transfers, streams and events, the
 * working space's layout and the chunking of a batch's sequences.
 */
import type { DeviceBufferTypes, DeviceOps } from "./device-ops.js";
import type { Encoding } from "./tensor-codec.js";

/** The shapes of an OPT layer: hidden size, FFN size, heads and head dimension. */
export interface OptLayerShape {
  readonly h: number;
  readonly f: number;
  readonly heads: number;
  readonly headDim: number;
}

/** One layer's weights by their name within the layer ("fc1.weight"): fp16 matrices, fp32 vectors. */
export interface OptLayerWeights<B extends DeviceBufferTypes> {
  matrix(name: string): B["f16"];
  vector(name: string): B["f32"];
}

/** Layer `layer`'s weights out of maps keyed by full tensor name. */
export function layerWeightsOf<B extends DeviceBufferTypes>(
  matrices: ReadonlyMap<string, B["f16"]>,
  vectors: ReadonlyMap<string, B["f32"]>,
  layer: number,
): OptLayerWeights<B> {
  const prefix = `model.decoder.layers.${layer}`;
  return {
    matrix: (name) => matrices.get(`${prefix}.${name}`)!,
    vector: (name) => vectors.get(`${prefix}.${name}`)!,
  };
}

/** A chunk's activations [rows, h] (x: the residual stream, y: scratch), its q, k, v and attention output. */
export interface AttentionBuffers<B extends DeviceBufferTypes> {
  readonly x: B["f32"];
  readonly y: B["f32"];
  readonly q: B["f32"];
  readonly k: B["f32"];
  readonly v: B["f32"];
}

/**
 * The layer up to attention for `rows` rows: the fp16 hidden states decoded into x, then
 * LayerNorm and the q, k, v projections.
 */
export function attentionInputs<B extends DeviceBufferTypes>(
  ops: DeviceOps<B>,
  w: OptLayerWeights<B>,
  shape: OptLayerShape,
  hidden: B["f16"],
  rows: number,
  b: AttentionBuffers<B>,
): void {
  const { h } = shape;
  ops.f16ToF32(hidden, b.x, rows * h);
  ops.layerNorm(b.x, w.vector("self_attn_layer_norm.weight"), w.vector("self_attn_layer_norm.bias"), b.y, rows, h);
  ops.linear(b.y, w.matrix("self_attn.q_proj.weight"), w.vector("self_attn.q_proj.bias"), b.q, rows, h, h);
  ops.linear(b.y, w.matrix("self_attn.k_proj.weight"), w.vector("self_attn.k_proj.bias"), b.k, rows, h, h);
  ops.linear(b.y, w.matrix("self_attn.v_proj.weight"), w.vector("self_attn.v_proj.bias"), b.v, rows, h, h);
}

/** A sequence's K or V rows as the cache stores them: the past ones and the t new ones. */
export interface StoredRows<B extends DeviceBufferTypes> {
  readonly past: B["bytes"];
  readonly fresh: B["bytes"];
}

/** Where one sequence's attention decodes its K and V (past + t rows of h each). */
export interface AttentionWork<B extends DeviceBufferTypes> {
  readonly kAll: B["f32"];
  readonly vAll: B["f32"];
}

/**
 * Attention for one sequence over KV rows as stored: its past rows and its t new ones decoded into
 * fp32, then causal attention of its t queries. Attention sees exactly what the cache holds.
 */
export function attendOverStoredRows<B extends DeviceBufferTypes>(
  ops: DeviceOps<B>,
  shape: OptLayerShape,
  encoding: Encoding,
  q: B["f32"],
  k: StoredRows<B>,
  v: StoredRows<B>,
  out: B["f32"],
  t: number,
  past: number,
  work: AttentionWork<B>,
): void {
  const { h } = shape;
  for (const [rows, all] of [
    [k, work.kAll],
    [v, work.vAll],
  ] as const) {
    ops.decodeRows(rows.past, past, h, encoding, all);
    ops.decodeRows(rows.fresh, t, h, encoding, ops.f32At(all, past * h));
  }
  ops.attention(q, work.kAll, work.vAll, out, t, past, shape.heads, shape.headDim);
}

/** Sequence c's new K and V rows (of a chunk's k and v [count · t, h]) encoded into `k.fresh` and `v.fresh` as the cache stores them. */
export function encodeNewRows<B extends DeviceBufferTypes>(
  ops: DeviceOps<B>,
  shape: OptLayerShape,
  encoding: Encoding,
  chunk: AttentionBuffers<B>,
  c: number,
  t: number,
  k: StoredRows<B>,
  v: StoredRows<B>,
): void {
  const { h } = shape;
  ops.encodeRows(ops.f32At(chunk.k, c * t * h), t, h, encoding, k.fresh);
  ops.encodeRows(ops.f32At(chunk.v, c * t * h), t, h, encoding, v.fresh);
}

/** Attention on the device for sequence c of a chunk (q, k, v and out [count · t, h]): encodeNewRows(), then attendOverStoredRows(). */
export function attendSequence<B extends DeviceBufferTypes>(
  ops: DeviceOps<B>,
  shape: OptLayerShape,
  encoding: Encoding,
  chunk: AttentionBuffers<B> & { readonly o: B["f32"] },
  c: number,
  t: number,
  past: number,
  k: StoredRows<B>,
  v: StoredRows<B>,
  work: AttentionWork<B>,
): void {
  const { h } = shape;
  encodeNewRows(ops, shape, encoding, chunk, c, t, k, v);
  attendOverStoredRows(
    ops,
    shape,
    encoding,
    ops.f32At(chunk.q, c * t * h),
    k,
    v,
    ops.f32At(chunk.o, c * t * h),
    t,
    past,
    work,
  );
}

/** What the layer's second half reads and writes: x, y, the attention output, the FFN intermediate [rows, f]. */
export interface OutputBuffers<B extends DeviceBufferTypes> {
  readonly x: B["f32"];
  readonly y: B["f32"];
  readonly o: B["f32"];
  readonly ffn: B["f32"];
}

/**
 * The layer after attention for `rows` rows: output projection and residual, LayerNorm, the ReLU
 * FFN and residual; the result written back to the fp16 hidden states.
 */
export function attentionOutputs<B extends DeviceBufferTypes>(
  ops: DeviceOps<B>,
  w: OptLayerWeights<B>,
  shape: OptLayerShape,
  rows: number,
  b: OutputBuffers<B>,
  hidden: B["f16"],
): void {
  const { h, f } = shape;
  ops.linear(b.o, w.matrix("self_attn.out_proj.weight"), w.vector("self_attn.out_proj.bias"), b.y, rows, h, h);
  ops.add(b.x, b.y, rows * h);
  ops.layerNorm(b.x, w.vector("final_layer_norm.weight"), w.vector("final_layer_norm.bias"), b.y, rows, h);
  ops.linear(b.y, w.matrix("fc1.weight"), w.vector("fc1.bias"), b.ffn, rows, h, f);
  ops.relu(b.ffn, rows * f);
  ops.linear(b.ffn, w.matrix("fc2.weight"), w.vector("fc2.bias"), b.y, rows, f, h);
  ops.add(b.x, b.y, rows * h);
  ops.f32ToF16(b.x, hidden, rows * h);
}

/**
 * A chunk of `count` sequences of t rows through the layer: attentionInputs(), `attend(c)` for each
 * sequence c of the chunk (attendSequence(), with the backend's KV handling around it), attentionOutputs().
 */
export function layerChunk<B extends DeviceBufferTypes>(
  ops: DeviceOps<B>,
  w: OptLayerWeights<B>,
  shape: OptLayerShape,
  hidden: B["f16"],
  count: number,
  t: number,
  b: AttentionBuffers<B> & OutputBuffers<B>,
  attend: (c: number) => void,
): void {
  attentionInputs(ops, w, shape, hidden, count * t, b);
  for (let c = 0; c < count; c++) attend(c);
  attentionOutputs(ops, w, shape, count * t, b, hidden);
}

/**
 * One sequence's input hidden states (fp16 [t, h]): its token rows (fp32 [t, d], gathered where the
 * table is), projected to h when the model projects its embeddings, plus its position rows.
 * `x` may be `tokenRows` itself when there is no projection.
 */
export function embedSequence<B extends DeviceBufferTypes>(
  ops: DeviceOps<B>,
  tokenRows: B["f32"],
  positionRows: B["f32"],
  projectIn: B["f16"] | undefined,
  t: number,
  d: number,
  h: number,
  x: B["f32"],
  out: B["f16"],
): void {
  if (projectIn !== undefined) ops.linear(tokenRows, projectIn, undefined, x, t, d, h);
  else if (tokenRows !== x) ops.copyF32(tokenRows, x, t * h);
  ops.add(x, positionRows, t * h);
  ops.f32ToF16(x, out, t * h);
}

/**
 * The LM head's input for a batch of `sequences` sequences of t positions (fp16 `hidden`): the final
 * LayerNorm of each sequence's last position, projected to d when the model projects its embeddings.
 * Returns where the features are (`normed`, or `features` after a projection).
 */
export function headFeatures<B extends DeviceBufferTypes>(
  ops: DeviceOps<B>,
  hidden: B["f16"],
  sequences: number,
  t: number,
  h: number,
  d: number,
  gamma: B["f32"],
  beta: B["f32"],
  projectOut: B["f16"] | undefined,
  last: B["f32"],
  normed: B["f32"],
  features: B["f32"],
): B["f32"] {
  for (let s = 0; s < sequences; s++) ops.f16ToF32(ops.f16At(hidden, (s * t + t - 1) * h), ops.f32At(last, s * h), h);
  ops.layerNorm(last, gamma, beta, normed, sequences, h);
  if (projectOut === undefined) return normed;
  ops.linear(normed, projectOut, undefined, features, sequences, h, d);
  return features;
}

/**
 * One chunk of the token table (rows firstRow.., fp16 [rows, d]) scored against a batch's features:
 * logits, merged into the batch's running best logit and token per sequence.
 */
export function scoreHeadChunk<B extends DeviceBufferTypes>(
  ops: DeviceOps<B>,
  features: B["f32"],
  sequences: number,
  d: number,
  table: B["f16"],
  firstRow: number,
  rows: number,
  logits: B["f32"],
  bestValue: B["f32"],
  bestIndex: B["i32"],
): void {
  ops.linear(features, table, undefined, logits, sequences, d, rows);
  ops.argmaxMerge(logits, sequences, rows, firstRow, bestValue, bestIndex, firstRow === 0);
}
