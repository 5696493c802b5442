/**
 * The kernel-class rates engine models price operations with, read off a hardware profile with their
 * provenance. A rate the profile does not carry falls back to a stated derivation from the rates it
 * does carry (marked `derived`, with the rule in its source), so every engine can price every
 * profile and every prediction says which of its rates are datasheet bounds rather than measurements.
 */
import type { GemmSample, HardwareProfile, Quantity } from "../core/hardware-profile.js";

export type RateKind = "datasheet" | "measured" | "fitted" | "derived";

/** One rate a prediction used: its value, whether it is measured, a datasheet bound, fitted or derived, and why. */
export interface RateUse {
  readonly name: string;
  readonly value: number;
  readonly kind: RateKind;
  readonly source: string;
}

/** The rates, by the name engines use (units in the names). */
export interface KernelRates {
  readonly gpuMemoryBytesPerSecond: number;
  readonly gpuFlopsPerSecond: number;
  readonly gpuKernelLaunchSeconds: number;
  readonly gpuElementwiseBytesPerSecond: number;
  readonly gpuStridedBytesPerSecond: number;
  readonly gpuDequantizeValuesPerSecond: number;
  readonly gemmCurve: readonly GemmSample[] | undefined;
  readonly cpuFlopsPerSecond: number;
  readonly cpuMemoryBytesPerSecond: number;
  readonly cpuStreamBytesPerSecond: number;
  readonly cpuFp16ToFp32ValuesPerSecond: number;
  readonly cpuFirstTouchBytesPerSecond: number;
  readonly pageableRelayBytesPerSecond: number;
  readonly cpuSingleThreadCopyBytesPerSecond: number;
  readonly eagerDispatchSeconds: number;
  readonly h2dPinnedBytesPerSecond: number;
  readonly h2dPageableBytesPerSecond: number;
  readonly h2dLatencySeconds: number;
  readonly d2hPinnedBytesPerSecond: number;
  readonly d2hLatencySeconds: number;
  readonly diskReadBytesPerSecond: number;
  readonly diskWriteBytesPerSecond: number;
  readonly diskMmapReadBytesPerSecond: number;
  readonly diskLatencySeconds: number;
}

export type KernelRateName = keyof Omit<KernelRates, "gemmCurve">;

export interface ResolvedRates {
  readonly rates: KernelRates;
  /** Provenance of every scalar rate (same keys as `rates`). */
  readonly uses: Readonly<Record<KernelRateName, RateUse>>;
}

function pick(name: string, quantity: Quantity): RateUse {
  if (quantity.fitted) return { name, value: quantity.fitted.value, kind: "fitted", source: quantity.fitted.source };
  if (quantity.measured)
    return { name, value: quantity.measured.value, kind: "measured", source: quantity.measured.source };
  return { name, value: quantity.datasheet!.value, kind: "datasheet", source: quantity.datasheet!.source };
}

function derived(name: string, value: number, rule: string): RateUse {
  return { name, value, kind: "derived", source: rule };
}

/** Every kernel-class rate of `profile`, with provenance. */
export function resolveRates(profile: HardwareProfile): ResolvedRates {
  const { gpu, cpu, disk, hostToDevice, deviceToHost } = profile;
  const gpuMemory = pick("GPU memory bandwidth", gpu.memoryBandwidthBytesPerSecond);
  const cpuMemory = pick("host memory bandwidth (peak)", cpu.memoryBandwidthBytesPerSecond);
  const stream = cpu.streamBytesPerSecond
    ? pick("host memory bandwidth (STREAM)", cpu.streamBytesPerSecond)
    : derived(
        "host memory bandwidth (STREAM)",
        cpuMemory.value,
        `no STREAM figure in the profile: the host's memory bandwidth figure (${cpuMemory.kind}) is used, an upper bound`,
      );
  const h2d = pick("host->device pinned bandwidth", hostToDevice.pinnedBytesPerSecond);
  const uses: Record<KernelRateName, RateUse> = {
    gpuMemoryBytesPerSecond: gpuMemory,
    gpuFlopsPerSecond: pick("GPU fp16 GEMM rate", gpu.fp16MatmulFlopsPerSecond),
    gpuKernelLaunchSeconds: pick("GPU kernel launch", gpu.kernelLaunchSeconds),
    gpuElementwiseBytesPerSecond: gpu.elementwiseBytesPerSecond
      ? pick("GPU elementwise kernels", gpu.elementwiseBytesPerSecond)
      : derived(
          "GPU elementwise kernels",
          gpuMemory.value,
          "no elementwise-kernel figure: GPU memory bandwidth is used (an elementwise kernel streams its bytes once)",
        ),
    gpuStridedBytesPerSecond: gpu.stridedBytesPerSecond
      ? pick("GPU strided/uint8 kernels", gpu.stridedBytesPerSecond)
      : derived(
          "GPU strided/uint8 kernels",
          gpuMemory.value / 2,
          "no strided-kernel figure: half the GPU memory bandwidth (strided stores use half of each memory transaction)",
        ),
    gpuDequantizeValuesPerSecond: gpu.dequantizeValuesPerSecond
      ? pick("GPU 4-bit dequantisation", gpu.dequantizeValuesPerSecond)
      : derived(
          "GPU 4-bit dequantisation",
          gpuMemory.value / 2.5,
          "no dequantisation figure: memory-bound at GPU memory bandwidth, ~2.5 bytes per value (half a byte of 4-bit code with its group's scale read, 2 bytes of fp16 written)",
        ),
    cpuFlopsPerSecond: pick("host fp32 FLOP/s", cpu.fp32FlopsPerSecond),
    cpuMemoryBytesPerSecond: cpuMemory,
    cpuStreamBytesPerSecond: stream,
    cpuFp16ToFp32ValuesPerSecond: cpu.fp16ToFp32ValuesPerSecond
      ? pick("host fp16->fp32 conversion", cpu.fp16ToFp32ValuesPerSecond)
      : derived(
          "host fp16->fp32 conversion",
          stream.value / 10,
          "no conversion figure: memory-bound at STREAM bandwidth, 10 bytes per value (read 2, write 4 with read-for-ownership 4)",
        ),
    cpuFirstTouchBytesPerSecond: cpu.firstTouchBytesPerSecond
      ? pick("host first-touch writes", cpu.firstTouchBytesPerSecond)
      : derived(
          "host first-touch writes",
          stream.value / 2,
          "no first-touch figure: half of STREAM (each fresh page is zeroed by the kernel before it is written)",
        ),
    pageableRelayBytesPerSecond: cpu.pageableRelayBytesPerSecond
      ? pick("pageable relay (pin_memory)", cpu.pageableRelayBytesPerSecond)
      : derived(
          "pageable relay (pin_memory)",
          stream.value / 2,
          "no pin_memory figure: a copy at half of STREAM (read and write of every byte)",
        ),
    cpuSingleThreadCopyBytesPerSecond: cpu.singleThreadCopyBytesPerSecond
      ? pick("host one-thread copy (driver staging)", cpu.singleThreadCopyBytesPerSecond)
      : derived(
          "host one-thread copy (driver staging)",
          stream.value / 2,
          "no one-thread copy figure: a copy at half of STREAM (read and write of every byte), an upper bound: one thread rarely reaches the all-core rate",
        ),
    eagerDispatchSeconds: cpu.eagerDispatchSeconds
      ? pick("eager framework dispatch per operation", cpu.eagerDispatchSeconds)
      : derived(
          "eager framework dispatch per operation",
          2.261e-6,
          "no dispatch figure: 2.261 us per operation, PyTorch's operator micro-benchmark of torch.split on an 8 x 8 CPU tensor (pull request #32194; the T4 hosts' typical value, CPU unnamed); engines add gpu.kernelLaunchSeconds on the host per kernel launched",
        ),
    h2dPinnedBytesPerSecond: h2d,
    h2dPageableBytesPerSecond: hostToDevice.pageableBytesPerSecond
      ? pick("host->device pageable bandwidth", hostToDevice.pageableBytesPerSecond)
      : derived(
          "host->device pageable bandwidth",
          Math.min(h2d.value, stream.value / 2),
          "no pageable figure: CUDA stages a pageable copy through a pinned buffer, so the slower of the pinned link and a host copy at half of STREAM (read and write of every byte)",
        ),
    h2dLatencySeconds: pick("host->device latency", hostToDevice.latencySeconds),
    d2hPinnedBytesPerSecond: pick("device->host pinned bandwidth", deviceToHost.pinnedBytesPerSecond),
    d2hLatencySeconds: pick("device->host latency", deviceToHost.latencySeconds),
    diskReadBytesPerSecond: pick("disk read", disk.readBytesPerSecond),
    diskWriteBytesPerSecond: pick("disk write", disk.writeBytesPerSecond),
    diskMmapReadBytesPerSecond: disk.mmapReadBytesPerSecond
      ? pick("disk read through mmap", disk.mmapReadBytesPerSecond)
      : derived(
          "disk read through mmap",
          pick("disk read", disk.readBytesPerSecond).value,
          "no mmap figure: the disk's read rate",
        ),
    diskLatencySeconds: pick("disk latency", disk.latencySeconds),
  };
  const rates = Object.fromEntries(Object.entries(uses).map(([k, u]) => [k, u.value])) as unknown as Omit<
    KernelRates,
    "gemmCurve"
  >;
  return { rates: { ...rates, gemmCurve: gpu.gemmCurve?.samples }, uses };
}

/** The profile sections that hold kernel-class rates. */
export type RateSection = "gpu" | "cpu" | "hostToDevice" | "deviceToHost" | "disk";

/** The keys of `T` whose values are Quantities. */
type QuantityKey<T> = { [K in keyof T]-?: NonNullable<T[K]> extends Quantity ? K : never }[keyof T];

/** Where a rate's Quantity lives in a profile: a section and a key of it, e.g. ["hostToDevice", "pinnedBytesPerSecond"]. */
export type RateQuantityPath = { [S in RateSection]: readonly [S, QuantityKey<HardwareProfile[S]>] }[RateSection];

/**
 * The profile Quantity each rate is read from (or, for a derived rate, the Quantity that would replace
 * its derivation): where `spillway calibrate` writes a fitted value. Exhaustive: a rate added to
 * KernelRates without a line here does not compile.
 */
// biome-ignore format: one rate per line
export const RATE_QUANTITY_PATHS: Readonly<Record<KernelRateName, RateQuantityPath>> = {
  gpuMemoryBytesPerSecond: ["gpu", "memoryBandwidthBytesPerSecond"],
  gpuFlopsPerSecond: ["gpu", "fp16MatmulFlopsPerSecond"],
  gpuKernelLaunchSeconds: ["gpu", "kernelLaunchSeconds"],
  gpuElementwiseBytesPerSecond: ["gpu", "elementwiseBytesPerSecond"],
  gpuStridedBytesPerSecond: ["gpu", "stridedBytesPerSecond"],
  gpuDequantizeValuesPerSecond: ["gpu", "dequantizeValuesPerSecond"],
  cpuFlopsPerSecond: ["cpu", "fp32FlopsPerSecond"],
  cpuMemoryBytesPerSecond: ["cpu", "memoryBandwidthBytesPerSecond"],
  cpuStreamBytesPerSecond: ["cpu", "streamBytesPerSecond"],
  cpuFp16ToFp32ValuesPerSecond: ["cpu", "fp16ToFp32ValuesPerSecond"],
  cpuFirstTouchBytesPerSecond: ["cpu", "firstTouchBytesPerSecond"],
  pageableRelayBytesPerSecond: ["cpu", "pageableRelayBytesPerSecond"],
  cpuSingleThreadCopyBytesPerSecond: ["cpu", "singleThreadCopyBytesPerSecond"],
  eagerDispatchSeconds: ["cpu", "eagerDispatchSeconds"],
  h2dPinnedBytesPerSecond: ["hostToDevice", "pinnedBytesPerSecond"],
  h2dPageableBytesPerSecond: ["hostToDevice", "pageableBytesPerSecond"],
  h2dLatencySeconds: ["hostToDevice", "latencySeconds"],
  d2hPinnedBytesPerSecond: ["deviceToHost", "pinnedBytesPerSecond"],
  d2hLatencySeconds: ["deviceToHost", "latencySeconds"],
  diskReadBytesPerSecond: ["disk", "readBytesPerSecond"],
  diskWriteBytesPerSecond: ["disk", "writeBytesPerSecond"],
  diskMmapReadBytesPerSecond: ["disk", "mmapReadBytesPerSecond"],
  diskLatencySeconds: ["disk", "latencySeconds"],
};

/** The rate a prediction's RateUse stands for (matched by its name in `resolved`), or undefined. */
export function rateNameOf(resolved: ResolvedRates, use: RateUse): KernelRateName | undefined {
  return (Object.keys(resolved.uses) as KernelRateName[]).find((name) => resolved.uses[name].name === use.name);
}

/** The rates among `names` in the order given, for a prediction's `rates` list. */
export function ratesUsed(resolved: ResolvedRates, names: readonly KernelRateName[]): RateUse[] {
  return names.map((n) => resolved.uses[n]);
}

/**
 * Seconds of an fp16 GEMM of `rows` rows through a `k x n` weight on the GPU: the measured curve's
 * rate at that many rows where the profile has one, else a roofline (the larger of streaming the
 * weights at memory bandwidth and the FLOPs at the GEMM rate), plus one launch.
 */
export function gpuGemmSeconds(
  rates: KernelRates,
  rows: number,
  k: number,
  n: number,
  weightBytesPerValue = 2,
): number {
  const flops = 2 * rows * k * n;
  const bytes = k * n * weightBytesPerValue + 2 * rows * (k + n);
  const curve = rates.gemmCurve;
  const computeSeconds = curve ? flops / curveRate(curve, rows) : flops / rates.gpuFlopsPerSecond;
  return Math.max(computeSeconds, bytes / rates.gpuMemoryBytesPerSecond) + rates.gpuKernelLaunchSeconds;
}

function curveRate(curve: readonly GemmSample[], rows: number): number {
  const first = curve[0]!;
  const last = curve[curve.length - 1]!;
  if (rows <= first.rows) return (first.flopsPerSecond * rows) / first.rows;
  if (rows >= last.rows) return last.flopsPerSecond;
  let i = 1;
  while (curve[i]!.rows < rows) i++;
  const a = curve[i - 1]!;
  const b = curve[i]!;
  const x = Math.log(rows / a.rows) / Math.log(b.rows / a.rows);
  return a.flopsPerSecond + x * (b.flopsPerSecond - a.flopsPerSecond);
}
