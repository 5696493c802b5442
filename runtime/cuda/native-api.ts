/**
 * What the CUDA addon (native/cuda/addon.cpp, built by `npm run build:cuda`) exports to JavaScript.
 * The CUDA backend is written against this interface only, so the same TypeScript runs over the real
 * addon on a GPU and over the emulated device (emulated-native.ts) everywhere else.
 *
 * Conventions:
 * - device pointers, streams and events are numbers (addresses below 2^53; 0 is null and, for
 *   streams, the legacy default stream); the addon refuses an address it cannot round-trip;
 * - every call that can fail throws an Error whose message names the CUDA call and the error
 *   ("cudaMalloc(1073741824 bytes): out of memory (cudaErrorMemoryAllocation)");
 * - copies and kernels are asynchronous on their stream: a host buffer handed to an async copy must
 *   stay alive and untouched until the stream has passed the copy (an event recorded after it has
 *   completed). Pinned buffers come from hostAlloc(); copies from or to pageable memory (any other
 *   ArrayBuffer) are legal but synchronous with the host, as CUDA makes them;
 * - kernels take device pointers and sizes with the meanings of native/cuda/kernels.h.
 */

export interface NativeProbe {
  /** Whether the CUDA runtime found a driver and at least one device. */
  readonly ok: boolean;
  readonly deviceCount: number;
  /** The CUDA runtime version the addon was built with (e.g. 13000). */
  readonly runtimeVersion: number;
  /** The driver's CUDA version, 0 when no driver was found. */
  readonly driverVersion: number;
  /** Why not ok: the failing call and its error name and string. */
  readonly error?: string;
}

export interface NativeDeviceProperties {
  readonly name: string;
  readonly totalBytes: number;
  readonly major: number;
  readonly minor: number;
  readonly multiprocessors: number;
  readonly l2CacheBytes: number;
  readonly memoryBusWidthBits: number;
  readonly sharedMemoryPerBlockOptinBytes: number;
  readonly pciDomain: number;
  readonly pciBus: number;
  readonly pciDevice: number;
  readonly asyncEngines: number;
}

export interface CudaNative {
  /** Never throws: what the CUDA runtime reports about drivers and devices. */
  probe(): NativeProbe;
  deviceProperties(device: number): NativeDeviceProperties;
  setDevice(device: number): void;
  memGetInfo(): { freeBytes: number; totalBytes: number };
  deviceSynchronize(): void;

  malloc(bytes: number): number;
  free(pointer: number): void;
  /** Page-locked host memory (cudaHostAlloc, portable), freed when the ArrayBuffer is collected or by hostFree. */
  hostAlloc(bytes: number): ArrayBuffer;
  /** Frees a hostAlloc() buffer now; the ArrayBuffer is detached (byteLength 0) afterwards. */
  hostFree(buffer: ArrayBuffer): void;

  streamCreate(): number;
  streamDestroy(stream: number): void;
  streamSynchronize(stream: number): void;
  /** True when everything enqueued on the stream has finished. */
  streamQuery(stream: number): boolean;
  /** An event; `timing` false makes it cheaper (no timestamps, cudaEventDisableTiming). */
  eventCreate(timing: boolean): number;
  eventDestroy(event: number): void;
  eventRecord(event: number, stream: number): void;
  eventSynchronize(event: number): void;
  eventQuery(event: number): boolean;
  /** Milliseconds between two completed timing events. */
  eventElapsedMs(start: number, end: number): number;
  /** Work enqueued on `stream` after this call waits for the event's recorded work. */
  streamWaitEvent(stream: number, event: number): void;

  memcpyHtoD(dst: number, src: ArrayBufferView, stream: number): void;
  memcpyDtoH(dst: ArrayBufferView, src: number, stream: number): void;
  memcpyDtoD(dst: number, src: number, bytes: number, stream: number): void;
  memset(dst: number, byte: number, bytes: number, stream: number): void;

  linear(x: number, w: number, bias: number, out: number, m: number, k: number, n: number, stream: number): void;
  layerNorm(
    x: number,
    gamma: number,
    beta: number,
    out: number,
    rows: number,
    cols: number,
    eps: number,
    stream: number,
  ): void;
  softmaxRows(x: number, rows: number, cols: number, stream: number): void;
  attentionScratchFloats(t: number, past: number, heads: number): number;
  attention(
    q: number,
    k: number,
    v: number,
    out: number,
    scratch: number,
    t: number,
    past: number,
    heads: number,
    headDim: number,
    stream: number,
  ): void;
  relu(x: number, n: number, stream: number): void;
  add(x: number, y: number, n: number, stream: number): void;
  embedding(table: number, ids: number, count: number, dim: number, rows: number, out: number, stream: number): void;
  f32ToF16(x: number, out: number, n: number, stream: number): void;
  f16ToF32(x: number, out: number, n: number, stream: number): void;
  q4Bytes(rowValues: number): number;
  dequantize4F16(stored: number, rows: number, rowValues: number, out: number, stream: number): void;
  dequantize4F32(stored: number, rows: number, rowValues: number, out: number, stream: number): void;
  quantize4(x: number, rows: number, rowValues: number, stored: number, stream: number): void;
  /** Stored bytes of a group-wise tensor (kernels.h spw_groupwise_bytes; runtime/moe/expert-quantization.ts). */
  groupwiseBytes(values: number, bits: number): number;
  dequantizeGroupwiseF32(stored: number, values: number, bits: number, out: number, stream: number): void;
  /** out[m, n] = x[m, k] · w[n, k]ᵀ, w stored group-wise at `bits` (kernels.h spw_linear_groupwise). */
  linearGroupwise(
    x: number,
    w: number,
    bits: number,
    out: number,
    m: number,
    k: number,
    n: number,
    stream: number,
  ): void;
  /** A routed SwiGLU expert stored w1 | w3 | w2 at `bits`, dequantised on the fly (kernels.h spw_expert_swiglu). */
  expertSwiglu(
    x: number,
    expert: number,
    bits: number,
    m: number,
    hidden: number,
    ffn: number,
    scratch: number,
    out: number,
    stream: number,
  ): void;
  /** linearGroupwise plus a bias [n] (fp32) summed into each output (kernels.h spw_linear_groupwise_bias). */
  linearGroupwiseBias(
    x: number,
    w: number,
    bits: number,
    bias: number,
    out: number,
    m: number,
    k: number,
    n: number,
    stream: number,
  ): void;
  /** RMSNorm (Llama/Mixtral) of each row with an fp32 weight; out may be x (kernels.h spw_rms_norm). */
  rmsNorm(x: number, weight: number, out: number, rows: number, cols: number, eps: number, stream: number): void;
  /**
   * Rotary embedding in place, HF rotate_half (kernels.h spw_rope): row r of x [rows, heads · headDim]
   * is at position past + r % rowsPerSequence.
   */
  rope(
    x: number,
    rows: number,
    heads: number,
    headDim: number,
    rowsPerSequence: number,
    past: number,
    theta: number,
    stream: number,
  ): void;
  /**
   * Causal grouped-query attention of one sequence over its KV cache (kernels.h spw_gqa_attention):
   * q, out [t, heads · headDim]; k, v [past + t, kvHeads · headDim]; scratch attentionScratchFloats(t, past, heads).
   */
  gqaAttention(
    q: number,
    k: number,
    v: number,
    out: number,
    scratch: number,
    t: number,
    past: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    stream: number,
  ): void;
  /** x[r] += Σ_rank weights[r, rank] · outputs[r, rank] in rank order, one rounding per rank (kernels.h spw_moe_combine). */
  moeCombine(x: number, outputs: number, weights: number, rows: number, k: number, cols: number, stream: number): void;
  /** dst[i] = src[index[i]] (int32 index [rows]; outside 0 .. srcRows - 1: a NaN row; kernels.h spw_gather_rows). */
  gatherRows(
    src: number,
    srcRows: number,
    index: number,
    rows: number,
    cols: number,
    dst: number,
    stream: number,
  ): void;
  /** dst[index[i]] = src[i] (int32 index [rows]; outside 0 .. dstRows - 1: nothing written; kernels.h spw_scatter_rows). */
  scatterRows(
    src: number,
    index: number,
    rows: number,
    cols: number,
    dst: number,
    dstRows: number,
    stream: number,
  ): void;
  /**
   * Per row of logits [rows, experts]: the k experts of highest logit, best first (ties: the lower
   * index), into outExperts int32 [rows, k], their softmax probabilities renormalised over the k into
   * outWeights [rows, k] (the speculative lookahead's guesses; kernels.h spw_router_top_k).
   */
  routerTopK(
    logits: number,
    rows: number,
    experts: number,
    k: number,
    outExperts: number,
    outWeights: number,
    stream: number,
  ): void;
  /** x[r] += sigmoid(gate[r]) · y[r] (Qwen2-MoE's shared expert; kernels.h spw_sigmoid_gated_add). */
  sigmoidGatedAdd(x: number, y: number, gate: number, rows: number, cols: number, stream: number): void;
  argmaxRows(x: number, rows: number, cols: number, out: number, stream: number): void;
  /** One column chunk's argmax merged into a running best per row (kernels.h spw_argmax_merge); first: 1 starts afresh. */
  argmaxMerge(
    x: number,
    rows: number,
    cols: number,
    colOffset: number,
    bestValue: number,
    bestIndex: number,
    first: number,
    stream: number,
  ): void;
  copy(src: number, dst: number, bytes: number, stream: number): void;
}

/** The names every CudaNative implementation exports (the loader checks an addon against it). */
export const CUDA_NATIVE_FUNCTIONS = [
  "probe",
  "deviceProperties",
  "setDevice",
  "memGetInfo",
  "deviceSynchronize",
  "malloc",
  "free",
  "hostAlloc",
  "hostFree",
  "streamCreate",
  "streamDestroy",
  "streamSynchronize",
  "streamQuery",
  "eventCreate",
  "eventDestroy",
  "eventRecord",
  "eventSynchronize",
  "eventQuery",
  "eventElapsedMs",
  "streamWaitEvent",
  "memcpyHtoD",
  "memcpyDtoH",
  "memcpyDtoD",
  "memset",
  "linear",
  "layerNorm",
  "softmaxRows",
  "attentionScratchFloats",
  "attention",
  "relu",
  "add",
  "embedding",
  "f32ToF16",
  "f16ToF32",
  "q4Bytes",
  "dequantize4F16",
  "dequantize4F32",
  "quantize4",
  "groupwiseBytes",
  "dequantizeGroupwiseF32",
  "linearGroupwise",
  "expertSwiglu",
  "linearGroupwiseBias",
  "rmsNorm",
  "rope",
  "gqaAttention",
  "moeCombine",
  "gatherRows",
  "scatterRows",
  "routerTopK",
  "sigmoidGatedAdd",
  "argmaxRows",
  "argmaxMerge",
  "copy",
] as const satisfies readonly (keyof CudaNative)[];
