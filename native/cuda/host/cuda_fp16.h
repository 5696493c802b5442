// Host emulation of the <cuda_fp16.h> subset kernels.cu uses (see cuda_runtime.h beside this file).
// Conversions are exact IEEE binary16 roundings (to nearest even, down, up), computed in double.
#pragma once

#include <cmath>
#include <cstdint>

#include "cuda_runtime.h"

struct __half {
  unsigned short __x;
};
struct __attribute__((aligned(4))) __half2 {
  __half x, y;
};
typedef __half half;
typedef __half2 half2;

namespace spw_host {

enum class HalfRounding { Nearest, Down, Up };

// float -> binary16 bits with the given rounding; NaN -> 0x7FFF (CUDA's canonical half NaN).
inline uint16_t floatToHalfBits(float f, HalfRounding mode) {
  if (std::isnan(f)) return 0x7FFF;
  const bool negative = std::signbit(f);
  const uint16_t sign = negative ? 0x8000 : 0;
  const double a = std::fabs((double)f);
  if (std::isinf(a)) return sign | 0x7C00;
  if (a == 0.0) return sign;
  int exponent;
  std::frexp(a, &exponent);  // a = m * 2^exponent, m in [0.5, 1)
  // Spacing of the binary16 grid at a: 2^(e - 11) for normals (e = exponent), 2^-24 below 2^-14.
  const int e = exponent - 1 < -14 ? -14 : exponent - 1;
  const double ulp = std::ldexp(1.0, e - 10);
  const double q = a / ulp;  // exact: ulp is a power of two
  double r;
  if (mode == HalfRounding::Nearest) {
    r = std::nearbyint(q);  // the default rounding mode: ties to even
  } else {
    // Down for positive values and up for negative ones shrink the magnitude.
    const bool towardZero = (mode == HalfRounding::Down) != negative;
    r = towardZero ? std::floor(q) : std::ceil(q);
  }
  const double magnitude = r * ulp;
  if (magnitude > 65504.0) {
    const bool toInfinity = mode == HalfRounding::Nearest || ((mode == HalfRounding::Up) != negative);
    return sign | (toInfinity ? 0x7C00 : 0x7BFF);
  }
  if (magnitude < std::ldexp(1.0, -14)) return sign | (uint16_t)(magnitude / std::ldexp(1.0, -24));  // subnormal (or 0)
  int me;
  const double mm = std::frexp(magnitude, &me);  // magnitude = mm * 2^me, mm in [0.5, 1)
  const uint16_t biased = (uint16_t)(me - 1 + 15);
  const uint16_t mantissa = (uint16_t)((mm * 2.0 - 1.0) * 1024.0);
  return sign | (uint16_t)(biased << 10) | mantissa;
}

inline float halfBitsToFloat(uint16_t h) {
  const float sign = (h & 0x8000) ? -1.0f : 1.0f;
  const int exponent = (h >> 10) & 0x1F;
  const int mantissa = h & 0x3FF;
  if (exponent == 0x1F) return mantissa ? NAN : sign * INFINITY;
  if (exponent == 0) return sign * std::ldexp((float)mantissa, -24);
  return sign * std::ldexp((float)(mantissa | 0x400), exponent - 25);
}

}  // namespace spw_host

inline __half __ushort_as_half(unsigned short bits) { return __half{bits}; }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline float __half2float(__half h) { return spw_host::halfBitsToFloat(h.__x); }
inline __half __float2half_rn(float f) { return __half{spw_host::floatToHalfBits(f, spw_host::HalfRounding::Nearest)}; }
inline __half __float2half_rd(float f) { return __half{spw_host::floatToHalfBits(f, spw_host::HalfRounding::Down)}; }
inline __half __float2half_ru(float f) { return __half{spw_host::floatToHalfBits(f, spw_host::HalfRounding::Up)}; }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__float2half_rn(a), __float2half_rn(b)}; }
inline float2 __half22float2(__half2 h) { return float2{__half2float(h.x), __half2float(h.y)}; }
