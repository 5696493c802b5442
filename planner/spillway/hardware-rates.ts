/** The effective rates the Spillway cost model reads off a profile (measured where known, else datasheet). */
import {
  effective,
  type HardwareProfile,
  type MatmulSample,
  matmulCurveSamples,
  QUANTIZED_CURVE_BITS,
  type QuantizedMatmulCurves,
} from "../../core/hardware-profile.js";
import type { TensorParallelLink } from "../../core/ring-all-reduce.js";

/** Measured GEMM curves by stored width below 16 bits. */
export type CurvesByBits = Readonly<Partial<Record<8 | 4 | 3 | 2, readonly MatmulSample[]>>>;

export interface HardwareRates {
  readonly gpuFlopsPerSecond: number;
  readonly gpuMemoryBytesPerSecond: number;
  readonly kernelLaunchSeconds: number;
  /** Measured (or calibrated) GEMM time per weight element against rows, where the profile has it. */
  readonly matmulCurve?: readonly MatmulSample[];
  /** Measured GEMM time per weight element against rows for group-wise quantised weights, by stored width (8, 4, 3, 2). */
  readonly quantizedMatmulCurves?: CurvesByBits;
  /** The host CPU's measured GEMM curves (experts computed on the CPU), fp16 and by stored width, where the profile has them. */
  readonly cpuMatmulCurve?: readonly MatmulSample[];
  readonly cpuQuantizedMatmulCurves?: CurvesByBits;
  /** The device's kernels, the CPU's and the host -> device copies are the same cores' work (the CPU backend): they do not overlap. */
  readonly deviceSharesHostCores: boolean;
  /** Bytes per value of the device's working buffers (2 unless the profile says otherwise). */
  readonly workingBytesPerValue: number;
  /** Measured 4-bit dequantisation rate (values/s), where the profile has one. */
  readonly dequantizeValuesPerSecond?: number;
  /** The runtime's attention kernels over a prompt, where the profile measured them (else fp16 GEMM FLOP/s). */
  readonly gpuAttentionFlopsPerSecond?: number;
  readonly cpuFlopsPerSecond: number;
  readonly cpuMemoryBytesPerSecond: number;
  readonly h2dBytesPerSecond: number;
  /** Host->device rate from pageable memory; without a figure, a pageable copy is modelled as a CPU memcpy into a pinned buffer followed by a pinned copy. */
  readonly h2dPageableBytesPerSecond: number | undefined;
  readonly h2dLatencySeconds: number;
  readonly d2hBytesPerSecond: number;
  readonly d2hLatencySeconds: number;
  readonly diskReadBytesPerSecond: number;
  readonly diskWriteBytesPerSecond: number;
  readonly diskLatencySeconds: number;
  readonly capacityBytes: { readonly gpu: number; readonly cpu: number; readonly disk: number };
  /**
   * Present when the GPU is one of a tensor-parallel group: the link its layers' all-reduces cross
   * (every dense layer step then adds them: core/ring-all-reduce.ts). Absent: one GPU, no all-reduce.
   */
  readonly tensorParallel?: TensorParallelLink;
}

export function hardwareRates(profile: HardwareProfile): HardwareRates {
  return {
    gpuFlopsPerSecond: effective(profile.gpu.fp16MatmulFlopsPerSecond),
    gpuMemoryBytesPerSecond: effective(profile.gpu.memoryBandwidthBytesPerSecond),
    kernelLaunchSeconds: effective(profile.gpu.kernelLaunchSeconds),
    ...(profile.gpu.matmulCurve ? { matmulCurve: matmulCurveSamples(profile.gpu.matmulCurve) } : {}),
    ...(profile.gpu.quantizedMatmulCurves
      ? { quantizedMatmulCurves: curvesByBits(profile.gpu.quantizedMatmulCurves) }
      : {}),
    ...(profile.cpu.matmulCurve ? { cpuMatmulCurve: profile.cpu.matmulCurve.samples } : {}),
    ...(profile.cpu.quantizedMatmulCurves
      ? { cpuQuantizedMatmulCurves: curvesByBits(profile.cpu.quantizedMatmulCurves) }
      : {}),
    deviceSharesHostCores: profile.gpu.sharesHostCores?.value ?? false,
    workingBytesPerValue: profile.gpu.workingBytesPerValue?.value ?? 2,
    ...(profile.gpu.attentionFlopsPerSecond
      ? { gpuAttentionFlopsPerSecond: effective(profile.gpu.attentionFlopsPerSecond) }
      : {}),
    ...(profile.gpu.dequantizeValuesPerSecond
      ? { dequantizeValuesPerSecond: effective(profile.gpu.dequantizeValuesPerSecond) }
      : {}),
    cpuFlopsPerSecond: effective(profile.cpu.fp32FlopsPerSecond),
    cpuMemoryBytesPerSecond: effective(profile.cpu.memoryBandwidthBytesPerSecond),
    h2dBytesPerSecond: effective(profile.hostToDevice.pinnedBytesPerSecond),
    h2dPageableBytesPerSecond: profile.hostToDevice.pageableBytesPerSecond
      ? effective(profile.hostToDevice.pageableBytesPerSecond)
      : undefined,
    h2dLatencySeconds: effective(profile.hostToDevice.latencySeconds),
    d2hBytesPerSecond: effective(profile.deviceToHost.pinnedBytesPerSecond),
    d2hLatencySeconds: effective(profile.deviceToHost.latencySeconds),
    diskReadBytesPerSecond: effective(profile.disk.readBytesPerSecond),
    diskWriteBytesPerSecond: effective(profile.disk.writeBytesPerSecond),
    diskLatencySeconds: effective(profile.disk.latencySeconds),
    capacityBytes: {
      gpu: profile.capacityBytes.gpu.value,
      cpu: profile.capacityBytes.cpu.value,
      disk: profile.capacityBytes.disk.value,
    },
  };
}

function curvesByBits(curves: QuantizedMatmulCurves): CurvesByBits {
  return Object.fromEntries(
    QUANTIZED_CURVE_BITS.flatMap((bits) => {
      const curve = curves[bits];
      return curve ? [[Number(bits), curve.samples]] : [];
    }),
  );
}

/**
 * GEMM seconds per weight element at `rows` rows from a measured curve: interpolated in log(rows)
 * between samples, the first sample's below them (a GEMM cannot get cheaper than streaming its
 * weights once), and in proportion to the rows beyond the last (compute-bound).
 */
export function matmulSecondsPerWeight(curve: readonly MatmulSample[], rows: number): number {
  const first = curve[0]!;
  const last = curve[curve.length - 1]!;
  if (rows <= first.rows) return first.secondsPerWeight;
  if (rows >= last.rows) return (last.secondsPerWeight * rows) / last.rows;
  let i = 1;
  while (curve[i]!.rows < rows) i++;
  if (curve[i]!.rows === rows) return curve[i]!.secondsPerWeight;
  const a = curve[i - 1]!;
  const b = curve[i]!;
  const x = Math.log(rows / a.rows) / Math.log(b.rows / a.rows);
  return a.secondsPerWeight + x * (b.secondsPerWeight - a.secondsPerWeight);
}
