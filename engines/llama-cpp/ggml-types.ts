/**
 * The ggml tensor types a GGUF file stores, by their block layout: how many values one block holds and
 * how many bytes it takes, scales included. Counted from the block structs and their static_asserts in
 * ggml/src/ggml-common.h (ggml-org/ggml d99724f, 2026-08-21; the same header ggml-org/llama.cpp vendors):
 *
 * - Q4_0: 32 values, fp16 scale + 16 bytes of nibbles = 18 bytes
 * - Q4_1: 32 values, fp16 scale and min + 16 = 20
 * - Q5_0: 32 values, fp16 scale + 4 bytes of high bits + 16 = 22
 * - Q5_1: 32 values, fp16 scale and min + 4 + 16 = 24
 * - Q8_0: 32 values, fp16 scale + 32 int8 = 34
 * - Q2_K: 256 values (QK_K), fp16 d and dmin + 16 scale bytes + 64 bytes of 2-bit quants = 84
 * - Q3_K: 256 values, fp16 d + 32 high-bit mask + 64 low bits + 12 scale bytes = 110
 * - Q4_K: 256 values, fp16 d and dmin + 12 scale bytes (K_SCALE_SIZE) + 128 = 144
 * - Q5_K: 256 values, fp16 d and dmin + 12 + 32 high bits + 128 = 176
 * - Q6_K: 256 values, fp16 d + 16 int8 scales + 128 low + 64 high = 210
 * - F32, F16, BF16: one value per "block", 4, 2 and 2 bytes.
 */
export const GGML_TYPES = [
  "F32",
  "F16",
  "BF16",
  "Q4_0",
  "Q4_1",
  "Q5_0",
  "Q5_1",
  "Q8_0",
  "Q2_K",
  "Q3_K",
  "Q4_K",
  "Q5_K",
  "Q6_K",
] as const;
export type GgmlType = (typeof GGML_TYPES)[number];

export interface BlockLayout {
  /** Values per block (ggml_blck_size). */
  readonly values: number;
  /** Bytes per block (ggml_type_size). */
  readonly bytes: number;
}

/** QK_K, the super-block of the K-quants (ggml-common.h). */
const QK_K = 256;

export const BLOCK_LAYOUT: Readonly<Record<GgmlType, BlockLayout>> = {
  F32: { values: 1, bytes: 4 },
  F16: { values: 1, bytes: 2 },
  BF16: { values: 1, bytes: 2 },
  Q4_0: { values: 32, bytes: 2 + 16 },
  Q4_1: { values: 32, bytes: 2 * 2 + 16 },
  Q5_0: { values: 32, bytes: 2 + 4 + 16 },
  Q5_1: { values: 32, bytes: 2 * 2 + 4 + 16 },
  Q8_0: { values: 32, bytes: 2 + 32 },
  Q2_K: { values: QK_K, bytes: 2 * 2 + QK_K / 16 + QK_K / 4 },
  Q3_K: { values: QK_K, bytes: 2 + QK_K / 4 + QK_K / 8 + 12 },
  Q4_K: { values: QK_K, bytes: 2 * 2 + 12 + QK_K / 2 },
  Q5_K: { values: QK_K, bytes: 2 * 2 + 12 + QK_K / 2 + QK_K / 8 },
  Q6_K: { values: QK_K, bytes: 2 + QK_K / 16 + (3 * QK_K) / 4 },
};

/** Whether ggml counts the type as quantized (ggml_is_quantized: every block type but the floats). */
export function isQuantized(type: GgmlType): boolean {
  return BLOCK_LAYOUT[type].values > 1;
}

/**
 * Bytes of one row of `values` values (ggml_row_size). A row must hold whole blocks: llama.cpp's
 * quantizer falls back to another type before it writes a row that does not (see gguf-file-types.ts).
 */
export function rowBytes(type: GgmlType, values: number): number {
  const { values: perBlock, bytes } = BLOCK_LAYOUT[type];
  if (values % perBlock !== 0)
    throw new Error(`a ${type} row holds whole blocks of ${perBlock} values; ${values} values do not divide`);
  return (values / perBlock) * bytes;
}

/** Stored bits per value, scales included. */
export function bitsPerValue(type: GgmlType): number {
  const { values, bytes } = BLOCK_LAYOUT[type];
  return (8 * bytes) / values;
}
