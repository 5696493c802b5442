// Spillway's CUDA kernels: launchers with a C ABI, called by the Node-API binding (addon.cpp).
//
// Conventions, shared with the CPU backend (runtime/kernels/*.ts), which is the reference:
// - every pointer is a device pointer; activations are fp32 ("float"), weights and stored KV rows are
//   fp16 bits ("uint16_t", IEEE binary16) or 4-bit groups; token ids are int32;
// - matrices are row-major; a linear layer's weight is [n, k] (out features x in features, PyTorch's
//   layout), so out[m, n] = x[m, k] . w[n, k]^T + bias[n];
// - every launcher enqueues on `stream` and returns the launch's error (cudaGetLastError), or
//   cudaSuccess; none synchronises.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// out[m, n] = x[m, k] . w[n, k]^T (+ bias[n] when bias is not null).
// m <= SPW_GEMV_MAX_ROWS: a GEMV kernel (fp32 x, fp16 w, fp32 accumulation) that streams w once at
// full memory bandwidth. Larger m: fp16 tensor cores (WMMA 16x16x16, fp32 accumulation) with x split
// into two halves as it is staged, hi = fp16(x) and lo = fp16(x - hi), both multiplied by w: the
// product sees x' = hi + lo (exact in fp32, x to about 22 bits). No alignment is assumed for m, k, n.
#define SPW_GEMV_MAX_ROWS 8
cudaError_t spw_linear(const float* x, const uint16_t* w, const float* bias, float* out, int m, int k, int n, cudaStream_t stream);

// Row-wise LayerNorm with the biased variance, two passes (mean, then squared deviations), as
// torch.nn.LayerNorm: out[r, c] = (x[r, c] - mean_r) / sqrt(var_r + eps) * gamma[c] + beta[c].
// out may equal x.
cudaError_t spw_layer_norm(const float* x, const float* gamma, const float* beta, float* out, int rows, int cols, float eps, cudaStream_t stream);

// Softmax of each of `rows` rows of `cols` values in place, max-subtracted. A row whose values are
// all -inf becomes zeros (as runtime/kernels/softmax.ts).
cudaError_t spw_softmax_rows(float* x, int rows, int cols, cudaStream_t stream);

// Causal multi-head attention of one sequence (runtime/kernels/attention.ts):
// q: [t, h] raw q_proj output (NOT scaled; the kernel scales by headDim^-0.5), k and v: [past + t, h]
// (the t new rows already appended), out: [t, h], h = heads * headDim; head j owns columns
// j*headDim .. (j+1)*headDim. New token i attends to rows 0 .. past + i.
// scratch: spw_attention_scratch_floats(t, past, heads) floats of device memory.
size_t spw_attention_scratch_floats(int t, int past, int heads);
cudaError_t spw_attention(const float* q, const float* k, const float* v, float* out, float* scratch, int t, int past, int heads, int headDim, cudaStream_t stream);

// x[i] = max(x[i], 0) in place.
cudaError_t spw_relu(float* x, size_t n, cudaStream_t stream);
// x[i] += y[i] in place.
cudaError_t spw_add(float* x, const float* y, size_t n, cudaStream_t stream);

// Gather: out[i, :] = fp32(table[ids[i], :]) for i < count; table is [rows, dim] fp16.
// An id outside 0..rows-1 writes NaN across its output row (the caller validates ids beforehand).
cudaError_t spw_embedding(const uint16_t* table, const int32_t* ids, int count, int dim, int rows, float* out, cudaStream_t stream);

// Conversions between fp32 and fp16 bits (round to nearest even), n values.
cudaError_t spw_f32_to_f16(const float* x, uint16_t* out, size_t n, cudaStream_t stream);
cudaError_t spw_f16_to_f32(const uint16_t* x, float* out, size_t n, cudaStream_t stream);

// 4-bit group-wise asymmetric quantisation, bit-exact with runtime/kernels/quantize-4bit.ts and the
// byte layout of runtime/tensor-codec.ts. A stored tensor of `values` values is
//   [codes: 32 bytes per group][scales: fp16 per group][minimums: fp16 per group]
// with groups of 64 consecutive values (the last group may be partial: its codes are padded with 0),
// two codes per byte, the even-indexed value in the high nibble; value = min + code * scale.
// These kernels work on `rows` tensors of `rowValues` values each, stored back to back
// (row r starts at byte r * spw_q4_bytes(rowValues)): one weight tensor is rows = 1; a run of KV rows
// (each row encoded on its own) is rows = count, rowValues = hidden size.
#define SPW_Q4_GROUP 64
size_t spw_q4_bytes(size_t rowValues);
cudaError_t spw_dequantize4_f16(const uint8_t* stored, size_t rows, size_t rowValues, uint16_t* out, cudaStream_t stream);
cudaError_t spw_dequantize4_f32(const uint8_t* stored, size_t rows, size_t rowValues, float* out, cudaStream_t stream);
// Quantisation (for 4-bit KV rows written on the device), bit-exact with quantize4bit(): per group,
// lo/hi = min/max of the float32 values; min16 = lo rounded DOWN to fp16 (__float2half_rd);
// scale16 = ((hi - float(min16)) / 15 computed in double) rounded UP to fp16 (double -> float with
// __double2float_ru, then __float2half_ru: rounding up twice is rounding up once, the half grid being
// part of the float grid); code = clamp(floor((x - min16) / scale16 + 0.5), 0, 15) in double;
// scale16 == 0 gives all codes 0. NaN or |x| > 65504 in a group: its codes, scale and min are written
// as 0xFF / 0x7E00 (NaN) so the result cannot pass for data (the CPU throws there instead).
cudaError_t spw_quantize4(const float* x, size_t rows, size_t rowValues, uint8_t* stored, cudaStream_t stream);

// Group-wise quantised weights at 2, 3, 4 or 8 bits, bit-exact with runtime/moe/expert-quantization.ts
// (the MoE runtime's experts and attention). A tensor of `values` values is
//   [codes of every group][scales][minimums]
// with groups of 64 consecutive values (2 bits: 16; a partial last group stored whole), each group's
// codes a big-endian bit stream (value i at bits [b*i, b*(i+1)) from the most significant bit of the
// group's first code byte); scales and minimums fp16 little-endian, except at 2 bits one byte each: an
// 8-bit float, scale = the fp16 bits (byte << 7), minimum = the fp16 bits (byte << 8).
// value = fmaf(code, scale, min) (code * scale is exact in fp32; rounded once, as the CPU's float64 sum
// stored to float32). No alignment of the stored bytes is assumed, except at bits 16 (plain fp16:
// 2-byte aligned).
// spw_groupwise_bytes: a tensor's stored bytes (0 for a width other than 2, 3, 4, 8, 16).
size_t spw_groupwise_bytes(size_t values, int bits);
cudaError_t spw_dequantize_groupwise_f32(const uint8_t* stored, size_t values, int bits, float* out, cudaStream_t stream);
// out[m, n] = x[m, k] . w[n, k]^T with w one tensor of n * k values stored group-wise at `bits`: one warp
// per output column, lanes strided over k decoding codes as they read them (fp32 accumulation, warp
// shuffle reduction), rows of x 8 at a time. bits 16: spw_linear (no bias).
cudaError_t spw_linear_groupwise(const float* x, const uint8_t* w, int bits, float* out, int m, int k, int n, cudaStream_t stream);
// A routed SwiGLU expert, as runtime/moe/mixtral-model.ts runs one: out[m, hidden] =
// w2 . (silu(w1 . x) * (w3 . x)), silu(g) = g / (1 + e^-g), the expert stored as w1 | w3 | w2 (each
// spw_groupwise_bytes(hidden * ffn, bits) bytes; w1, w3 [ffn, hidden], w2 [hidden, ffn]) at `bits`
// (2, 3, 4, 8 or 16), dequantised on the fly by spw_linear_groupwise. scratch: 2 * m * ffn floats.
cudaError_t spw_expert_swiglu(const float* x, const uint8_t* expert, int bits, int m, int hidden, int ffn, float* scratch, float* out, cudaStream_t stream);

// spw_linear_groupwise with bias[n] (fp32) added to every output row (Qwen2-MoE's q/k/v projections).
cudaError_t spw_linear_groupwise_bias(const float* x, const uint8_t* w, int bits, const float* bias, float* out, int m, int k, int n, cudaStream_t stream);

// The Mixture-of-Experts decoder's other kernels, as runtime/moe/*.ts computes them on the CPU, in fp32
// (the CPU computes in float64 JS numbers; results agree within fp32 accumulation error, kernels.cu):
// RMSNorm (runtime/moe/rms-norm.ts): out = x * (1 / sqrt(mean(x^2) + eps)) * weight per row (weight
// fp32 [cols]); out may be x.
cudaError_t spw_rms_norm(const float* x, const float* weight, float* out, int rows, int cols, double eps, cudaStream_t stream);
// Rotary embedding in place (runtime/moe/rope.ts, HF rotate_half): row r of x [rows, heads * headDim]
// at position past + r % rowsPerSequence; element i < headDim / 2 of each head pairs with i + headDim / 2,
// angle position * theta^(-2i / headDim). headDim even and at most 512, rowsPerSequence > 0, positions
// below 2^24 (cudaErrorInvalidValue otherwise).
cudaError_t spw_rope(float* x, int rows, int heads, int headDim, int rowsPerSequence, int past, double theta, cudaStream_t stream);
// Causal grouped-query attention of one sequence (runtime/moe/gqa-attention.ts): q, out [t, heads *
// headDim], k, v [past + t, kvHeads * headDim]; query head hd reads key/value head hd / (heads / kvHeads);
// scores scaled by headDim^-0.5, softmax with the row maximum subtracted. scratch:
// spw_attention_scratch_floats(t, past, heads) floats. heads a multiple of kvHeads.
cudaError_t spw_gqa_attention(const float* q, const float* k, const float* v, float* out, float* scratch, int t, int past, int heads, int kvHeads, int headDim, cudaStream_t stream);
// The routed experts' weighted sum (runtime/moe/mixtral-model.ts): x[r, c] += w[r, j] * outputs[r, j, c]
// for ranks j = 0 .. k-1 in order, each step one fused multiply-add (the CPU's exact product, one rounding).
cudaError_t spw_moe_combine(float* x, const float* outputs, const float* weights, int rows, int k, int cols, cudaStream_t stream);
// Qwen2-MoE's shared expert output: x[r, c] += sigmoid(gate[r]) * y[r, c] (expf sigmoid, one FMA).
cudaError_t spw_sigmoid_gated_add(float* x, const float* y, const float* gate, int rows, int cols, cudaStream_t stream);

// Rows by index (the routed experts' token rows, device to device): gather dst[i] = src[index[i]] for
// i < rows, src [srcRows, cols] (an index outside 0 .. srcRows - 1 writes a row of NaN); scatter
// dst[index[i]] = src[i], dst [dstRows, cols] (an index outside 0 .. dstRows - 1 writes nothing; two
// equal indices: either row). index: int32 [rows] on the device; src and dst do not overlap.
cudaError_t spw_gather_rows(const float* src, int srcRows, const int32_t* index, int rows, int cols, float* dst, cudaStream_t stream);
cudaError_t spw_scatter_rows(const float* src, const int32_t* index, int rows, int cols, float* dst, int dstRows, cudaStream_t stream);

// The speculative lookahead's top-k per row of router logits [rows, experts] (runtime/moe/gate-lookahead.ts,
// route() of runtime/moe/mixtral-model.ts with renormalisation): the k experts of highest logit, best
// first (ties: the lower index), into outExperts int32 [rows, k], and their softmax probabilities
// renormalised over the k, expf(l - max) / sum of the k, into outWeights [rows, k]. 1 <= k <= experts;
// logits finite (a row with NaN: unspecified experts, none out of range but -1).
cudaError_t spw_router_top_k(const float* logits, int rows, int experts, int k, int32_t* outExperts, float* outWeights, cudaStream_t stream);

// out[r] = index of the largest of x[r, 0..cols) (ties: the lowest index; NaN skipped; a row of only
// NaN or -inf gives 0), as runtime/kernels/argmax.ts.
cudaError_t spw_argmax_rows(const float* x, int rows, int cols, int32_t* out, cudaStream_t stream);
// Greedy decoding over a vocabulary seen in column chunks (an LM head streamed through the device):
// per row, the chunk's argmax i (as spw_argmax_rows) with value v joins a running best: when `first`,
// bestValue/bestIndex start at -inf / 0; then, if v > bestValue[row] strictly (a tie keeps the earlier
// chunk; NaN and -inf never join), bestValue[row] = v and bestIndex[row] = colOffset + i. The result
// after every chunk equals spw_argmax_rows over the whole row (the CPU backend's finishHeads merge).
cudaError_t spw_argmax_merge(const float* x, int rows, int cols, int colOffset, float* bestValue, int32_t* bestIndex, int first, cudaStream_t stream);

// Copies `bytes` bytes device-to-device with a kernel (16-byte loads where aligned): the device
// memory bandwidth probe of `spillway profile --backend cuda`, beside cudaMemcpyAsync's figure.
cudaError_t spw_copy(const void* src, void* dst, size_t bytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
