/**
 * Ring all-reduce between the GPUs of a tensor-parallel group (NCCL's ring algorithm): each of the T
 * GPUs sends and receives 2(T - 1)/T of the buffer, in 2(T - 1) steps (T - 1 of reduce-scatter, T - 1
 * of all-gather), each step one message over the link between neighbours. Megatron-style tensor
 * parallelism (Shoeybi et al. 2019, "Megatron-LM", section 3; vLLM's RowParallelLinear) all-reduces a
 * decoder layer's hidden state twice: after the attention output projection and after the MLP's second
 * projection.
 */

/** The link a tensor-parallel group all-reduces over, as the cost models use it. */
export interface TensorParallelLink {
  /** GPUs in the group (T). */
  readonly size: number;
  /** Rate of one GPU's transfer to its neighbour, per direction. */
  readonly bytesPerSecond: number;
  /** Fixed cost of one message (one ring step). */
  readonly latencySeconds: number;
}

/** All-reduces of the hidden state per decoder layer and batch (attention out, MLP out). */
export const ALL_REDUCES_PER_LAYER = 2;

/** Bytes one GPU sends in a ring all-reduce of `bytes` over `size` GPUs. */
export function ringAllReduceBytesPerGpu(bytes: number, size: number): number {
  return size > 1 ? (2 * (size - 1) * bytes) / size : 0;
}

/** Seconds of one ring all-reduce of `bytes`: 2(T - 1) steps, each a message of latency and its share of the bytes. */
export function ringAllReduceSeconds(bytes: number, link: TensorParallelLink): number {
  if (link.size <= 1) return 0;
  return 2 * (link.size - 1) * link.latencySeconds + ringAllReduceBytesPerGpu(bytes, link.size) / link.bytesPerSecond;
}

/** Bytes of the hidden states of `tokens` tokens (fp16 activations), what each all-reduce of a layer reduces. */
export function hiddenBytes(tokens: number, hiddenSize: number): number {
  return tokens * hiddenSize * 2;
}

/** Seconds one decoder layer's all-reduces take for a batch of `tokens` tokens. */
export function layerAllReduceSeconds(tokens: number, hiddenSize: number, link: TensorParallelLink): number {
  return ALL_REDUCES_PER_LAYER * ringAllReduceSeconds(hiddenBytes(tokens, hiddenSize), link);
}

/** Bytes one GPU sends for one decoder layer's all-reduces of a batch of `tokens` tokens. */
export function layerAllReduceBytesPerGpu(tokens: number, hiddenSize: number, size: number): number {
  return ALL_REDUCES_PER_LAYER * ringAllReduceBytesPerGpu(hiddenBytes(tokens, hiddenSize), size);
}
