// Spillway's CUDA kernels: the launchers of kernels.h (read it first: it is the contract).
//
// Reference numerics: runtime/kernels/*.ts (the CPU backend) and runtime/tensor-codec.ts.
// Targets: sm_75 (T4) .. sm_90 (H100). Every kernel uses blocks of whole warps; every
// __syncthreads() sits in code that is uniform across the block (conditions depend only on
// blockIdx, kernel arguments or block-reduced values). Static shared memory stays under the 48 KB
// default (largest: attention P.V with 32 warps, 32 KB; WMMA GEMM 27.6 KB; GEMV 16 KB + 256 B);
// the only dynamic shared memory (attention scores: headDim floats) is checked against 48 KB.
// Element counts that can pass 2^31 are size_t; grids are capped and kernels grid-stride.
//
// Thread mappings:
// - spw_linear, m <= SPW_GEMV_MAX_ROWS (8): linear_gemv_kernel<M, VEC>. 256 threads = 8 warps;
//   each output column n is owned by W warps (W = 1, 2, 4 or 8, raised from 1 while the grid would
//   not give ~2 blocks per SM), so a block covers 8 / W columns. x is staged in shared memory in
//   k-tiles of KT values per row (M * KT * 4 <= 16 KB). A warp streams its w row with 16-byte loads
//   (8 halves, VEC = 8: k % 8 == 0 and w 16-byte aligned), half2 loads (VEC = 2: k even, w 4-byte
//   aligned) or scalar ones, accumulates M fp32 sums in registers, reduces them with shuffles (and
//   across the W warps through shared memory), adds the bias and stores.
// - spw_linear, m > 8: linear_wmma_kernel<VEC>. 128 threads = 4 warps per 64x64 output tile, K step
//   32; warp (wr, wc) owns a 32x32 quarter = 2x2 WMMA 16x16x16 fragments (half x half -> float).
//   Each thread loads 16 x values and 16 w halves of the next K step into registers while the
//   current step computes. x is stored split in two fp16 tiles, hi = fp16(x) and lo = fp16(x - hi)
//   (x - hi is exact in fp32), and each fragment pair is multiplied twice (hi.w + lo.w), so the
//   product sees x to about 22 bits instead of 11: greedy tokens and 4-bit KV codes then agree with
//   the CPU backend's fp32 activations, for twice the tensor-core work (offloaded runs are bound by
//   transfers, and the decode GEMV never takes this path). Shared rows are
//   padded to 40 halves (80 bytes: ldm a multiple of 8 halves, fragment pointers 32-byte aligned).
//   w is [n, k] row-major, so the staged tile Bs[nn][kk] is B = w^T in col_major with ldm 40.
//   Partial tiles are zero-padded (rows >= m or >= n, columns >= k). The accumulators go through a
//   float tile in shared memory (ld 68) to bounds-checked, coalesced stores with the bias added.
//   Tiles are walked m-tile fastest (blocks running together share a w tile) by a block-stride loop.
// - spw_layer_norm / spw_softmax_rows / spw_argmax_rows: one 256-thread block per row, threads
//   strided over the columns, warp-shuffle + shared-memory block reductions. LayerNorm: two passes
//   in fp32 (mean, then squared deviations), 1 / sqrtf(var + eps). Softmax: fmaxf max (skips NaN as
//   the CPU's `>` does), all -inf (or all NaN) row -> zeros, expf(x - max), fp32 sum, x * (1 / sum).
//   Argmax: each thread keeps its first strictly-greater value, pairs merge by (greater value, or
//   equal value and lower index); nothing above -inf -> 0, exactly argmax.ts's result.
// - spw_attention: three kernels over scratch S[t][heads][ctx], ctx = past + t:
//   1. attention_scores_kernel: grid (ceil(ctx / 64), heads, t); the block stages q's head slice
//      scaled exactly as the CPU does (float(double(q) * (1 / sqrt(double(headDim))))) in shared
//      memory, then each of its 8 warps takes keys j of the block's 64 with j < past + i + 1, lanes
//      over head-dim columns (coalesced K reads), fp32 FMA + shuffle reduction. Future keys are not
//      written (kernel 2 overwrites them).
//   2. attention_softmax_kernel: grid (heads, t), softmax over the visible prefix past + i + 1 as
//      spw_softmax_rows (all -inf -> zeros), zeros written after it.
//   3. attention_pv_kernel<NW>: grid (heads, t), NW warps (8, or 32 when t * heads is too small to
//      fill the GPU); warps split the visible keys, lanes cover head-dim columns in chunks of 256
//      (8 registers per lane), partial sums are added across warps in shared memory.
// - spw_relu, spw_add, spw_f32_to_f16, spw_f16_to_f32: grid-stride, one element per thread step.
//   fp16 NaNs are written as sign | 0x7E00 (runtime/fp16.ts's NaN) and fp16 NaNs read as
//   0x7FC00000 (what a JS NaN stores); everything else is __float2half_rn / __half2float.
// - spw_embedding: grid (dim chunks of 256, tokens); an id outside 0..rows-1 writes NaN.
// - spw_dequantize4_*: one thread per code byte (two values), grid-stride, 32-bit index math when
//   the byte count allows; value = fmaf(code, scale, min): code * scale is exact in fp32 (4 bits x
//   11 bits) and an FMA rounds min + code * scale once, which is exactly the CPU's float64 sum (also
//   exact: it spans at most 45 bits) rounded to float32. f16 output converts that float32 to
//   nearest, as decodeToFloat16 does.
// - spw_quantize4: one warp per 64-value group, lane l owns values 2l, 2l + 1 (code byte l);
//   min/max by shuffles with Math.min/Math.max semantics for signed zeros (-0 < +0); NaN or
//   |x| > 65504 (checked with __any_sync) -> codes 0xFF, scale = min = 0x7E00; else min16 =
//   __float2half_rd(lo), scale16 = __float2half_ru(__double2float_ru((double(hi) - double(min)) / 15))
//   and code = clamp(floor((double(x) - min) / scale + 0.5), 0, 15) with explicit _rn double
//   intrinsics (no contraction possible), scale 0 -> codes 0. Scales and minimums are written as
//   two bytes each (little-endian), so no alignment of `stored` is assumed.
// - spw_dequantize_groupwise_f32: one thread per value, grid-stride; the code read through a two-byte
//   big-endian window, value = fmaf(code, scale, min) (exact product, one rounding: the CPU's result).
// - spw_linear_groupwise: one warp per output column (8 per 256-thread block, grid-stride), lanes
//   strided over k, each decoded weight multiplied into up to 8 rows of x (fp32 FMA accumulators, rows
//   of x 8 at a time), warp-shuffle sums; not tiled through shared memory (written for correctness on
//   the emulated device first: no GPU has run it). spw_expert_swiglu: two of them, silu_gate_kernel
//   (expf), the third.
//   spw_linear_groupwise_bias: the same kernel with the bias added to each column's sum (at 16 bits
//   spw_linear's bias).
// - The MoE decoder's kernels (written for correctness first, checked on the emulated device and the
//   host build; no GPU has run them, none is tuned), all in fp32 (a T4 runs fp64 at 1/32 of fp32):
//   spw_rms_norm, one 256-thread block per row, FMA sum of squares and blockReduce, 1 / sqrtf;
//   spw_rope, one thread per (row, head, pair), the inverse frequencies computed by the launcher on the
//   host in float64 and passed as float hi + lo kernel parameters, the angle reduced modulo 2 pi in
//   fp32 FMAs before sincosf (rounding position * frequency to fp32 first would cost ulp(angle) / 2:
//   2e-4 relative error at position 30000); spw_gqa_attention, one 256-thread block per (query head,
//   new token): threads over keys for the FMA dot products, blockReduce max and sum of expf, then
//   P.V as attention_pv_kernel (8 warps split the keys, lanes over 32 columns at a time, the warps'
//   partials summed in order); spw_moe_combine and spw_sigmoid_gated_add grid-stride over elements
//   (an FMA per rank; expf sigmoid and an FMA); spw_gather_rows / spw_scatter_rows grid-stride over
//   elements (the routed experts' rows by index, device to device); spw_router_top_k, one thread per
//   row (the speculative lookahead's guesses: k passes over the experts, expf and one division each). The CPU backend computes these in float64 (JS
//   numbers): the host build matches it within 1e-5 relative (test/cuda-kernels.test.ts); the
//   emulated device computes the CPU's own arithmetic.
// - spw_copy: same 16-byte misalignment of src and dst: one kernel copying a byte head, uint4 body
//   (grid-stride) and byte tail; otherwise a byte grid-stride copy.
//
// Verified here (no GPU on the build machine, so nothing has been RUN on a GPU yet):
// - compiled with nvcc 13.0, -std=c++17 -O3 -Xptxas -v, for sm_75, sm_80, sm_86, sm_89 and sm_90
//   (+ compute_90 PTX): no warnings; 0 bytes spill stores/loads and 0-byte stack frames for every
//   kernel and target (the GEMV needs __launch_bounds__(256, 2): with (256) alone ptxas 13.0 chose
//   32-40 registers and spilled for some M/VEC instantiations); the MoE decoder's kernels, compiled
//   for sm_75 and sm_90 only (nvcc 13.0, in their fp32 form): no warnings, no spills; rope_kernel
//   has a 32-byte stack frame (sincosf's slow path for large arguments, which the reduced angle, within
//   about pi, never takes), every other kernel none; router_top_k_kernel (nvcc 13.0, sm_75 and sm_90):
//   no warnings, no spills, no stack frame, 28 and 27 registers;
// - HMMA in linear_wmma_kernel's SASS for every target (16 HMMA.16816 per 32-deep K step on
//   sm_80..sm_90, 32 HMMA.1688 on sm_75, none in any other kernel). cuobjdump is not installed on
//   the build machine, so this was counted by scanning each per-arch cubin's .text sections for the
//   HMMA opcode (0x23c in the low 12 bits); on a machine with the toolkit's cuobjdump,
//   `cuobjdump --dump-sass kernels.o | grep -c HMMA` is the check;
// - this file itself runs on the CPU in every test run (scripts/build-cuda-host.mjs compiles it and
//   addon.cpp with g++ against native/cuda/host/, a host emulation of the CUDA runtime: each CUDA
//   thread a fiber, __syncthreads / shuffles / votes / WMMA calls as barriers that fail the launch on
//   divergence or deadlock, WMMA pointer-alignment and ldm checks, threads shuffled between barriers
//   over 0xFF-poisoned shared and device memory, launch pointer arguments checked to be device
//   memory): test/cuda-kernels.test.ts checks every kernel against the CPU backend (the bit-exact ones
//   exactly; LayerNorm, softmax, attention and both linear paths within 1e-5), and the runtime
//   correctness matrix (test/runtime.test.ts) generates the CPU backend's greedy tokens through this
//   code for all twelve placements. Before that emulation was committed, a throwaway one had also
//   run the kernels under ASan + UBSan;
// - index arithmetic, causal masking (visible = past + i + 1), -inf / NaN edge cases, barrier
//   placement and shared-memory sizes were re-read against the CPU reference.

#include "kernels.h"

#include <cuda_fp16.h>
#include <mma.h>
#include <math.h>
#include <limits.h>

namespace {

constexpr unsigned FULL_MASK = 0xffffffffu;
constexpr unsigned MAX_GRID = 1u << 16;  // blocks of a grid-stride launch: plenty for any GPU

// Blocks for `work` items at `perBlock` items per block, capped (the kernels grid-stride).
inline unsigned gridFor(size_t work, size_t perBlock, size_t cap = MAX_GRID) {
  size_t blocks = (work + perBlock - 1) / perBlock;
  if (blocks < 1) blocks = 1;
  if (blocks > cap) blocks = cap;
  return (unsigned)blocks;
}

inline int multiprocessorCount() {
  int device = 0;
  int count = 0;
  if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || count <= 0) {
    (void)cudaGetLastError();  // clear the failed query's error; the launch's own error is what we report
    return 80;
  }
  return count;
}

inline bool aligned(const void* p, size_t bytes) { return ((uintptr_t)p & (bytes - 1)) == 0; }

// ---- fp16 bits, with the CPU's NaN conventions ----------------------------------------------------

__device__ __forceinline__ uint16_t f32ToHalfBits(float f) {
  if (isnan(f)) return (uint16_t)(((__float_as_uint(f) >> 16) & 0x8000u) | 0x7E00u);
  return __half_as_ushort(__float2half_rn(f));
}

__device__ __forceinline__ float halfBitsToF32(uint16_t h) {
  if ((h & 0x7FFFu) > 0x7C00u) return __uint_as_float(0x7FC00000u);
  return __half2float(__ushort_as_half(h));
}

__device__ __forceinline__ float canonicalNaN(float v) { return isnan(v) ? __uint_as_float(0x7FC00000u) : v; }

// ---- reductions (every thread of a block of whole warps must call them) ---------------------------

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
  return v;
}

__device__ __forceinline__ float warpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
  return v;
}

// Block-wide sum / max; every thread gets the result. The leading barrier lets consecutive calls
// share the one shared buffer.
template <bool MAX>
__device__ float blockReduce(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  v = MAX ? warpMax(v) : warpSum(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < warps ? partial[lane] : (MAX ? -INFINITY : 0.0f);
  return MAX ? warpMax(v) : warpSum(v);
}

// ---- elementwise -------------------------------------------------------------------------------

constexpr int EW_THREADS = 256;

__global__ void __launch_bounds__(EW_THREADS) relu_kernel(float* __restrict__ x, size_t n) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    if (x[i] < 0.0f) x[i] = 0.0f;  // NaN and -0 stay, as reluInPlace
  }
}

__global__ void __launch_bounds__(EW_THREADS) add_kernel(float* __restrict__ x, const float* __restrict__ y, size_t n) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) x[i] = x[i] + y[i];
}

__global__ void __launch_bounds__(EW_THREADS) f32_to_f16_kernel(const float* __restrict__ x, uint16_t* __restrict__ out, size_t n) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) out[i] = f32ToHalfBits(x[i]);
}

__global__ void __launch_bounds__(EW_THREADS) f16_to_f32_kernel(const uint16_t* __restrict__ x, float* __restrict__ out, size_t n) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) out[i] = halfBitsToF32(x[i]);
}

__global__ void __launch_bounds__(EW_THREADS) embedding_kernel(const uint16_t* __restrict__ table, const int32_t* __restrict__ ids, int count, int dim, int rows, float* __restrict__ out) {
  const int d = blockIdx.x * blockDim.x + threadIdx.x;
  if (d >= dim) return;  // no barriers in this kernel
  for (int i = blockIdx.y; i < count; i += gridDim.y) {
    const int id = ids[i];
    float v;
    if (id < 0 || id >= rows) v = __uint_as_float(0x7FC00000u);
    else v = halfBitsToF32(table[(size_t)id * dim + d]);
    out[(size_t)i * dim + d] = v;
  }
}

// Copies `head` bytes, then n16 16-byte words from src + head, then `tail` bytes after them.
__global__ void __launch_bounds__(EW_THREADS) copy_kernel(const uint8_t* __restrict__ src, uint8_t* __restrict__ dst, size_t head, size_t n16, size_t tail) {
  const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  const uint4* s16 = reinterpret_cast<const uint4*>(src + head);
  uint4* d16 = reinterpret_cast<uint4*>(dst + head);
  for (size_t i = tid; i < n16; i += stride) d16[i] = s16[i];
  if (tid < head) dst[tid] = src[tid];
  const size_t tailStart = head + n16 * 16;
  if (tid < tail) dst[tailStart + tid] = src[tailStart + tid];
}

__global__ void __launch_bounds__(EW_THREADS) copy_bytes_kernel(const uint8_t* __restrict__ src, uint8_t* __restrict__ dst, size_t n) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) dst[i] = src[i];
}

// ---- row kernels: LayerNorm, softmax, argmax ---------------------------------------------------

constexpr int ROW_THREADS = 256;

__global__ void __launch_bounds__(ROW_THREADS) layer_norm_kernel(const float* x, const float* __restrict__ gamma, const float* __restrict__ beta, float* out, int cols, float eps) {
  // x and out may alias: no __restrict__ on them. Every pass reads only the columns this thread
  // writes in the last pass, and the reductions' barriers separate the passes.
  const size_t r = blockIdx.x;
  const float* xr = x + r * cols;
  float* orow = out + r * cols;
  float s = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c];
  const float mean = blockReduce<false>(s) / (float)cols;
  float sq = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float d = xr[c] - mean;
    sq = fmaf(d, d, sq);
  }
  const float var = blockReduce<false>(sq) / (float)cols;
  const float inverseStd = 1.0f / sqrtf(var + eps);
  for (int c = threadIdx.x; c < cols; c += blockDim.x) orow[c] = (xr[c] - mean) * inverseStd * gamma[c] + beta[c];
}

// Softmax of row[0 .. length) in place, zeros on row[length .. total). Called by a whole block.
__device__ void blockSoftmaxSpan(float* row, int length, int total) {
  float mx = -INFINITY;
  for (int c = threadIdx.x; c < length; c += blockDim.x) mx = fmaxf(mx, row[c]);  // fmaxf skips NaN
  mx = blockReduce<true>(mx);
  if (mx == -INFINITY) {  // block-uniform: all -inf (or NaN) -> zeros, as softmaxSpanInPlace
    for (int c = threadIdx.x; c < total; c += blockDim.x) row[c] = 0.0f;
    return;
  }
  float sum = 0.0f;
  for (int c = threadIdx.x; c < length; c += blockDim.x) {
    const float e = expf(row[c] - mx);
    row[c] = e;
    sum += e;
  }
  sum = blockReduce<false>(sum);
  const float inverse = 1.0f / sum;
  for (int c = threadIdx.x; c < length; c += blockDim.x) row[c] *= inverse;  // this thread's own e
  for (int c = length + threadIdx.x; c < total; c += blockDim.x) row[c] = 0.0f;
}

__global__ void __launch_bounds__(ROW_THREADS) softmax_rows_kernel(float* x, int cols) {
  blockSoftmaxSpan(x + (size_t)blockIdx.x * cols, cols, cols);
}

// Every lane ends with its warp's largest `best` and, among equal values, the lowest `index`.
__device__ __forceinline__ void warpArgmax(float& best, int& index) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(FULL_MASK, best, o);
    const int oi = __shfl_xor_sync(FULL_MASK, index, o);
    if (ov > best || (ov == best && oi < index)) {
      best = ov;
      index = oi;
    }
  }
}

// MERGE false: out[row] = the row's argmax. MERGE true (spw_argmax_merge): the row's maximum v at
// index i joins a running best over column chunks: when v > bestValue[row] (strictly; after
// initialising to -inf / 0 when `first`), bestValue[row] = v and out[row] = colOffset + i.
template <bool MERGE>
__global__ void __launch_bounds__(ROW_THREADS) argmax_rows_kernel(const float* __restrict__ x, int cols, int32_t* __restrict__ out, float* __restrict__ bestValue, int colOffset, int first) {
  __shared__ float sValue[32];
  __shared__ int sIndex[32];
  const float* row = x + (size_t)blockIdx.x * cols;
  float best = -INFINITY;
  int index = INT_MAX;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = row[c];
    if (v > best) {  // strict: the first of equal values; NaN never compares greater
      best = v;
      index = c;
    }
  }
  warpArgmax(best, index);
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  if (lane == 0) {
    sValue[warp] = best;
    sIndex[warp] = index;
  }
  __syncthreads();
  if (warp == 0) {
    const int warps = (blockDim.x + 31) >> 5;
    best = lane < warps ? sValue[lane] : -INFINITY;
    index = lane < warps ? sIndex[lane] : INT_MAX;
    warpArgmax(best, index);
    if (lane == 0) {
      if (!MERGE) {
        out[blockIdx.x] = best > -INFINITY ? index : 0;  // nothing above -inf: index 0
      } else {
        const float running = first ? -INFINITY : bestValue[blockIdx.x];
        if (first) out[blockIdx.x] = 0;
        if (best > running) {  // strict: an earlier chunk keeps a tie; -inf / NaN never join
          bestValue[blockIdx.x] = best;
          out[blockIdx.x] = colOffset + index;
        } else if (first) {
          bestValue[blockIdx.x] = running;
        }
      }
    }
  }
}

// ---- attention ----------------------------------------------------------------------------------

constexpr int ATT_THREADS = 256;
constexpr int ATT_WARPS = ATT_THREADS / 32;
constexpr int ATT_KEYS_PER_BLOCK = 64;
constexpr int ATT_PV_COLUMNS = 256;  // head-dim columns per pass of the P.V kernel: 8 per lane
constexpr unsigned MAX_GRID_YZ = 65535;

__global__ void __launch_bounds__(ATT_THREADS) attention_scores_kernel(const float* __restrict__ q, const float* __restrict__ k, float* __restrict__ scores, int t, int past, int heads, int headDim, double scale) {
  extern __shared__ float qs[];  // headDim scaled q values
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int head = blockIdx.y;
  const size_t ctx = (size_t)past + t;
  const size_t h = (size_t)heads * headDim;
  const int j0 = blockIdx.x * ATT_KEYS_PER_BLOCK;
  for (int i = blockIdx.z; i < t; i += gridDim.z) {
    const int visible = past + i + 1;
    if (j0 >= visible) continue;  // block-uniform: every key of this block is in i's future
    __syncthreads();              // the previous token's readers of qs are done
    const float* qRow = q + (size_t)i * h + (size_t)head * headDim;
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) qs[d] = (float)((double)qRow[d] * scale);
    __syncthreads();
    const int jEnd = min(j0 + ATT_KEYS_PER_BLOCK, visible);
    float* sRow = scores + ((size_t)i * heads + head) * ctx;
    for (int j = j0 + warp; j < jEnd; j += ATT_WARPS) {
      const float* kRow = k + (size_t)j * h + (size_t)head * headDim;
      float s = 0.0f;
      for (int d = lane; d < headDim; d += 32) s = fmaf(qs[d], __ldg(kRow + d), s);
      s = warpSum(s);
      if (lane == 0) sRow[j] = s;
    }
  }
}

__global__ void __launch_bounds__(ATT_THREADS) attention_softmax_kernel(float* scores, int t, int past, int heads) {
  const size_t ctx = (size_t)past + t;
  for (int i = blockIdx.y; i < t; i += gridDim.y) {
    blockSoftmaxSpan(scores + ((size_t)i * heads + blockIdx.x) * ctx, past + i + 1, (int)ctx);
    __syncthreads();  // (the next row's reductions start with a barrier too; this one is for clarity)
  }
}

template <int NW>
__global__ void __launch_bounds__(NW * 32) attention_pv_kernel(const float* __restrict__ probs, const float* __restrict__ v, float* __restrict__ out, int t, int past, int heads, int headDim) {
  __shared__ float partial[NW][ATT_PV_COLUMNS];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int head = blockIdx.x;
  const size_t ctx = (size_t)past + t;
  const size_t h = (size_t)heads * headDim;
  for (int i = blockIdx.y; i < t; i += gridDim.y) {
    const int visible = past + i + 1;
    const float* p = probs + ((size_t)i * heads + head) * ctx;
    for (int d0 = 0; d0 < headDim; d0 += ATT_PV_COLUMNS) {
      const int columns = min(ATT_PV_COLUMNS, headDim - d0);
      float acc[ATT_PV_COLUMNS / 32];
#pragma unroll
      for (int c = 0; c < ATT_PV_COLUMNS / 32; c++) acc[c] = 0.0f;
      const float* vBase = v + (size_t)head * headDim + d0;
#pragma unroll 2
      for (int j = warp; j < visible; j += NW) {
        const float pj = __ldg(p + j);
        const float* vRow = vBase + (size_t)j * h;
#pragma unroll
        for (int c = 0; c < ATT_PV_COLUMNS / 32; c++) {
          const int d = c * 32 + lane;
          if (d < columns) acc[c] = fmaf(pj, __ldg(vRow + d), acc[c]);
        }
      }
      __syncthreads();  // the previous pass's readers of `partial` are done
#pragma unroll
      for (int c = 0; c < ATT_PV_COLUMNS / 32; c++) partial[warp][c * 32 + lane] = acc[c];
      __syncthreads();
      for (int d = threadIdx.x; d < columns; d += blockDim.x) {
        float s = 0.0f;
#pragma unroll
        for (int w = 0; w < NW; w++) s += partial[w][d];
        out[(size_t)i * h + (size_t)head * headDim + d0 + d] = s;
      }
    }
  }
}

// ---- 4-bit groups ------------------------------------------------------------------------------

constexpr int Q4_BYTES_PER_GROUP = SPW_Q4_GROUP / 2;  // 32 code bytes
constexpr int Q4_THREADS = 256;

__device__ __forceinline__ uint16_t loadU16(const uint8_t* p) { return (uint16_t)(p[0] | (p[1] << 8)); }
__device__ __forceinline__ void storeU16(uint8_t* p, uint16_t v) {
  p[0] = (uint8_t)(v & 0xFF);
  p[1] = (uint8_t)(v >> 8);
}

// One thread per code byte of `rows` rows of `groups` groups; PAIR: write both values at once
// (rowValues even and `out` aligned to a pair).
template <typename Out, typename Index, bool PAIR>
__global__ void __launch_bounds__(Q4_THREADS) dequantize4_kernel(const uint8_t* __restrict__ stored, Index rows, Index rowValues, Index groups, Out* __restrict__ out) {
  const Index codeBytesPerRow = groups * Q4_BYTES_PER_GROUP;
  const Index rowBytes = groups * (Q4_BYTES_PER_GROUP + 4);
  const Index total = rows * codeBytesPerRow;
  for (Index b = (Index)blockIdx.x * blockDim.x + threadIdx.x; b < total; b += (Index)gridDim.x * blockDim.x) {
    const Index r = b / codeBytesPerRow;
    const Index inRow = b - r * codeBytesPerRow;  // = g * 32 + byte within the group
    const Index value0 = inRow * 2;
    if (value0 >= rowValues) continue;  // padding codes of a partial last group
    const Index g = inRow / Q4_BYTES_PER_GROUP;
    const uint8_t* base = stored + (size_t)r * rowBytes;
    const float scale = halfBitsToF32(loadU16(base + (size_t)codeBytesPerRow + 2 * (size_t)g));
    const float minimum = halfBitsToF32(loadU16(base + (size_t)codeBytesPerRow + 2 * ((size_t)groups + g)));
    const unsigned byte = base[inRow];
    // code * scale is exact in fp32; the FMA rounds min + code * scale once, as the CPU's float64 sum stored to fp32.
    const float hiValue = canonicalNaN(__fmaf_rn((float)(byte >> 4), scale, minimum));
    const float loValue = canonicalNaN(__fmaf_rn((float)(byte & 15u), scale, minimum));
    const size_t o = (size_t)r * rowValues + value0;
    if constexpr (sizeof(Out) == 4) {
      if (PAIR) {
        *reinterpret_cast<float2*>(out + o) = make_float2(hiValue, loValue);
      } else {
        out[o] = hiValue;
        if (value0 + 1 < rowValues) out[o + 1] = loValue;
      }
    } else {
      const uint16_t hiBits = f32ToHalfBits(hiValue);
      const uint16_t loBits = f32ToHalfBits(loValue);
      if (PAIR) {
        *reinterpret_cast<uint32_t*>(out + o) = (uint32_t)hiBits | ((uint32_t)loBits << 16);
      } else {
        out[o] = hiBits;
        if (value0 + 1 < rowValues) out[o + 1] = loBits;
      }
    }
  }
}

// Math.min / Math.max on non-NaN values: -0 counts as below +0.
__device__ __forceinline__ float jsMin(float a, float b) { return a < b ? a : (b < a ? b : (signbit(a) ? a : b)); }
__device__ __forceinline__ float jsMax(float a, float b) { return a > b ? a : (b > a ? b : (signbit(a) ? b : a)); }

__device__ __forceinline__ unsigned quantCode(float x, double minimum, double scale) {
  // floor((x - min) / scale + 0.5) in float64, each operation rounded to nearest on its own.
  const double c = floor(__dadd_rn(__ddiv_rn(__dsub_rn((double)x, minimum), scale), 0.5));
  return c <= 0.0 ? 0u : (c >= 15.0 ? 15u : (unsigned)c);
}

__global__ void __launch_bounds__(Q4_THREADS) quantize4_kernel(const float* __restrict__ x, size_t rows, size_t rowValues, size_t groups, uint8_t* __restrict__ stored) {
  const int lane = threadIdx.x & 31;
  const size_t warpsPerBlock = blockDim.x >> 5;
  const size_t totalGroups = rows * groups;
  const size_t codeBytesPerRow = groups * Q4_BYTES_PER_GROUP;
  const size_t rowBytes = groups * (Q4_BYTES_PER_GROUP + 4);
  // A warp per group; the loop is warp-uniform, so the shuffles see full warps.
  for (size_t gi = (size_t)blockIdx.x * warpsPerBlock + (threadIdx.x >> 5); gi < totalGroups; gi += (size_t)gridDim.x * warpsPerBlock) {
    const size_t r = gi / groups;
    const size_t g = gi - r * groups;
    const size_t start = g * SPW_Q4_GROUP;  // within the row
    const size_t i0 = start + 2 * (size_t)lane;
    const bool has0 = i0 < rowValues;
    const bool has1 = i0 + 1 < rowValues;
    const float* xRow = x + r * rowValues;
    const float v0 = has0 ? xRow[i0] : 0.0f;
    const float v1 = has1 ? xRow[i0 + 1] : 0.0f;
    const bool bad = (has0 && !(fabsf(v0) <= 65504.0f)) || (has1 && !(fabsf(v1) <= 65504.0f));  // NaN fails <=
    uint8_t* base = stored + r * rowBytes;
    uint8_t* scaleAt = base + codeBytesPerRow + 2 * g;
    uint8_t* minAt = base + codeBytesPerRow + 2 * (groups + g);
    if (__any_sync(FULL_MASK, bad)) {
      base[g * Q4_BYTES_PER_GROUP + lane] = 0xFF;
      if (lane == 0) {
        storeU16(scaleAt, 0x7E00);
        storeU16(minAt, 0x7E00);
      }
      continue;
    }
    float lo = INFINITY, hi = -INFINITY;
    if (has0) {
      lo = jsMin(lo, v0);
      hi = jsMax(hi, v0);
    }
    if (has1) {
      lo = jsMin(lo, v1);
      hi = jsMax(hi, v1);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      lo = jsMin(lo, __shfl_xor_sync(FULL_MASK, lo, o));
      hi = jsMax(hi, __shfl_xor_sync(FULL_MASK, hi, o));
    }
    const __half min16 = __float2half_rd(lo);
    const float minValue = __half2float(min16);
    const double range = __ddiv_rn(__dsub_rn((double)hi, (double)minValue), 15.0);
    const __half scale16 = __float2half_ru(__double2float_ru(range));
    const float scaleValue = __half2float(scale16);
    unsigned byte = 0;
    if (scaleValue != 0.0f) {
      if (has0) byte = quantCode(v0, (double)minValue, (double)scaleValue) << 4;
      if (has1) byte |= quantCode(v1, (double)minValue, (double)scaleValue);
    }
    base[g * Q4_BYTES_PER_GROUP + lane] = (uint8_t)byte;
    if (lane == 0) {
      storeU16(scaleAt, __half_as_ushort(scale16));
      storeU16(minAt, __half_as_ushort(min16));
    }
  }
}

// ---- linear: GEMV (m <= 8) ---------------------------------------------------------------------

constexpr int GEMV_THREADS = 256;
constexpr int GEMV_WARPS = GEMV_THREADS / 32;

// x tile length per row: M * KT floats <= 16 KB, KT a multiple of 256 (so of every VEC * 32).
template <int M>
__host__ __device__ constexpr int gemvTile() {
  return (4096 / M) / 256 * 256 < 256 ? 256 : (4096 / M) / 256 * 256;
}

template <int VEC>
__device__ __forceinline__ void loadHalves(const uint16_t* p, float (&f)[VEC]) {
  if constexpr (VEC == 8) {
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(p));
    const unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const float2 pair = __half22float2(*reinterpret_cast<const __half2*>(&words[e]));
      f[2 * e] = pair.x;
      f[2 * e + 1] = pair.y;
    }
  } else if constexpr (VEC == 2) {
    const unsigned raw = __ldg(reinterpret_cast<const unsigned*>(p));
    const float2 pair = __half22float2(*reinterpret_cast<const __half2*>(&raw));
    f[0] = pair.x;
    f[1] = pair.y;
  } else {
    f[0] = __half2float(__ushort_as_half(__ldg(p)));
  }
}

template <int M, int VEC>
__global__ void __launch_bounds__(GEMV_THREADS, 2) linear_gemv_kernel(const float* __restrict__ x, const uint16_t* __restrict__ w, const float* __restrict__ bias, float* __restrict__ out, int k, int n, int warpsPerColumn) {
  constexpr int KT = gemvTile<M>();
  __shared__ __align__(16) float xs[M * KT];
  __shared__ float partial[GEMV_WARPS][M];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int columnsPerBlock = GEMV_WARPS / warpsPerColumn;
  const int part = warp % warpsPerColumn;
  const long long column = (long long)blockIdx.x * columnsPerBlock + warp / warpsPerColumn;
  const bool active = column < n;  // inactive warps still stage x and reach every barrier
  const uint16_t* wRow = w + (size_t)(active ? column : 0) * (size_t)k;
  float acc[M];
#pragma unroll
  for (int r = 0; r < M; r++) acc[r] = 0.0f;

  for (int k0 = 0; k0 < k; k0 += KT) {
    const int length = min(KT, k - k0);  // a multiple of VEC (k % VEC == 0)
    __syncthreads();                     // the previous tile's readers are done
#pragma unroll
    for (int r = 0; r < M; r++) {
      const float* xRow = x + (size_t)r * k + k0;
      for (int e = threadIdx.x; e < length; e += GEMV_THREADS) xs[r * KT + e] = __ldg(xRow + e);
    }
    __syncthreads();
    if (active) {
      const int step = warpsPerColumn * 32 * VEC;
#pragma unroll 4
      for (int kk = (part * 32 + lane) * VEC; kk < length; kk += step) {
        float wf[VEC];
        loadHalves<VEC>(wRow + k0 + kk, wf);
#pragma unroll
        for (int r = 0; r < M; r++) {
          const float* xv = xs + r * KT + kk;
          if constexpr (VEC == 8) {
            const float4 a = *reinterpret_cast<const float4*>(xv);
            const float4 b = *reinterpret_cast<const float4*>(xv + 4);
            float s = acc[r];
            s = fmaf(a.x, wf[0], s);
            s = fmaf(a.y, wf[1], s);
            s = fmaf(a.z, wf[2], s);
            s = fmaf(a.w, wf[3], s);
            s = fmaf(b.x, wf[4], s);
            s = fmaf(b.y, wf[5], s);
            s = fmaf(b.z, wf[6], s);
            s = fmaf(b.w, wf[7], s);
            acc[r] = s;
          } else if constexpr (VEC == 2) {
            const float2 a = *reinterpret_cast<const float2*>(xv);
            acc[r] = fmaf(a.y, wf[1], fmaf(a.x, wf[0], acc[r]));
          } else {
            acc[r] = fmaf(xv[0], wf[0], acc[r]);
          }
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < M; r++) acc[r] = warpSum(acc[r]);
  if (warpsPerColumn == 1) {
    if (active && lane == 0) {
      const float b = bias ? bias[column] : 0.0f;
#pragma unroll
      for (int r = 0; r < M; r++) out[(size_t)r * n + column] = acc[r] + b;
    }
  } else {  // block-uniform branch
    if (lane == 0) {
#pragma unroll
      for (int r = 0; r < M; r++) partial[warp][r] = acc[r];
    }
    __syncthreads();
    if (active && part == 0 && lane == 0) {
      const float b = bias ? bias[column] : 0.0f;
#pragma unroll
      for (int r = 0; r < M; r++) {
        float s = 0.0f;
        for (int p = 0; p < warpsPerColumn; p++) s += partial[warp + p][r];
        out[(size_t)r * n + column] = s + b;
      }
    }
  }
}

// ---- linear: WMMA tensor-core GEMM (m > 8) -----------------------------------------------------

constexpr int GEMM_BM = 64;
constexpr int GEMM_BN = 64;
constexpr int GEMM_BK = 32;
constexpr int GEMM_LDS = GEMM_BK + 8;  // 40 halves = 80 bytes per staged row
constexpr int GEMM_LDC = GEMM_BN + 4;  // 68 floats per output-tile row
constexpr int GEMM_THREADS = 128;

// The next K step's x and w values for this thread: x rows (tid + 128 i) / 8, 4 columns each;
// w rows (tid + 128 i) / 4, 8 columns each.
struct GemmStage {
  float4 x[4];
  uint4 w[2];
};

template <bool VEC>
__device__ __forceinline__ void gemmLoad(GemmStage& st, const float* __restrict__ x, const uint16_t* __restrict__ w, int m, int k, int n, int row0, int col0, int k0) {
  const int tid = threadIdx.x;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int idx = tid + i * GEMM_THREADS;
    const int r = idx >> 3;
    const int c = (idx & 7) * 4;
    const int gr = row0 + r;
    const int gk = k0 + c;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (gr < m) {
      const float* p = x + (size_t)gr * k + gk;
      if (VEC) {
        if (gk < k) v = __ldg(reinterpret_cast<const float4*>(p));  // k % 8 == 0: all 4 in or all out
      } else {
        if (gk < k) v.x = __ldg(p);
        if (gk + 1 < k) v.y = __ldg(p + 1);
        if (gk + 2 < k) v.z = __ldg(p + 2);
        if (gk + 3 < k) v.w = __ldg(p + 3);
      }
    }
    st.x[i] = v;
  }
#pragma unroll
  for (int i = 0; i < 2; i++) {
    const int idx = tid + i * GEMM_THREADS;
    const int r = idx >> 2;
    const int c = (idx & 3) * 8;
    const int gn = col0 + r;
    const int gk = k0 + c;
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (gn < n) {
      const uint16_t* p = w + (size_t)gn * k + gk;
      if (VEC) {
        if (gk < k) v = __ldg(reinterpret_cast<const uint4*>(p));  // k % 8 == 0: all 8 in or all out
      } else {
        unsigned h[8];
#pragma unroll
        for (int e = 0; e < 8; e++) h[e] = gk + e < k ? (unsigned)__ldg(p + e) : 0u;
        v = make_uint4(h[0] | (h[1] << 16), h[2] | (h[3] << 16), h[4] | (h[5] << 16), h[6] | (h[7] << 16));
      }
    }
    st.w[i] = v;
  }
}

__device__ __forceinline__ __half2 residualHalf2(float a, float b, __half2 hi) {
  // x - fp16(x) is exact in fp32; its own fp16 rounding keeps the next 11 bits.
  const float2 h = __half22float2(hi);
  return __floats2half2_rn(a - h.x, b - h.y);
}

__device__ __forceinline__ void gemmStore(const GemmStage& st, __half* As, __half* AsLo, __half* Bs) {
  const int tid = threadIdx.x;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int idx = tid + i * GEMM_THREADS;
    const int r = idx >> 3;
    const int c = (idx & 7) * 4;
    __half2* dst = reinterpret_cast<__half2*>(As + r * GEMM_LDS + c);  // 8-byte aligned
    __half2* dstLo = reinterpret_cast<__half2*>(AsLo + r * GEMM_LDS + c);
    const __half2 h0 = __floats2half2_rn(st.x[i].x, st.x[i].y);
    const __half2 h1 = __floats2half2_rn(st.x[i].z, st.x[i].w);
    dst[0] = h0;
    dst[1] = h1;
    dstLo[0] = residualHalf2(st.x[i].x, st.x[i].y, h0);
    dstLo[1] = residualHalf2(st.x[i].z, st.x[i].w, h1);
  }
#pragma unroll
  for (int i = 0; i < 2; i++) {
    const int idx = tid + i * GEMM_THREADS;
    const int r = idx >> 2;
    const int c = (idx & 3) * 8;
    *reinterpret_cast<uint4*>(Bs + r * GEMM_LDS + c) = st.w[i];  // 16-byte aligned: 80 r + 2 c
  }
}

template <bool VEC>
__global__ void __launch_bounds__(GEMM_THREADS) linear_wmma_kernel(const float* __restrict__ x, const uint16_t* __restrict__ w, const float* __restrict__ bias, float* __restrict__ out, int m, int k, int n, int mTiles, long long totalTiles) {
  using namespace nvcuda;
  __shared__ __align__(128) __half As[GEMM_BM * GEMM_LDS];    // x tile, fp16(x), row-major [64 m][32 k]
  __shared__ __align__(128) __half AsLo[GEMM_BM * GEMM_LDS];  // x tile, fp16(x - fp16(x))
  __shared__ __align__(128) __half Bs[GEMM_BN * GEMM_LDS];  // w tile [64 n][32 k] = w^T col-major
  __shared__ __align__(128) float Cs[GEMM_BM * GEMM_LDC];
  const int warp = threadIdx.x >> 5;
  const int wr = warp >> 1;  // warp's 32-row half
  const int wc = warp & 1;   // warp's 32-column half

  for (long long tile = blockIdx.x; tile < totalTiles; tile += gridDim.x) {
    const int row0 = (int)(tile % mTiles) * GEMM_BM;
    const int col0 = (int)(tile / mTiles) * GEMM_BN;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
      for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);

    GemmStage stage;
    gemmLoad<VEC>(stage, x, w, m, k, n, row0, col0, 0);
    for (int k0 = 0; k0 < k; k0 += GEMM_BK) {
      __syncthreads();  // every warp is done with the previous step's As / Bs
      gemmStore(stage, As, AsLo, Bs);
      __syncthreads();
      if (k0 + GEMM_BK < k) gemmLoad<VEC>(stage, x, w, m, k, n, row0, col0, k0 + GEMM_BK);  // overlaps the MMAs
#pragma unroll
      for (int kk = 0; kk < GEMM_BK; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a[2];
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> b[2];
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::load_matrix_sync(b[j], Bs + (wc * 32 + j * 16) * GEMM_LDS + kk, GEMM_LDS);
        // The small part first, then the large one, into the same fp32 accumulators.
#pragma unroll
        for (int i = 0; i < 2; i++) wmma::load_matrix_sync(a[i], AsLo + (wr * 32 + i * 16) * GEMM_LDS + kk, GEMM_LDS);
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
          for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
#pragma unroll
        for (int i = 0; i < 2; i++) wmma::load_matrix_sync(a[i], As + (wr * 32 + i * 16) * GEMM_LDS + kk, GEMM_LDS);
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
          for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
      }
    }

#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
      for (int j = 0; j < 2; j++) wmma::store_matrix_sync(Cs + (wr * 32 + i * 16) * GEMM_LDC + wc * 32 + j * 16, acc[i][j], GEMM_LDC, wmma::mem_row_major);
    __syncthreads();
    for (int idx = threadIdx.x; idx < GEMM_BM * GEMM_BN; idx += GEMM_THREADS) {
      const int r = idx / GEMM_BN;
      const int c = idx % GEMM_BN;
      const int gr = row0 + r;
      const int gc = col0 + c;
      if (gr < m && gc < n) out[(size_t)gr * n + gc] = Cs[r * GEMM_LDC + c] + (bias ? bias[gc] : 0.0f);
    }
    __syncthreads();  // Cs is rewritten by the next tile (which has no K step when k == 0)
  }
}

template <int M>
cudaError_t launchGemvRows(const float* x, const uint16_t* w, const float* bias, float* out, int k, int n, cudaStream_t stream) {
  const int sms = multiprocessorCount();
  int warpsPerColumn = 1;
  auto blocksFor = [&](int wpc) { return ((size_t)n + (GEMV_WARPS / wpc) - 1) / (GEMV_WARPS / wpc); };
  while (warpsPerColumn < GEMV_WARPS && blocksFor(warpsPerColumn) < (size_t)2 * sms && k >= 512 * warpsPerColumn) warpsPerColumn *= 2;
  const unsigned blocks = (unsigned)blocksFor(warpsPerColumn);  // <= n
  if (k % 8 == 0 && aligned(w, 16)) {
    linear_gemv_kernel<M, 8><<<blocks, GEMV_THREADS, 0, stream>>>(x, w, bias, out, k, n, warpsPerColumn);
  } else if (k % 2 == 0 && aligned(w, 4)) {
    linear_gemv_kernel<M, 2><<<blocks, GEMV_THREADS, 0, stream>>>(x, w, bias, out, k, n, warpsPerColumn);
  } else {
    linear_gemv_kernel<M, 1><<<blocks, GEMV_THREADS, 0, stream>>>(x, w, bias, out, k, n, warpsPerColumn);
  }
  return cudaGetLastError();
}

// ---- group-wise quantised weights (2, 3, 4, 8 bits) -----------------------------------------------

struct GroupwiseFormat {
  int bits;
  int groupSize;
  int codeBytes;   // per group
  int metaBytes;   // one scale, one minimum: 2 (fp16) or 1 (8-bit float)
  int scaleShift;  // 8-bit scale -> fp16 bits
  int minShift;    // 8-bit minimum -> fp16 bits
};

__host__ __device__ inline bool groupwiseFormat(int bits, GroupwiseFormat* f) {
  switch (bits) {
    case 8: *f = {8, 64, 64, 2, 0, 0}; return true;
    case 4: *f = {4, 64, 32, 2, 0, 0}; return true;
    case 3: *f = {3, 64, 24, 2, 0, 0}; return true;
    case 2: *f = {2, 16, 4, 1, 7, 8}; return true;
    default: return false;
  }
}

// Value i of a stored tensor of `groups` groups. The byte after a group's last code is another group's
// code or a scale, so the two-byte window never leaves the tensor.
__device__ __forceinline__ float groupwiseValue(const uint8_t* __restrict__ stored, size_t groups, const GroupwiseFormat& f, size_t i) {
  const size_t g = i / (size_t)f.groupSize;
  const unsigned bit = (unsigned)(i - g * (size_t)f.groupSize) * (unsigned)f.bits;
  const size_t byte = g * (size_t)f.codeBytes + (bit >> 3);
  const unsigned window = ((unsigned)stored[byte] << 8) | stored[byte + 1];
  const unsigned code = (window >> (16u - (unsigned)f.bits - (bit & 7u))) & ((1u << f.bits) - 1u);
  const uint8_t* scales = stored + groups * (size_t)f.codeBytes;
  const uint8_t* mins = scales + groups * (size_t)f.metaBytes;
  float scale, minimum;
  if (f.metaBytes == 2) {
    scale = halfBitsToF32(loadU16(scales + 2 * g));
    minimum = halfBitsToF32(loadU16(mins + 2 * g));
  } else {
    scale = halfBitsToF32((uint16_t)(scales[g] << f.scaleShift));
    minimum = halfBitsToF32((uint16_t)(mins[g] << f.minShift));
  }
  return canonicalNaN(__fmaf_rn((float)code, scale, minimum));
}

__global__ void __launch_bounds__(EW_THREADS) dequantize_groupwise_kernel(const uint8_t* __restrict__ stored, size_t values, size_t groups, GroupwiseFormat f, float* __restrict__ out) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < values; i += (size_t)gridDim.x * blockDim.x) out[i] = groupwiseValue(stored, groups, f, i);
}

constexpr int GROUPWISE_ROWS = 8;  // rows of x per pass over w (accumulators per lane)

// One warp per output column j (grid-stride over columns); lanes take values kk = lane, lane + 32, ...
// of w's row j, decode each once and multiply it by up to GROUPWISE_ROWS rows of x. No shared memory and
// no barriers: the shuffles sit after per-lane loops, under conditions uniform across the warp.
__global__ void __launch_bounds__(EW_THREADS) linear_groupwise_kernel(const float* __restrict__ x, const uint8_t* __restrict__ w, GroupwiseFormat f, size_t groups, const float* __restrict__ bias, float* __restrict__ out, int m, int k, int n) {
  const int lane = threadIdx.x & 31;
  const int warpsPerBlock = blockDim.x >> 5;
  for (int j = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5); j < n; j += gridDim.x * warpsPerBlock) {
    for (int r0 = 0; r0 < m; r0 += GROUPWISE_ROWS) {
      const int rows = m - r0 < GROUPWISE_ROWS ? m - r0 : GROUPWISE_ROWS;
      float acc[GROUPWISE_ROWS];
#pragma unroll
      for (int r = 0; r < GROUPWISE_ROWS; r++) acc[r] = 0.0f;
      for (int kk = lane; kk < k; kk += 32) {
        const float v = groupwiseValue(w, groups, f, (size_t)j * k + kk);
#pragma unroll
        for (int r = 0; r < GROUPWISE_ROWS; r++)
          if (r < rows) acc[r] = __fmaf_rn(x[(size_t)(r0 + r) * k + kk], v, acc[r]);
      }
#pragma unroll
      for (int r = 0; r < GROUPWISE_ROWS; r++) {
        const float sum = warpSum(acc[r]);
        if (lane == 0 && r < rows) out[(size_t)(r0 + r) * n + j] = bias ? sum + bias[j] : sum;
      }
    }
  }
}

// ---- the MoE decoder's kernels (kernels.h) -------------------------------------------------------

// One block per row: fp32 sum of squares (FMA per thread, then blockReduce), scale = 1 / sqrtf(mean + eps)
// (both correctly rounded: no fast math), out = x * scale * weight.
__global__ void __launch_bounds__(ROW_THREADS) rms_norm_kernel(const float* x, const float* __restrict__ weight, float* out, int cols, float eps) {
  // x and out may alias: each thread writes only the columns it read, after the reduction's barriers.
  const size_t r = blockIdx.x;
  const float* xr = x + r * cols;
  float* orow = out + r * cols;
  float s = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) s = __fmaf_rn(xr[c], xr[c], s);
  const float total = blockReduce<false>(s);
  const float scale = 1.0f / sqrtf(total / (float)cols + eps);
  for (int c = threadIdx.x; c < cols; c += blockDim.x) orow[c] = xr[c] * scale * weight[c];
}

// RoPE's inverse frequencies theta^(-2i / headDim), computed by the launcher on the host in float64 (as
// rope.ts) and passed by value as two floats each (hi + lo: about 48 bits), so the device needs no pow.
constexpr int ROPE_MAX_PAIRS = 256;  // headDim <= 512; 2 KB of kernel parameters (the limit is 4 KB)
struct RopeFrequencies {
  float hi[ROPE_MAX_PAIRS];
  float lo[ROPE_MAX_PAIRS];
};
// 2 pi as float + float (the rest, -7e-15, is below what a reduced angle of fp32 can hold).
constexpr float TWO_PI_HI = 6.28318548202514648f;
constexpr float TWO_PI_LO = -1.7484555314695172e-7f;
constexpr float INV_TWO_PI = 0.159154936671257019f;

// One thread per (row, head, pair i), all fp32. The angle position * f is large (position up to the
// context length), and rounding it to fp32 would cost up to ulp(angle) / 2 (3e-5 rad at position 900),
// so it is reduced modulo 2 pi before rounding: position (an integer below 2^24, exact) times f.hi
// exactly as a + ea (FMA), minus n * 2 pi in two FMAs, plus the small terms; the reduced angle in
// [-pi, pi] then carries about ulp(pi) of error, and sincosf is accurate to a few ulp there.
__global__ void __launch_bounds__(EW_THREADS) rope_kernel(float* __restrict__ x, int rows, int heads, int headDim, int rowsPerSequence, int past, RopeFrequencies f) {
  const int half = headDim / 2;
  const size_t total = (size_t)rows * heads * half;
  for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
    const int i = (int)(idx % half);
    const size_t rh = idx / half;
    const int r = (int)(rh / heads);
    const int hd = (int)(rh % heads);
    const float position = (float)(past + r % rowsPerSequence);
    const float a = position * f.hi[i];
    const float ea = __fmaf_rn(position, f.hi[i], -a);  // the product's rounding error, exactly
    const float n = rintf(a * INV_TWO_PI);
    float angle = __fmaf_rn(-n, TWO_PI_HI, a);
    angle = __fmaf_rn(-n, TWO_PI_LO, angle);
    angle += __fmaf_rn(position, f.lo[i], ea);
    float sn, c;
    sincosf(angle, &sn, &c);
    float* head = x + (size_t)r * heads * headDim + (size_t)hd * headDim;
    const float x1 = head[i], x2 = head[i + half];
    head[i] = x1 * c - x2 * sn;
    head[i + half] = x2 * c + x1 * sn;
  }
}

constexpr int GQA_WARPS = ROW_THREADS / 32;

// One block per (query head, new token), all fp32: threads over keys for the scores (an FMA dot product
// over headDim, times headDim^-0.5), blockReduce max and sum of expf(score - max); then P.V as the dense
// attention_pv_kernel does it: warps split the visible keys, lanes take 32 head-dim columns at a time
// (coalesced V reads), the warps' partial sums added in warp order.
__global__ void __launch_bounds__(ROW_THREADS) gqa_attention_kernel(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ out, float* __restrict__ scratch, int t, int past, int heads, int kvHeads, int headDim) {
  __shared__ float partial[GQA_WARPS][32];
  const int hd = blockIdx.x;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const size_t ctx = (size_t)past + t;
  const size_t qWidth = (size_t)heads * headDim;
  const size_t kvWidth = (size_t)kvHeads * headDim;
  const size_t kvOffset = (size_t)(hd / (heads / kvHeads)) * headDim;
  const float scale = 1.0f / sqrtf((float)headDim);
  for (int i = blockIdx.y; i < t; i += gridDim.y) {
    const int visible = past + i + 1;
    const float* qRow = q + (size_t)i * qWidth + (size_t)hd * headDim;
    float* scores = scratch + ((size_t)i * heads + hd) * ctx;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < visible; j += blockDim.x) {
      const float* kRow = k + (size_t)j * kvWidth + kvOffset;
      float dot = 0.0f;
      for (int c = 0; c < headDim; c++) dot = __fmaf_rn(qRow[c], kRow[c], dot);
      const float score = dot * scale;
      scores[j] = score;
      m = fmaxf(m, score);
    }
    const float max = blockReduce<true>(m);
    float s = 0.0f;
    for (int j = threadIdx.x; j < visible; j += blockDim.x) {
      const float e = expf(scores[j] - max);
      scores[j] = e;
      s += e;
    }
    const float inverseSum = 1.0f / blockReduce<false>(s);  // its barriers publish every thread's scores
    float* oRow = out + (size_t)i * qWidth + (size_t)hd * headDim;
    const float* vBase = v + kvOffset;
    for (int d0 = 0; d0 < headDim; d0 += 32) {
      const int c = d0 + lane;
      float acc = 0.0f;
      if (c < headDim)
        for (int j = warp; j < visible; j += GQA_WARPS) acc = __fmaf_rn(scores[j] * inverseSum, vBase[(size_t)j * kvWidth + c], acc);
      __syncthreads();  // the previous columns' readers of `partial` are done
      partial[warp][lane] = acc;
      __syncthreads();
      if (warp == 0 && c < headDim) {
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < GQA_WARPS; w++) sum += partial[w][lane];
        oRow[c] = sum;
      }
    }
  }
}

__global__ void __launch_bounds__(EW_THREADS) moe_combine_kernel(float* __restrict__ x, const float* __restrict__ outputs, const float* __restrict__ weights, int rows, int k, int cols) {
  const size_t total = (size_t)rows * cols;
  for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
    const size_t r = idx / cols;
    const size_t c = idx % cols;
    float acc = x[idx];
    for (int j = 0; j < k; j++) acc = __fmaf_rn(weights[r * k + j], outputs[(r * k + j) * cols + c], acc);
    x[idx] = acc;
  }
}

// Rows by index, grid-stride over elements: SCATTER false, dst[i] = src[index[i]] (an index outside
// 0 .. indexedRows - 1 writes a NaN row); SCATTER true, dst[index[i]] = src[i] (such an index writes nothing).
template <bool SCATTER>
__global__ void __launch_bounds__(EW_THREADS) rows_by_index_kernel(const float* __restrict__ src, const int32_t* __restrict__ index, float* __restrict__ dst, int rows, int cols, int indexedRows) {
  const size_t total = (size_t)rows * cols;
  for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
    const size_t r = idx / cols;
    const size_t c = idx % cols;
    const int32_t at = index[r];
    const bool valid = at >= 0 && at < indexedRows;
    if (SCATTER) {
      if (valid) dst[(size_t)at * cols + c] = src[idx];
    } else {
      dst[idx] = valid ? src[(size_t)at * cols + c] : __uint_as_float(0x7FC00000u);
    }
  }
}

// One thread per row: k passes over the experts, each taking the best after the previous pick in the
// order (logit descending, index ascending), so no per-row memory beyond the outputs.
__global__ void __launch_bounds__(EW_THREADS) router_top_k_kernel(const float* __restrict__ logits, int rows, int experts, int k, int32_t* __restrict__ outExperts, float* __restrict__ outWeights) {
  for (int row = blockIdx.x * blockDim.x + threadIdx.x; row < rows; row += gridDim.x * blockDim.x) {
    const float* l = logits + (size_t)row * experts;
    int32_t* chosen = outExperts + (size_t)row * k;
    float* weights = outWeights + (size_t)row * k;
    int previous = -1;
    float previousLogit = 0.0f, top = 0.0f, sum = 0.0f;
    for (int r = 0; r < k; r++) {
      int best = -1;
      float bestLogit = 0.0f;
      for (int e = 0; e < experts; e++) {
        const float v = l[e];
        if (previous >= 0 && !(v < previousLogit || (v == previousLogit && e > previous))) continue;
        if (best < 0 || v > bestLogit) {
          best = e;
          bestLogit = v;
        }
      }
      if (r == 0) top = bestLogit;
      const float p = best < 0 ? 0.0f : expf(bestLogit - top);
      chosen[r] = best;
      weights[r] = p;
      sum += p;
      previous = best;
      previousLogit = bestLogit;
    }
    for (int r = 0; r < k; r++) weights[r] = weights[r] / sum;
  }
}

__global__ void __launch_bounds__(EW_THREADS) sigmoid_gated_add_kernel(float* __restrict__ x, const float* __restrict__ y, const float* __restrict__ gate, int rows, int cols) {
  const size_t total = (size_t)rows * cols;
  for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
    const float g = 1.0f / (1.0f + expf(-gate[idx / cols]));
    x[idx] = __fmaf_rn(g, y[idx], x[idx]);
  }
}

// gate[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + e^-g).
__global__ void __launch_bounds__(EW_THREADS) silu_gate_kernel(float* __restrict__ gate, const float* __restrict__ up, size_t n) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

template <typename Out>
cudaError_t dequantize4(const uint8_t* stored, size_t rows, size_t rowValues, Out* out, cudaStream_t stream) {
  if (rows == 0 || rowValues == 0) return cudaSuccess;
  const size_t groups = (rowValues + SPW_Q4_GROUP - 1) / SPW_Q4_GROUP;
  const size_t codeBytes = rows * groups * Q4_BYTES_PER_GROUP;
  const unsigned blocks = gridFor(codeBytes, Q4_THREADS);
  const bool pair = rowValues % 2 == 0 && aligned(out, 2 * sizeof(Out));
  // 32-bit index arithmetic when every index (and the grid-stride overshoot) fits.
  const bool small = codeBytes + (size_t)blocks * Q4_THREADS < ((size_t)1 << 32) && rows * rowValues < ((size_t)1 << 32);
  if (small) {
    if (pair) dequantize4_kernel<Out, uint32_t, true><<<blocks, Q4_THREADS, 0, stream>>>(stored, (uint32_t)rows, (uint32_t)rowValues, (uint32_t)groups, out);
    else dequantize4_kernel<Out, uint32_t, false><<<blocks, Q4_THREADS, 0, stream>>>(stored, (uint32_t)rows, (uint32_t)rowValues, (uint32_t)groups, out);
  } else {
    if (pair) dequantize4_kernel<Out, size_t, true><<<blocks, Q4_THREADS, 0, stream>>>(stored, rows, rowValues, groups, out);
    else dequantize4_kernel<Out, size_t, false><<<blocks, Q4_THREADS, 0, stream>>>(stored, rows, rowValues, groups, out);
  }
  return cudaGetLastError();
}

}  // namespace

// ---- launchers ---------------------------------------------------------------------------------

extern "C" {

cudaError_t spw_linear(const float* x, const uint16_t* w, const float* bias, float* out, int m, int k, int n, cudaStream_t stream) {
  if (m < 0 || k < 0 || n < 0) return cudaErrorInvalidValue;
  if (m == 0 || n == 0) return cudaSuccess;
  // k == 0 still launches: out = bias (or 0).
  if (m <= SPW_GEMV_MAX_ROWS) {
    switch (m) {
      case 1: return launchGemvRows<1>(x, w, bias, out, k, n, stream);
      case 2: return launchGemvRows<2>(x, w, bias, out, k, n, stream);
      case 3: return launchGemvRows<3>(x, w, bias, out, k, n, stream);
      case 4: return launchGemvRows<4>(x, w, bias, out, k, n, stream);
      case 5: return launchGemvRows<5>(x, w, bias, out, k, n, stream);
      case 6: return launchGemvRows<6>(x, w, bias, out, k, n, stream);
      case 7: return launchGemvRows<7>(x, w, bias, out, k, n, stream);
      default: return launchGemvRows<8>(x, w, bias, out, k, n, stream);
    }
  }
  const int mTiles = (int)(((long long)m + GEMM_BM - 1) / GEMM_BM);
  const long long nTiles = ((long long)n + GEMM_BN - 1) / GEMM_BN;
  const long long totalTiles = (long long)mTiles * nTiles;
  const unsigned blocks = (unsigned)(totalTiles < (1LL << 24) ? totalTiles : (1LL << 24));
  if (k % 8 == 0 && aligned(x, 16) && aligned(w, 16)) {
    linear_wmma_kernel<true><<<blocks, GEMM_THREADS, 0, stream>>>(x, w, bias, out, m, k, n, mTiles, totalTiles);
  } else {
    linear_wmma_kernel<false><<<blocks, GEMM_THREADS, 0, stream>>>(x, w, bias, out, m, k, n, mTiles, totalTiles);
  }
  return cudaGetLastError();
}

cudaError_t spw_layer_norm(const float* x, const float* gamma, const float* beta, float* out, int rows, int cols, float eps, cudaStream_t stream) {
  if (rows < 0 || cols < 0) return cudaErrorInvalidValue;
  if (rows == 0 || cols == 0) return cudaSuccess;
  layer_norm_kernel<<<(unsigned)rows, ROW_THREADS, 0, stream>>>(x, gamma, beta, out, cols, eps);
  return cudaGetLastError();
}

cudaError_t spw_softmax_rows(float* x, int rows, int cols, cudaStream_t stream) {
  if (rows < 0 || cols < 0) return cudaErrorInvalidValue;
  if (rows == 0 || cols == 0) return cudaSuccess;
  softmax_rows_kernel<<<(unsigned)rows, ROW_THREADS, 0, stream>>>(x, cols);
  return cudaGetLastError();
}

size_t spw_attention_scratch_floats(int t, int past, int heads) {
  if (t <= 0 || past < 0 || heads <= 0) return 0;
  return (size_t)t * (size_t)heads * ((size_t)past + (size_t)t);
}

cudaError_t spw_attention(const float* q, const float* k, const float* v, float* out, float* scratch, int t, int past, int heads, int headDim, cudaStream_t stream) {
  if (t < 0 || past < 0 || heads < 0 || headDim < 0) return cudaErrorInvalidValue;
  if (t == 0 || heads == 0 || headDim == 0) return cudaSuccess;
  if ((long long)past + t > INT_MAX || (long long)heads * headDim > INT_MAX) return cudaErrorInvalidValue;
  if ((size_t)headDim * sizeof(float) > 48 * 1024) return cudaErrorInvalidValue;  // scores kernel's shared q
  if (heads > (int)MAX_GRID_YZ) return cudaErrorInvalidValue;
  const int ctx = past + t;
  const unsigned tokenBlocks = (unsigned)t < MAX_GRID_YZ ? (unsigned)t : MAX_GRID_YZ;  // kernels loop over the rest
  const double scale = 1.0 / sqrt((double)headDim);  // as 1 / Math.sqrt(headDim)

  const dim3 scoreGrid((unsigned)((ctx + ATT_KEYS_PER_BLOCK - 1) / ATT_KEYS_PER_BLOCK), (unsigned)heads, tokenBlocks);
  attention_scores_kernel<<<scoreGrid, ATT_THREADS, (size_t)headDim * sizeof(float), stream>>>(q, k, scratch, t, past, heads, headDim, scale);
  attention_softmax_kernel<<<dim3((unsigned)heads, tokenBlocks), ATT_THREADS, 0, stream>>>(scratch, t, past, heads);
  if ((size_t)t * heads < (size_t)2 * multiprocessorCount()) {
    attention_pv_kernel<32><<<dim3((unsigned)heads, tokenBlocks), 32 * 32, 0, stream>>>(scratch, v, out, t, past, heads, headDim);
  } else {
    attention_pv_kernel<ATT_WARPS><<<dim3((unsigned)heads, tokenBlocks), ATT_WARPS * 32, 0, stream>>>(scratch, v, out, t, past, heads, headDim);
  }
  return cudaGetLastError();
}

cudaError_t spw_relu(float* x, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  relu_kernel<<<gridFor(n, EW_THREADS), EW_THREADS, 0, stream>>>(x, n);
  return cudaGetLastError();
}

cudaError_t spw_add(float* x, const float* y, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  add_kernel<<<gridFor(n, EW_THREADS), EW_THREADS, 0, stream>>>(x, y, n);
  return cudaGetLastError();
}

cudaError_t spw_embedding(const uint16_t* table, const int32_t* ids, int count, int dim, int rows, float* out, cudaStream_t stream) {
  if (count < 0 || dim < 0 || rows < 0) return cudaErrorInvalidValue;
  if (count == 0 || dim == 0) return cudaSuccess;
  const dim3 grid((unsigned)((dim + EW_THREADS - 1) / EW_THREADS), (unsigned)count < MAX_GRID_YZ ? (unsigned)count : MAX_GRID_YZ);
  embedding_kernel<<<grid, EW_THREADS, 0, stream>>>(table, ids, count, dim, rows, out);
  return cudaGetLastError();
}

cudaError_t spw_f32_to_f16(const float* x, uint16_t* out, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  f32_to_f16_kernel<<<gridFor(n, EW_THREADS), EW_THREADS, 0, stream>>>(x, out, n);
  return cudaGetLastError();
}

cudaError_t spw_f16_to_f32(const uint16_t* x, float* out, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  f16_to_f32_kernel<<<gridFor(n, EW_THREADS), EW_THREADS, 0, stream>>>(x, out, n);
  return cudaGetLastError();
}

size_t spw_q4_bytes(size_t rowValues) {
  return (rowValues + SPW_Q4_GROUP - 1) / SPW_Q4_GROUP * (size_t)(Q4_BYTES_PER_GROUP + 4);
}

cudaError_t spw_dequantize4_f16(const uint8_t* stored, size_t rows, size_t rowValues, uint16_t* out, cudaStream_t stream) {
  return dequantize4<uint16_t>(stored, rows, rowValues, out, stream);
}

cudaError_t spw_dequantize4_f32(const uint8_t* stored, size_t rows, size_t rowValues, float* out, cudaStream_t stream) {
  return dequantize4<float>(stored, rows, rowValues, out, stream);
}

cudaError_t spw_quantize4(const float* x, size_t rows, size_t rowValues, uint8_t* stored, cudaStream_t stream) {
  if (rows == 0 || rowValues == 0) return cudaSuccess;
  const size_t groups = (rowValues + SPW_Q4_GROUP - 1) / SPW_Q4_GROUP;
  quantize4_kernel<<<gridFor(rows * groups, Q4_THREADS / 32), Q4_THREADS, 0, stream>>>(x, rows, rowValues, groups, stored);
  return cudaGetLastError();
}

size_t spw_groupwise_bytes(size_t values, int bits) {
  if (bits == 16) return values * 2;
  GroupwiseFormat f;
  if (!groupwiseFormat(bits, &f)) return 0;
  return (values + f.groupSize - 1) / f.groupSize * (size_t)(f.codeBytes + 2 * f.metaBytes);
}

cudaError_t spw_dequantize_groupwise_f32(const uint8_t* stored, size_t values, int bits, float* out, cudaStream_t stream) {
  if (bits == 16) return spw_f16_to_f32(reinterpret_cast<const uint16_t*>(stored), out, values, stream);
  GroupwiseFormat f;
  if (!groupwiseFormat(bits, &f)) return cudaErrorInvalidValue;
  if (values == 0) return cudaSuccess;
  const size_t groups = (values + f.groupSize - 1) / f.groupSize;
  dequantize_groupwise_kernel<<<gridFor(values, EW_THREADS), EW_THREADS, 0, stream>>>(stored, values, groups, f, out);
  return cudaGetLastError();
}

cudaError_t spw_linear_groupwise(const float* x, const uint8_t* w, int bits, float* out, int m, int k, int n, cudaStream_t stream) {
  return spw_linear_groupwise_bias(x, w, bits, nullptr, out, m, k, n, stream);
}

cudaError_t spw_linear_groupwise_bias(const float* x, const uint8_t* w, int bits, const float* bias, float* out, int m, int k, int n, cudaStream_t stream) {
  if (bits == 16) return spw_linear(x, reinterpret_cast<const uint16_t*>(w), bias, out, m, k, n, stream);
  GroupwiseFormat f;
  if (!groupwiseFormat(bits, &f) || m < 0 || k < 0 || n < 0) return cudaErrorInvalidValue;
  if (m == 0 || n == 0) return cudaSuccess;
  const size_t groups = ((size_t)n * k + f.groupSize - 1) / f.groupSize;
  linear_groupwise_kernel<<<gridFor((size_t)n, EW_THREADS / 32), EW_THREADS, 0, stream>>>(x, w, f, groups, bias, out, m, k, n);
  return cudaGetLastError();
}

cudaError_t spw_rms_norm(const float* x, const float* weight, float* out, int rows, int cols, double eps, cudaStream_t stream) {
  if (rows < 0 || cols < 0) return cudaErrorInvalidValue;
  if (rows == 0 || cols == 0) return cudaSuccess;
  rms_norm_kernel<<<(unsigned)rows, ROW_THREADS, 0, stream>>>(x, weight, out, cols, (float)eps);
  return cudaGetLastError();
}

cudaError_t spw_rope(float* x, int rows, int heads, int headDim, int rowsPerSequence, int past, double theta, cudaStream_t stream) {
  if (rows < 0 || heads < 0 || headDim < 0 || past < 0 || headDim % 2 != 0 || !(theta > 0)) return cudaErrorInvalidValue;
  if (rows > 0 && rowsPerSequence <= 0) return cudaErrorInvalidValue;
  const int half = headDim / 2;
  const size_t pairs = (size_t)rows * heads * half;
  if (pairs == 0) return cudaSuccess;
  // Positions must be exact in fp32 (below 2^24) and the frequencies fit the kernel's parameters.
  if (half > ROPE_MAX_PAIRS || (long long)past + (rowsPerSequence < rows ? rowsPerSequence : rows) > (1 << 24)) return cudaErrorInvalidValue;
  RopeFrequencies f;
  for (int i = 0; i < half; i++) {
    const double frequency = pow(theta, -(double)(2 * i) / (double)headDim);  // as rope.ts, in float64
    f.hi[i] = (float)frequency;
    f.lo[i] = (float)(frequency - (double)f.hi[i]);
  }
  for (int i = half; i < ROPE_MAX_PAIRS; i++) f.hi[i] = f.lo[i] = 0.0f;
  rope_kernel<<<gridFor(pairs, EW_THREADS), EW_THREADS, 0, stream>>>(x, rows, heads, headDim, rowsPerSequence, past, f);
  return cudaGetLastError();
}

cudaError_t spw_gqa_attention(const float* q, const float* k, const float* v, float* out, float* scratch, int t, int past, int heads, int kvHeads, int headDim, cudaStream_t stream) {
  if (t < 0 || past < 0 || heads < 0 || kvHeads < 0 || headDim < 0) return cudaErrorInvalidValue;
  if (heads > 0 && (kvHeads == 0 || heads % kvHeads != 0)) return cudaErrorInvalidValue;
  if (t == 0 || heads == 0 || headDim == 0) return cudaSuccess;
  if (heads > (int)MAX_GRID_YZ * 1024) return cudaErrorInvalidValue;
  const unsigned tokenBlocks = (unsigned)t < MAX_GRID_YZ ? (unsigned)t : MAX_GRID_YZ;  // the kernel loops over the rest
  gqa_attention_kernel<<<dim3((unsigned)heads, tokenBlocks), ROW_THREADS, 0, stream>>>(q, k, v, out, scratch, t, past, heads, kvHeads, headDim);
  return cudaGetLastError();
}

cudaError_t spw_moe_combine(float* x, const float* outputs, const float* weights, int rows, int k, int cols, cudaStream_t stream) {
  if (rows < 0 || k < 0 || cols < 0) return cudaErrorInvalidValue;
  const size_t total = (size_t)rows * cols;
  if (total == 0) return cudaSuccess;
  moe_combine_kernel<<<gridFor(total, EW_THREADS), EW_THREADS, 0, stream>>>(x, outputs, weights, rows, k, cols);
  return cudaGetLastError();
}

cudaError_t spw_gather_rows(const float* src, int srcRows, const int32_t* index, int rows, int cols, float* dst, cudaStream_t stream) {
  if (srcRows < 0 || rows < 0 || cols < 0) return cudaErrorInvalidValue;
  const size_t total = (size_t)rows * cols;
  if (total == 0) return cudaSuccess;
  rows_by_index_kernel<false><<<gridFor(total, EW_THREADS), EW_THREADS, 0, stream>>>(src, index, dst, rows, cols, srcRows);
  return cudaGetLastError();
}

cudaError_t spw_scatter_rows(const float* src, const int32_t* index, int rows, int cols, float* dst, int dstRows, cudaStream_t stream) {
  if (dstRows < 0 || rows < 0 || cols < 0) return cudaErrorInvalidValue;
  const size_t total = (size_t)rows * cols;
  if (total == 0) return cudaSuccess;
  rows_by_index_kernel<true><<<gridFor(total, EW_THREADS), EW_THREADS, 0, stream>>>(src, index, dst, rows, cols, dstRows);
  return cudaGetLastError();
}

cudaError_t spw_router_top_k(const float* logits, int rows, int experts, int k, int32_t* outExperts, float* outWeights, cudaStream_t stream) {
  if (rows < 0 || experts < 0 || k < 1 || k > experts) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  router_top_k_kernel<<<gridFor((size_t)rows, EW_THREADS), EW_THREADS, 0, stream>>>(logits, rows, experts, k, outExperts, outWeights);
  return cudaGetLastError();
}

cudaError_t spw_sigmoid_gated_add(float* x, const float* y, const float* gate, int rows, int cols, cudaStream_t stream) {
  if (rows < 0 || cols < 0) return cudaErrorInvalidValue;
  const size_t total = (size_t)rows * cols;
  if (total == 0) return cudaSuccess;
  sigmoid_gated_add_kernel<<<gridFor(total, EW_THREADS), EW_THREADS, 0, stream>>>(x, y, gate, rows, cols);
  return cudaGetLastError();
}

cudaError_t spw_expert_swiglu(const float* x, const uint8_t* expert, int bits, int m, int hidden, int ffn, float* scratch, float* out, cudaStream_t stream) {
  if (m < 0 || hidden < 0 || ffn < 0) return cudaErrorInvalidValue;
  const size_t matrixBytes = spw_groupwise_bytes((size_t)hidden * ffn, bits);
  if (matrixBytes == 0 && hidden > 0 && ffn > 0) return cudaErrorInvalidValue;
  if (m == 0 || hidden == 0) return cudaSuccess;
  float* gate = scratch;
  float* up = scratch + (size_t)m * ffn;
  cudaError_t status = spw_linear_groupwise(x, expert, bits, gate, m, hidden, ffn, stream);
  if (status == cudaSuccess) status = spw_linear_groupwise(x, expert + matrixBytes, bits, up, m, hidden, ffn, stream);
  if (status != cudaSuccess) return status;
  if ((size_t)m * ffn > 0) {
    silu_gate_kernel<<<gridFor((size_t)m * ffn, EW_THREADS), EW_THREADS, 0, stream>>>(gate, up, (size_t)m * ffn);
    status = cudaGetLastError();
    if (status != cudaSuccess) return status;
  }
  return spw_linear_groupwise(gate, expert + 2 * matrixBytes, bits, out, m, ffn, hidden, stream);
}

cudaError_t spw_argmax_rows(const float* x, int rows, int cols, int32_t* out, cudaStream_t stream) {
  if (rows < 0 || cols < 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  // cols == 0 (argmax.ts throws there) still launches: each row gets 0.
  argmax_rows_kernel<false><<<(unsigned)rows, ROW_THREADS, 0, stream>>>(x, cols, out, nullptr, 0, 0);
  return cudaGetLastError();
}

cudaError_t spw_argmax_merge(const float* x, int rows, int cols, int colOffset, float* bestValue, int32_t* bestIndex, int first, cudaStream_t stream) {
  if (rows < 0 || cols < 0 || colOffset < 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  argmax_rows_kernel<true><<<(unsigned)rows, ROW_THREADS, 0, stream>>>(x, cols, bestIndex, bestValue, colOffset, first);
  return cudaGetLastError();
}

cudaError_t spw_copy(const void* src, void* dst, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  const uint8_t* s = static_cast<const uint8_t*>(src);
  uint8_t* d = static_cast<uint8_t*>(dst);
  if ((((uintptr_t)s ^ (uintptr_t)d) & 15) == 0) {
    size_t head = (16 - ((uintptr_t)s & 15)) & 15;
    if (head > bytes) head = bytes;
    const size_t n16 = (bytes - head) / 16;
    const size_t tail = bytes - head - n16 * 16;  // < 16, as head
    copy_kernel<<<gridFor(n16, EW_THREADS), EW_THREADS, 0, stream>>>(s, d, head, n16, tail);
  } else {
    copy_bytes_kernel<<<gridFor(bytes, EW_THREADS), EW_THREADS, 0, stream>>>(s, d, bytes);
  }
  return cudaGetLastError();
}

}  // extern "C"
