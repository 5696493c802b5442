// Host emulation of the <mma.h> WMMA subset kernels.cu uses: 16x16x16 fragments of half inputs and
// float accumulators (see cuda_runtime.h beside this file).
//
// On a GPU a fragment's elements are spread over the warp's 32 lanes in an unspecified layout; here
// lane 0's fragment holds the whole 16x16 tile (as floats) and does the warp's work, the other lanes'
// fragments stay unused (kernels.cu touches fragments through these calls only). Each call is a
// warp barrier first (all 32 lanes must reach the same call, as the _sync functions require), then
// checks what CUDA requires of its arguments: a 256-bit (32-byte) aligned pointer and a leading
// dimension that is a multiple of 8 halves / 4 floats (16 bytes). mma_sync multiplies in float
// (products of halves are exact) and adds k = 0..15 in order; tensor cores add in
// another order, so sums can differ in the last bits.
#pragma once

#include <cstdint>

#include "cuda_fp16.h"
#include "cuda_runtime.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  // Element (r, c) of the tile at x[r * 16 + c], whatever the memory layout it was loaded from; halves
  // are held as the floats they equal.
  float x[256];
  static constexpr int num_elements = 256;
};

namespace detail {

inline void checkPointer(const void* pointer, unsigned ldm, unsigned elementBytes, const char* what) {
  if (((uintptr_t)pointer & 31u) != 0) ::spw_host::fail("%s: pointer %p is not 32-byte aligned", what, pointer);
  if ((ldm * elementBytes) % 16u != 0) ::spw_host::fail("%s: ldm %u is not a multiple of 16 bytes", what, ldm);
}

}  // namespace detail

template <typename T>
inline void fill_fragment(fragment<accumulator, 16, 16, 16, float>& f, T value) {
  ::spw_host::warpCollective("wmma::fill_fragment", __LINE__);
  if (::spw_host::laneId() != 0) return;
  for (float& v : f.x) v = (float)value;
}

// A row-major tile: element (r, c) at p[r * ldm + c].
inline void load_matrix_sync(fragment<matrix_a, 16, 16, 16, __half, row_major>& f, const __half* p, unsigned ldm) {
  ::spw_host::warpCollective("wmma::load_matrix_sync (matrix_a)", __LINE__);
  detail::checkPointer(p, ldm, 2, "wmma::load_matrix_sync (matrix_a, row_major)");
  if (::spw_host::laneId() != 0) return;
  for (int r = 0; r < 16; r++)
    for (int c = 0; c < 16; c++) f.x[r * 16 + c] = __half2float(p[r * ldm + c]);
}

// A column-major tile: element (r, c) = (k, n) at p[c * ldm + r].
inline void load_matrix_sync(fragment<matrix_b, 16, 16, 16, __half, col_major>& f, const __half* p, unsigned ldm) {
  ::spw_host::warpCollective("wmma::load_matrix_sync (matrix_b)", __LINE__);
  detail::checkPointer(p, ldm, 2, "wmma::load_matrix_sync (matrix_b, col_major)");
  if (::spw_host::laneId() != 0) return;
  for (int r = 0; r < 16; r++)
    for (int c = 0; c < 16; c++) f.x[r * 16 + c] = __half2float(p[c * ldm + r]);
}

inline void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, __half, row_major>& a,
                     const fragment<matrix_b, 16, 16, 16, __half, col_major>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  ::spw_host::warpCollective("wmma::mma_sync", __LINE__);
  if (::spw_host::laneId() != 0) return;
  float product[256];
  for (int i = 0; i < 16; i++) {
    for (int j = 0; j < 16; j++) {
      float s = c.x[i * 16 + j];
      for (int k = 0; k < 16; k++) s += a.x[i * 16 + k] * b.x[k * 16 + j];
      product[i * 16 + j] = s;
    }
  }
  for (int e = 0; e < 256; e++) d.x[e] = product[e];
}

inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t layout) {
  ::spw_host::warpCollective("wmma::store_matrix_sync", __LINE__);
  detail::checkPointer(p, ldm, 4, "wmma::store_matrix_sync");
  if (::spw_host::laneId() != 0) return;
  for (int r = 0; r < 16; r++)
    for (int c = 0; c < 16; c++) {
      if (layout == mem_row_major) p[r * ldm + c] = f.x[r * 16 + c];
      else p[c * ldm + r] = f.x[r * 16 + c];
    }
}

}  // namespace wmma
}  // namespace nvcuda
