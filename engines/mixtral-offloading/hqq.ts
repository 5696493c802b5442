/**
 * HQQ as mixtral-offloading stores and runs it: the quantisation layout of each bit width (group sizes
 * from the engine's notebook and paper), and the GPU operations of one `HQQLinearTritonSavable.forward`
 * (src/custom_layers.py `forward_triton`): the quantised scales and zeros are dequantised with torch
 * operations on every call, then a Triton kernel multiplies by the packed weights.
 */

import type { EngineOperation } from "../engine-model.js";
import { gpuGemmSeconds, type KernelRates } from "../kernel-rates.js";
import { op } from "../step-time.js";

/** The bit widths `HQQLinearTritonSavable` accepts (it asserts nbits in [2, 3, 4]). */
export const HQQ_BITS = [2, 3, 4] as const;
export type HqqBits = (typeof HQQ_BITS)[number];

export function isHqqBits(bits: number): bits is HqqBits {
  return (HQQ_BITS as readonly number[]).includes(bits);
}

export interface HqqLayout {
  readonly bits: HqqBits;
  /** Bits per weight as packed: 2-bit four to a uint8, 4-bit two to a uint8, 3-bit ten to an int32 (3.2). */
  readonly packedBitsPerValue: number;
  /** Weights sharing one scale and one zero. */
  readonly groupSize: number;
  /** Scales sharing one fp16 scale and zero of their own (HQQ quantises the scales to 8 bits). */
  readonly scaleGroupSize: number;
  readonly source: string;
}

/**
 * The layouts, all with quant_scale and quant_zero (8-bit scales and zeros; the zeros quantised with one
 * scale and zero for the whole tensor, hqq/core/quantize.py `hqq_base_quant_config` at the commit
 * requirements.txt pins, 37502bea).
 */
export const HQQ_LAYOUTS: Readonly<Record<HqqBits, HqqLayout>> = {
  2: {
    bits: 2,
    packedBitsPerValue: 2,
    groupSize: 16,
    scaleGroupSize: 128,
    source:
      "notebooks/demo.ipynb ffn_config and src/build_model.py get_default_ffn_quant_config: nbits 2, group_size 16; scale group 128 (HQQ's default)",
  },
  3: {
    bits: 3,
    packedBitsPerValue: 3.2,
    groupSize: 64,
    scaleGroupSize: 128,
    source:
      "arXiv 2312.17238 section 4.2 (the repository ships no 3-bit config): group size 64, scale group size 128; packing src/packing.py pack_3bit_i32_common",
  },
  4: {
    bits: 4,
    packedBitsPerValue: 4,
    groupSize: 64,
    scaleGroupSize: 256,
    source:
      'notebooks/demo.ipynb attn_config: nbits 4, group_size 64, attn_config["scale_quant_params"]["group_size"] = 256 (arXiv 2312.17238 section 4.2 likewise)',
  },
};

/**
 * Bits per weight of the layout as HQQ stores it: packed weights, 8-bit scale and zero per group, an
 * fp16 scale and zero per group of scales (the zeros' own scale and zero are two numbers per tensor,
 * left out). Mixtral-8x7B experts: 2-bit 3.016, 3-bit 3.454, 4-bit 4.252 bits.
 */
export function hqqStoredBitsPerValue(layout: HqqLayout): number {
  return layout.packedBitsPerValue + 16 / layout.groupSize + 32 / (layout.groupSize * layout.scaleGroupSize);
}

/** Traffic per dequantised scale (or zero) value: uint8 -> fp16 `.half()` (read 1, write 2) ... */
const CAST_BYTES_PER_VALUE = 3;
/** ... then `(W_q_p - zero)` and `* scale` in fp16 (read 2, write 2 each): Quantizer.dequantize. */
const AFFINE_BYTES_PER_VALUE = 8;
/** Quantizer.dequantize launches .half(), sub and mul (reshape is a view), for the scales and for the zeros. */
const DEQUANTIZE_KERNELS = 6;
/** BLOCK_SIZE_M of every autotune config in src/triton_kernels.py: each block of 16 rows streams the whole weight. */
const TRITON_BLOCK_ROWS = 16;

export interface HqqCall {
  /** Input width (K) and output width (N) of the linear layer. */
  readonly inputs: number;
  readonly outputs: number;
  /** Rows (tokens) multiplied. */
  readonly rows: number;
}

const HQQ_SOURCE = "src/custom_layers.py HQQLinearTritonSavable.forward_triton";

/**
 * Host seconds of one launch of an autotuned Triton kernel through Triton's Python launcher
 * (`triton.autotune` Autotuner.run, then JITFunction.run binding and specialising every argument before
 * the C launcher), beyond the one dispatch framework-ops.ts counts for it. Typical value, not measured on
 * the engine's hosts: triton-lang/triton pull request #3503 (2024-03) times the launch of an already
 * compiled kernel with the Triton that PyTorch 2.2 ships at about 40 us with a few parameters and 62 us
 * with many. The PR branch's benchmark kernels (liboyue/triton tmp/triton_21/
 * low_latency_jit_python_generated.py, `...Short.run` and `...Long.run`) take 6 and 13 parameters; the
 * launch grows with the parameter count, and `matmul{2,3,4}_kernel_transpose` take 20 at the call site
 * plus the 4 constexprs of their autotune config (src/triton_kernels.py), so the 13-parameter figure is
 * the nearer measurement and still a lower bound. Issue #3619 (2024-04) puts the launch of 2023's Triton
 * releases at 70 us and up.
 */
export const TRITON_LAUNCH_SECONDS = 62e-6;
const TRITON_LAUNCH_SOURCE =
  "src/triton_kernels.py triton_matmul{2,3,4}_transpose (kernel[grid](...) through triton.autotune)";

/** The host's Python launch path of `calls` HQQ Triton matmuls (one per HQQ linear call). */
export function tritonLaunches(calls: number, what: string, term: string): EngineOperation {
  return op(
    `${what}: ${calls} Triton kernel launches through the Python launcher`,
    "hostThread",
    calls * TRITON_LAUNCH_SECONDS,
    term,
    TRITON_LAUNCH_SOURCE,
  );
}

/**
 * The GPU operations of one HQQ linear call: the dequantisation of its 8-bit scales and zeros into fp16
 * (six torch kernels over inputs x outputs / groupSize values each, every call), and the Triton matmul,
 * which reads the packed weights and the fp16 scales and zeros once per block of 16 rows and computes
 * whole 16-row tiles (rows padded), priced by the profile's GEMM roofline (kernel-rates.ts gpuGemmSeconds).
 */
export function hqqCallOperations(
  rates: KernelRates,
  layout: HqqLayout,
  call: HqqCall,
  what: string,
  terms: { readonly dequantize: string; readonly matmul: string },
): EngineOperation[] {
  const values = call.inputs * call.outputs;
  const scaleValues = values / layout.groupSize;
  const castBytes = 2 * scaleValues * CAST_BYTES_PER_VALUE;
  const affineBytes = 2 * scaleValues * AFFINE_BYTES_PER_VALUE;
  const dequantizeSeconds =
    castBytes / rates.gpuStridedBytesPerSecond +
    affineBytes / rates.gpuElementwiseBytesPerSecond +
    DEQUANTIZE_KERNELS * rates.gpuKernelLaunchSeconds;
  const passes = Math.ceil(call.rows / TRITON_BLOCK_ROWS);
  const paddedRows = passes * TRITON_BLOCK_ROWS;
  // Packed weights plus the fp16 scale and zero of each group, once per 16-row block.
  const weightBytesPerValue = layout.packedBitsPerValue / 8 + (2 * 2) / layout.groupSize;
  const matmulSeconds = gpuGemmSeconds(rates, paddedRows, call.inputs, call.outputs, weightBytesPerValue * passes);
  return [
    op(`${what}: dequantise HQQ scales and zeros (torch ops)`, "gpu", dequantizeSeconds, terms.dequantize, HQQ_SOURCE, {
      bytes: castBytes + affineBytes,
      launches: DEQUANTIZE_KERNELS,
    }),
    op(`${what}: HQQ ${layout.bits}-bit Triton matmul`, "gpu", matmulSeconds, terms.matmul, "src/triton_kernels.py", {
      bytes: values * weightBytesPerValue * passes + 2 * call.rows * (call.inputs + call.outputs),
      flops: 2 * paddedRows * values,
    }),
  ];
}
