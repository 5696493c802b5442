/**
 * Prices of the kernels FlexGen's PyTorch backend launches, from the profile's kernel-class rates.
 * Byte counts per value are read off the code (flexgen/compression.py, flexgen/pytorch_backend.py):
 *
 * `TorchCompressedDevice.decompress` (4-bit, group 64) runs, over n values: `packed >> 4` (read n/2,
 * write n/2 bytes), a store of it into every other fp16 slot along the group dimension (read n/2, write
 * n bytes), `packed & 0xF` (n/2, n/2), the second store (n/2, n), `div_(scale)` (2n, 2n) and `add_(mn)`
 * (2n, 2n): 13 bytes per value, six launches. Where the two stores land depends on the group dimension
 * (flex_opt.py `run_flexgen`): the KV cache groups along head_dim (`group_dim=2`), so each store writes
 * every other fp16 slot (3 bytes per value through strided kernels, 10 through contiguous ones); weights
 * group along their first dimension (`group_dim=0`), so `data[:, 0::2]` of the (groups, 64, columns)
 * output is every other whole row and both stores write contiguous rows (all 13 bytes contiguous).
 *
 * `compress` (run on the KV cache only: weights are compressed at load time) runs min and max over each
 * group (2n + 2n read), `mx - mn` and `B / (...)` (per group), `data - mn` (2n, 2n), `mul_`, `clamp_`,
 * `round_` (2n, 2n each), `.to(uint8)` (2n, n), two strided reads of every other byte with a shift and
 * an or (n, n/2 and n/2 + n/2, n/2) and the `torch.cat` of scale and min (per group): 23 bytes per value
 * contiguous and 3 strided, twelve launches a call.
 */
import { COMPRESSION_GROUP_SIZE } from "../../core/compression.js";
import type { KernelRates } from "../kernel-rates.js";

export const DECOMPRESS_CONTIGUOUS_BYTES_PER_VALUE = 10;
export const DECOMPRESS_STRIDED_BYTES_PER_VALUE = 3;
/** Kernels one `decompress` call launches. */
export const DECOMPRESS_KERNELS = 6;
export const COMPRESS_CONTIGUOUS_BYTES_PER_VALUE = 23;
export const COMPRESS_STRIDED_BYTES_PER_VALUE = 3;
/** Kernels one `compress` call launches: min, max, sub, div, sub, mul_, clamp_, round_, to, shift, or, cat. */
export const COMPRESS_KERNELS = 12;

/** Seconds of an elementwise GPU kernel moving `bytes` (read plus written), one launch. */
export function gpuElementwiseSeconds(rates: KernelRates, bytes: number, kernels = 1): number {
  return bytes / rates.gpuElementwiseBytesPerSecond + kernels * rates.gpuKernelLaunchSeconds;
}

/**
 * Seconds for `calls` decompress calls over `values` 4-bit KV values in all into fp16 on the GPU
 * (`group_dim=2`: the unpacking stores write every other fp16 slot).
 */
export function gpuDecompressSeconds(rates: KernelRates, values: number, calls = 1): number {
  return (
    (values * DECOMPRESS_CONTIGUOUS_BYTES_PER_VALUE) / rates.gpuElementwiseBytesPerSecond +
    (values * DECOMPRESS_STRIDED_BYTES_PER_VALUE) / rates.gpuStridedBytesPerSecond +
    calls * DECOMPRESS_KERNELS * rates.gpuKernelLaunchSeconds
  );
}

export function decompressBytes(values: number): number {
  return values * (DECOMPRESS_CONTIGUOUS_BYTES_PER_VALUE + DECOMPRESS_STRIDED_BYTES_PER_VALUE);
}

/** Seconds for `calls` compress calls over `values` fp16 KV values in all to 4 bits on the GPU. */
export function gpuCompressSeconds(rates: KernelRates, values: number, calls = 1): number {
  return (
    (values * COMPRESS_CONTIGUOUS_BYTES_PER_VALUE) / rates.gpuElementwiseBytesPerSecond +
    (values * COMPRESS_STRIDED_BYTES_PER_VALUE) / rates.gpuStridedBytesPerSecond +
    calls * COMPRESS_KERNELS * rates.gpuKernelLaunchSeconds
  );
}

export function compressBytes(values: number): number {
  return values * (COMPRESS_CONTIGUOUS_BYTES_PER_VALUE + COMPRESS_STRIDED_BYTES_PER_VALUE);
}

/** Stored bytes of `values` KV values compressed (group 64 along head_dim: data plus fp16 scale and min). */
export function compressedCacheBytes(values: number): number {
  return (values / COMPRESSION_GROUP_SIZE) * (COMPRESSION_GROUP_SIZE / 2 + 4);
}
