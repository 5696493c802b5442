/**
 * Prices of the kernels FlexGen's PyTorch backend launches, from the profile's kernel-class rates.
 * Byte counts per value are read off the code (flexgen/compression.py, flexgen/pytorch_backend.py):
 *
 * `TorchCompressedDevice.decompress` (4-bit, group 64) runs, over n values: `packed >> 4` (read n/2,
 * write n/2 bytes), a strided store of it into every other fp16 slot (read n/2, write n bytes), `packed &
 * 0xF` (n/2, n/2), the second strided store (n/2, n), `div_(scale)` (2n, 2n) and `add_(mn)` (2n, 2n):
 * 10 bytes per value through contiguous kernels and 3 through strided ones, six launches.
 *
 * `compress` runs min and max over each group (2n + 2n read), `data - mn` (2n, 2n), `mul_`, `clamp_`,
 * `round_` (2n, 2n each), `.to(uint8)` (2n, n), two strided reads of every other byte with a shift and
 * an or (n, n/2 and n/2 + n/2, n/2): 23 bytes per value contiguous and 3 strided, ten launches.
 */
import { COMPRESSION_GROUP_SIZE } from "../../core/compression.js";
import type { KernelRates } from "../kernel-rates.js";

export const DECOMPRESS_CONTIGUOUS_BYTES_PER_VALUE = 10;
export const DECOMPRESS_STRIDED_BYTES_PER_VALUE = 3;
export const DECOMPRESS_KERNELS = 6;
export const COMPRESS_CONTIGUOUS_BYTES_PER_VALUE = 23;
export const COMPRESS_STRIDED_BYTES_PER_VALUE = 3;
export const COMPRESS_KERNELS = 10;

/** Seconds of an elementwise GPU kernel moving `bytes` (read plus written), one launch. */
export function gpuElementwiseSeconds(rates: KernelRates, bytes: number, kernels = 1): number {
  return bytes / rates.gpuElementwiseBytesPerSecond + kernels * rates.gpuKernelLaunchSeconds;
}

/** Seconds to decompress `values` 4-bit values into fp16 on the GPU. */
export function gpuDecompressSeconds(rates: KernelRates, values: number): number {
  return (
    (values * DECOMPRESS_CONTIGUOUS_BYTES_PER_VALUE) / rates.gpuElementwiseBytesPerSecond +
    (values * DECOMPRESS_STRIDED_BYTES_PER_VALUE) / rates.gpuStridedBytesPerSecond +
    DECOMPRESS_KERNELS * rates.gpuKernelLaunchSeconds
  );
}

export function decompressBytes(values: number): number {
  return values * (DECOMPRESS_CONTIGUOUS_BYTES_PER_VALUE + DECOMPRESS_STRIDED_BYTES_PER_VALUE);
}

/** Seconds to compress `values` fp16 values to 4 bits on the GPU. */
export function gpuCompressSeconds(rates: KernelRates, values: number): number {
  return (
    (values * COMPRESS_CONTIGUOUS_BYTES_PER_VALUE) / rates.gpuElementwiseBytesPerSecond +
    (values * COMPRESS_STRIDED_BYTES_PER_VALUE) / rates.gpuStridedBytesPerSecond +
    COMPRESS_KERNELS * rates.gpuKernelLaunchSeconds
  );
}

export function compressBytes(values: number): number {
  return values * (COMPRESS_CONTIGUOUS_BYTES_PER_VALUE + COMPRESS_STRIDED_BYTES_PER_VALUE);
}

/** Stored bytes of `values` KV values compressed (group 64 along head_dim: data plus fp16 scale and min). */
export function compressedCacheBytes(values: number): number {
  return (values / COMPRESSION_GROUP_SIZE) * (COMPRESSION_GROUP_SIZE / 2 + 4);
}
