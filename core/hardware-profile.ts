/**
 * Hardware profile: what the planner knows about one machine (a GPU, its host and its disk).
 * Every number carries its source. Datasheet and measured values are kept apart in each quantity;
 * the cost model uses the measured value where there is one. Values fitted by someone else to their
 * own end-to-end runs (FlexGen's T4 constants) live in their own labelled section and are used only
 * by the FlexGen-compatible cost model.
 */
import {
  asObject,
  child,
  type FieldContext,
  fail,
  type NumberRule,
  readBoundedNumber,
  readName,
  readNumber,
  readObject,
  readOptionalString,
  readString,
  rejectUnknownKeys,
} from "./fields.js";
import { describeValue } from "./input-error.js";
import {
  MAX_CAPACITY_BYTES,
  MAX_CPU_CORES,
  MAX_CURVE_BYTES,
  MAX_CURVE_ROWS,
  MAX_FLEXGEN_GIB_PER_SECOND,
  MAX_FLEXGEN_TFLOPS,
  MAX_LATENCY_SECONDS,
  MAX_RATE_PER_SECOND,
  MAX_SECONDS_PER_WEIGHT,
  MIN_FLEXGEN_GIB_PER_SECOND,
  MIN_FLEXGEN_TFLOPS,
  MIN_RATE_PER_SECOND,
  MIN_SECONDS_PER_WEIGHT,
} from "./physical-bounds.js";
import { TIERS } from "./tiers.js";

export interface SourcedValue {
  readonly value: number;
  /** Where the number comes from: a datasheet, a benchmark's page, a measurement command. */
  readonly source: string;
}

/**
 * One physical quantity, as the datasheet states it and/or as measured, and/or as fitted to the user's
 * own runs by `spillway calibrate` (its source names the runs). At least one is present.
 */
export interface Quantity {
  readonly datasheet?: SourcedValue;
  readonly measured?: SourcedValue;
  readonly fitted?: SourcedValue;
}

/** Achieved fp16 GEMM rate against the number of rows (tokens) multiplied through a large weight. */
export interface GemmSample {
  readonly rows: number;
  readonly flopsPerSecond: number;
}

/** Measured transfer rate at given sizes, for size-dependent transfer times. */
export interface TransferSample {
  readonly bytes: number;
  readonly bytesPerSecond: number;
}

export interface LinkProfile {
  /** Large-transfer rate from/to pinned (page-locked) host memory. */
  readonly pinnedBytesPerSecond: Quantity;
  /** Rate from/to ordinary pageable host memory, when known. */
  readonly pageableBytesPerSecond?: Quantity;
  /** Fixed cost per transfer (driver call, DMA setup), seconds. */
  readonly latencySeconds: Quantity;
  /** Optional measured curve of rate against transfer size; interpolated in log(size). */
  readonly curve?: { readonly samples: readonly TransferSample[]; readonly source: string };
}

export interface DiskProfile {
  readonly readBytesPerSecond: Quantity;
  readonly writeBytesPerSecond: Quantity;
  readonly latencySeconds: Quantity;
  /** Kernel class: reads through memory-mapped files by a few threads (FlexGen's disk tensors), bytes per second. */
  readonly mmapReadBytesPerSecond?: Quantity;
}

/** Measured time of an fp16-weight GEMM per weight element, at a number of rows (tokens) multiplied. */
export interface MatmulSample {
  readonly rows: number;
  readonly secondsPerWeight: number;
}

/**
 * GEMM time against rows as measured (`samples`), and optionally as `spillway calibrate` fitted it to the
 * user's runs (`fitted`: the measured curve rescaled, same rows); the cost model uses the fitted curve
 * where there is one (matmulCurveSamples).
 */
export interface MatmulCurve {
  readonly samples: readonly MatmulSample[];
  readonly source: string;
  readonly fitted?: { readonly samples: readonly MatmulSample[]; readonly source: string };
}

/** The samples the cost model reads: the fitted curve where calibration wrote one, else the measured one. */
export function matmulCurveSamples(curve: MatmulCurve): readonly MatmulSample[] {
  return curve.fitted?.samples ?? curve.samples;
}

/** The stored widths below 16 bits that `quantizedMatmulCurves` may describe. */
export const QUANTIZED_CURVE_BITS = ["8", "4", "3", "2"] as const;

/** A measured GEMM curve per stored width ("8", "4", "3", "2"). */
export type QuantizedMatmulCurves = {
  readonly [bits in (typeof QUANTIZED_CURVE_BITS)[number]]?: {
    readonly samples: readonly MatmulSample[];
    readonly source: string;
  };
};

export interface GpuProfile {
  readonly name: string;
  readonly memoryBandwidthBytesPerSecond: Quantity;
  /** fp16 matrix multiply rate on tensor cores (datasheet peak; measured = sustained large GEMM). */
  readonly fp16MatmulFlopsPerSecond: Quantity;
  /** Fixed cost per kernel launch, seconds. */
  readonly kernelLaunchSeconds: Quantity;
  /**
   * Optional measured GEMM time against rows, for devices whose GEMM is not a roofline (the CPU
   * backend): a GEMM of m rows through a k x n weight takes k * n * secondsPerWeight(m), interpolated
   * in log(rows), and beyond the largest sample grows in proportion to the rows.
   */
  readonly matmulCurve?: MatmulCurve;
  /**
   * Optional measured GEMM time against rows for weights stored group-wise quantised (the MoE runtime's
   * format, runtime/moe/expert-quantization.ts), per stored width: the kernel dequantises as it
   * multiplies, so its time per weight is neither the fp16 curve's nor a roofline over fewer bytes.
   */
  readonly quantizedMatmulCurves?: QuantizedMatmulCurves;
  /** Bytes per value of the kernels' working buffers (2: fp16 kernels, the default; 4: fp32, the CPU backend). */
  readonly workingBytesPerValue?: SourcedValue;
  /**
   * Optional measured rate of 4-bit group-wise dequantisation into fp16, values per second. Without
   * it, dequantisation is costed as memory traffic at memoryBandwidthBytesPerSecond.
   */
  readonly dequantizeValuesPerSecond?: Quantity;
  /**
   * FLOP/s of the runtime's own attention kernels over a prompt (4 x prompt^2 x width FLOPs per sequence),
   * measured by `spillway profile --backend cuda`. Without it, prefill attention is costed at
   * fp16MatmulFlopsPerSecond, which the CUDA backend's three fp32 kernels are far from (an H200: 5.3
   * against 105 TFLOP/s).
   */
  readonly attentionFlopsPerSecond?: Quantity;
  /** Kernel class: a contiguous elementwise kernel (add, divide, copy), bytes read plus written per second. */
  readonly elementwiseBytesPerSecond?: Quantity;
  /** Kernel class: elementwise kernels over strided views or uint8 data (unpacking, strided copies), bytes per second. */
  readonly stridedBytesPerSecond?: Quantity;
  /** Kernel class: achieved fp16 GEMM FLOP/s against rows, interpolated in log(rows). */
  readonly gemmCurve?: { readonly samples: readonly GemmSample[]; readonly source: string };
  /**
   * Present and true when the "GPU" is the host's own cores (the CPU backend): its kernels, the CPU's
   * kernels and the host -> device copies are all work of the same cores and the same thread of
   * control, so they do not overlap as a GPU's lanes overlap the CPU's. Absent: a separate device.
   */
  readonly sharesHostCores?: { readonly value: boolean; readonly source: string };
}

export interface CpuProfile {
  readonly name: string;
  readonly cores: number;
  /** fp32 arithmetic rate of all cores together on dense kernels. */
  readonly fp32FlopsPerSecond: Quantity;
  readonly memoryBandwidthBytesPerSecond: Quantity;
  /** Kernel class: host memory bandwidth as STREAM (copy/triad, all cores) measures it, bytes per second. */
  readonly streamBytesPerSecond?: Quantity;
  /** Kernel class: fp16 -> fp32 conversion on the host (all cores), fp16 values converted per second. */
  readonly fp16ToFp32ValuesPerSecond?: Quantity;
  /** Kernel class: writes into freshly allocated (first-touched) pageable memory, bytes per second. */
  readonly firstTouchBytesPerSecond?: Quantity;
  /** Kernel class: `pin_memory()`-style relay (page-locked allocation plus a copy into it), bytes per second. */
  readonly pageableRelayBytesPerSecond?: Quantity;
  /**
   * Kernel class: one host thread copying into memory that is already mapped (a driver's reused staging
   * buffer), bytes per second: the rate of CUDA's staging copy of a pageable host->device transfer.
   */
  readonly singleThreadCopyBytesPerSecond?: Quantity;
  /** Kernel class: host time an eager framework (PyTorch) spends dispatching one operation, seconds. */
  readonly eagerDispatchSeconds?: Quantity;
  /**
   * Optional measured GEMM time against rows of the host's own GEMM over fp16 weights in host memory
   * (as GpuProfile.matmulCurve): what a missed expert computed on the CPU costs. The CPU backend's host
   * and device run the same linear kernel, so `spillway profile --backend cpu` gives both the same curve.
   */
  readonly matmulCurve?: { readonly samples: readonly MatmulSample[]; readonly source: string };
  /** The same for weights stored group-wise quantised, per stored width (as GpuProfile.quantizedMatmulCurves). */
  readonly quantizedMatmulCurves?: QuantizedMatmulCurves;
}

/** FlexGen's released T4 constants (experimental/cost_model.py), in FlexGen's own units. */
export interface FlexgenFittedConstants {
  readonly source: string;
  readonly ctogBandwidthGiBPerSecond: number;
  readonly gtocCacheBandwidthGiBPerSecond: number;
  readonly gtocHiddenBandwidthGiBPerSecond: number;
  readonly dtocBandwidthGiBPerSecond: number;
  readonly ctodCachePrefillBandwidthGiBPerSecond: number;
  readonly ctodHiddenPrefillBandwidthGiBPerSecond: number;
  readonly ctodDecodeBandwidthGiBPerSecond: number;
  readonly mmPrefillTflops: number;
  readonly mmDecodeTflops: number;
  readonly bmmPrefillTflops: number;
  readonly bmmDecodeTflops: number;
  readonly cpuTflops: number;
  readonly c1: number;
  readonly c2: number;
  readonly c3: number;
}

export interface HardwareProfile {
  readonly name: string;
  readonly description: string;
  /** The host machine the numbers describe (cloud instance type, or "typical desktop: …"). */
  readonly host: string;
  /** Capacities the planner may use by default, bytes. --gpu-mem/--cpu-mem/--disk-mem override. */
  readonly capacityBytes: { readonly gpu: SourcedValue; readonly cpu: SourcedValue; readonly disk: SourcedValue };
  readonly gpu: GpuProfile;
  readonly cpu: CpuProfile;
  readonly hostToDevice: LinkProfile;
  readonly deviceToHost: LinkProfile;
  readonly disk: DiskProfile;
  readonly flexgenFitted?: FlexgenFittedConstants;
}

/** The value the cost models use: fitted to the user's runs when present, else measured, else the datasheet's. */
export function effective(quantity: Quantity): number {
  const chosen = quantity.fitted ?? quantity.measured ?? quantity.datasheet;
  if (!chosen) throw new Error("quantity without a value (validation should have caught this)");
  return chosen.value;
}

// ---------------------------------------------------------------------------------------------
// Validation

/**
 * A value's sign (checked first, with the reader's usual message) and its physically meaningful range
 * (core/physical-bounds.ts): rates (bytes, FLOP, values per second), latencies, capacities.
 */
export interface Bounded {
  readonly rule: NumberRule;
  readonly range: NumberRule;
}
export const RATE: Bounded = {
  rule: { greaterThan: 0 },
  range: { min: MIN_RATE_PER_SECOND, max: MAX_RATE_PER_SECOND },
};
export const LATENCY: Bounded = { rule: { min: 0 }, range: { min: 0, max: MAX_LATENCY_SECONDS } };
const capacity = (max: number): Bounded => ({ rule: { min: 0 }, range: { min: 0, max } });

function readSourced(obj: Record<string, unknown>, key: string, ctx: FieldContext, bounded: Bounded): SourcedValue {
  const c = child(ctx, key);
  const o = readObject(obj, key, ctx);
  rejectUnknownKeys(o, c, ["value", "source", "note"]);
  return {
    value: readBoundedNumber(o, "value", c, bounded.rule, bounded.range),
    source: readString(o, "source", c),
  };
}

export function readQuantity(
  obj: Record<string, unknown>,
  key: string,
  ctx: FieldContext,
  rule: Bounded = RATE,
): Quantity {
  const c = child(ctx, key);
  const o = readObject(obj, key, ctx);
  rejectUnknownKeys(o, c, ["datasheet", "measured", "fitted", "note"]);
  if (o.datasheet === undefined && o.measured === undefined && o.fitted === undefined)
    fail(c, undefined, 'needs a "datasheet", "measured" or "fitted" value');
  const q: { datasheet?: SourcedValue; measured?: SourcedValue; fitted?: SourcedValue } = {};
  if (o.datasheet !== undefined) q.datasheet = readSourced(o, "datasheet", c, rule);
  if (o.measured !== undefined) q.measured = readSourced(o, "measured", c, rule);
  if (o.fitted !== undefined) q.fitted = readSourced(o, "fitted", c, rule);
  return q;
}

function readLink(obj: Record<string, unknown>, key: string, ctx: FieldContext): LinkProfile {
  const c = child(ctx, key);
  const o = readObject(obj, key, ctx);
  rejectUnknownKeys(o, c, ["pinnedBytesPerSecond", "pageableBytesPerSecond", "latencySeconds", "curve", "note"]);
  const link: { -readonly [K in keyof LinkProfile]: LinkProfile[K] } = {
    pinnedBytesPerSecond: readQuantity(o, "pinnedBytesPerSecond", c),
    latencySeconds: readQuantity(o, "latencySeconds", c, LATENCY),
  };
  if (o.pageableBytesPerSecond !== undefined)
    link.pageableBytesPerSecond = readQuantity(o, "pageableBytesPerSecond", c);
  if (o.curve !== undefined) {
    const curve = readSampleCurve(
      o,
      "curve",
      c,
      "bytes",
      "bytesPerSecond",
      { rule: { greaterThan: 0 }, range: { greaterThan: 0, max: MAX_CURVE_BYTES } },
      RATE,
    );
    link.curve = { samples: curve.samples.map((s) => ({ bytes: s.x, bytesPerSecond: s.y })), source: curve.source };
  }
  return link;
}

/**
 * A measured curve `{ samples: [{<x>, <y>}...], source }`: a non-empty array sorted by strictly
 * increasing x, every y positive.
 */
function readSampleCurve(
  obj: Record<string, unknown>,
  key: string,
  ctx: FieldContext,
  xKey: string,
  yKey: string,
  xRule: Bounded,
  yRule: Bounded = RATE,
  extraKeys: readonly string[] = [],
): { samples: { x: number; y: number }[]; source: string } {
  const cc = child(ctx, key);
  const curve = readObject(obj, key, ctx);
  rejectUnknownKeys(curve, cc, ["samples", "source", ...extraKeys]);
  const samplesRaw = curve.samples;
  if (!Array.isArray(samplesRaw) || samplesRaw.length === 0)
    fail(cc, "samples", `expected a non-empty array of {${xKey}, ${yKey}}`);
  const samples = samplesRaw.map((s, i) => {
    const sc = child(child(cc, "samples"), i);
    const so = asObject(s, sc);
    rejectUnknownKeys(so, sc, [xKey, yKey]);
    return {
      x: readBoundedNumber(so, xKey, sc, xRule.rule, xRule.range),
      y: readBoundedNumber(so, yKey, sc, yRule.rule, yRule.range),
    };
  });
  for (let i = 1; i < samples.length; i++) {
    if (samples[i]!.x <= samples[i - 1]!.x)
      fail(child(cc, "samples"), i, `samples must be sorted by strictly increasing ${xKey}`);
  }
  return { samples, source: readString(curve, "source", cc) };
}

const CURVE_ROWS: Bounded = { rule: { min: 1, integer: true }, range: { min: 1, max: MAX_CURVE_ROWS } };

const SECONDS_PER_WEIGHT: Bounded = {
  rule: { greaterThan: 0 },
  range: { min: MIN_SECONDS_PER_WEIGHT, max: MAX_SECONDS_PER_WEIGHT },
};

function readMatmulSamples(
  obj: Record<string, unknown>,
  key: string,
  ctx: FieldContext,
  extraKeys: readonly string[] = [],
): { samples: MatmulSample[]; source: string } {
  const curve = readSampleCurve(obj, key, ctx, "rows", "secondsPerWeight", CURVE_ROWS, SECONDS_PER_WEIGHT, extraKeys);
  return { samples: curve.samples.map((s) => ({ rows: s.x, secondsPerWeight: s.y })), source: curve.source };
}

function readMatmulCurve(gpu: Record<string, unknown>, ctx: FieldContext): MatmulCurve {
  const measured = readMatmulSamples(gpu, "matmulCurve", ctx, ["fitted"]);
  const raw = readObject(gpu, "matmulCurve", ctx);
  if (raw.fitted === undefined) return measured;
  const cc = child(ctx, "matmulCurve");
  const fitted = readMatmulSamples(raw, "fitted", cc);
  const rows = (samples: readonly MatmulSample[]) => samples.map((s) => s.rows).join(", ");
  if (rows(fitted.samples) !== rows(measured.samples))
    fail(
      child(cc, "fitted"),
      "samples",
      `expected the measured curve's rows (${rows(measured.samples)}), got ${rows(fitted.samples)}`,
    );
  return { ...measured, fitted };
}

function readQuantizedMatmulCurves(device: Record<string, unknown>, ctx: FieldContext): QuantizedMatmulCurves {
  const cc = child(ctx, "quantizedMatmulCurves");
  const curves = readObject(device, "quantizedMatmulCurves", ctx);
  rejectUnknownKeys(curves, cc, QUANTIZED_CURVE_BITS);
  return Object.fromEntries(
    QUANTIZED_CURVE_BITS.filter((bits) => curves[bits] !== undefined).map((bits) => [
      bits,
      readMatmulSamples(curves, bits, cc),
    ]),
  );
}

function readGemmCurve(gpu: Record<string, unknown>, ctx: FieldContext): NonNullable<GpuProfile["gemmCurve"]> {
  const curve = readSampleCurve(gpu, "gemmCurve", ctx, "rows", "flopsPerSecond", CURVE_ROWS, RATE);
  return { samples: curve.samples.map((s) => ({ rows: s.x, flopsPerSecond: s.y })), source: curve.source };
}

const CPU_KERNEL_RATES = [
  "streamBytesPerSecond",
  "fp16ToFp32ValuesPerSecond",
  "firstTouchBytesPerSecond",
  "pageableRelayBytesPerSecond",
  "singleThreadCopyBytesPerSecond",
  "eagerDispatchSeconds",
] as const;

/** The optional kernel-class quantities among `keys` that `obj` has (eagerDispatchSeconds may be 0). */
function optionalQuantities<K extends string>(
  obj: Record<string, unknown>,
  ctx: FieldContext,
  keys: readonly K[],
): Partial<Record<K, Quantity>> {
  const out: Partial<Record<K, Quantity>> = {};
  for (const key of keys)
    if (obj[key] !== undefined) out[key] = readQuantity(obj, key, ctx, key.endsWith("Seconds") ? LATENCY : RATE);
  return out;
}

function readSharesHostCores(gpu: Record<string, unknown>, ctx: FieldContext): { value: boolean; source: string } {
  const c = child(ctx, "sharesHostCores");
  const o = readObject(gpu, "sharesHostCores", ctx);
  rejectUnknownKeys(o, c, ["value", "source", "note"]);
  if (typeof o.value !== "boolean") fail(c, "value", `expected true or false, got ${describeValue(o.value)}`);
  return { value: o.value, source: readString(o, "source", c) };
}

function readWorkingBytesPerValue(gpu: Record<string, unknown>, ctx: FieldContext): SourcedValue {
  const value = readSourced(gpu, "workingBytesPerValue", ctx, { rule: { greaterThan: 0 }, range: {} });
  if (value.value !== 2 && value.value !== 4)
    fail(child(ctx, "workingBytesPerValue"), "value", `expected 2 (fp16) or 4 (fp32), got ${value.value}`);
  return value;
}

const FLEXGEN_FIELDS = [
  "ctogBandwidthGiBPerSecond",
  "gtocCacheBandwidthGiBPerSecond",
  "gtocHiddenBandwidthGiBPerSecond",
  "dtocBandwidthGiBPerSecond",
  "ctodCachePrefillBandwidthGiBPerSecond",
  "ctodHiddenPrefillBandwidthGiBPerSecond",
  "ctodDecodeBandwidthGiBPerSecond",
  "mmPrefillTflops",
  "mmDecodeTflops",
  "bmmPrefillTflops",
  "bmmDecodeTflops",
  "cpuTflops",
] as const;

function readFlexgen(obj: Record<string, unknown>, ctx: FieldContext): FlexgenFittedConstants {
  const c = child(ctx, "flexgenFitted");
  const o = readObject(obj, "flexgenFitted", ctx);
  rejectUnknownKeys(o, c, [...FLEXGEN_FIELDS, "c1", "c2", "c3", "source", "note"]);
  const out: Record<string, number | string> = { source: readString(o, "source", c) };
  for (const f of FLEXGEN_FIELDS)
    out[f] = readBoundedNumber(
      o,
      f,
      c,
      { greaterThan: 0 },
      f.endsWith("Tflops")
        ? { min: MIN_FLEXGEN_TFLOPS, max: MAX_FLEXGEN_TFLOPS }
        : { min: MIN_FLEXGEN_GIB_PER_SECOND, max: MAX_FLEXGEN_GIB_PER_SECOND },
    );
  for (const f of ["c1", "c2", "c3"]) out[f] = readNumber(o, f, c);
  return out as unknown as FlexgenFittedConstants;
}

/**
 * Validates parsed JSON as a hardware profile. `source` names the file for error messages; `path` the
 * field the profile sits in when it is part of another document (a plan's `hardwareProfile`).
 */
export function parseHardwareProfile(data: unknown, source: string, path = ""): HardwareProfile {
  const ctx: FieldContext = { source, path };
  const o = asObject(data, ctx);
  rejectUnknownKeys(o, ctx, [
    "$schema",
    "name",
    "description",
    "host",
    "capacityBytes",
    "gpu",
    "cpu",
    "hostToDevice",
    "deviceToHost",
    "disk",
    "flexgenFitted",
    "notes",
  ]);
  const capCtx = child(ctx, "capacityBytes");
  const cap = readObject(o, "capacityBytes", ctx);
  rejectUnknownKeys(cap, capCtx, TIERS);
  const gpuCtx = child(ctx, "gpu");
  const gpu = readObject(o, "gpu", ctx);
  rejectUnknownKeys(gpu, gpuCtx, [
    "name",
    "memoryBandwidthBytesPerSecond",
    "fp16MatmulFlopsPerSecond",
    "kernelLaunchSeconds",
    "matmulCurve",
    "quantizedMatmulCurves",
    "workingBytesPerValue",
    "dequantizeValuesPerSecond",
    "attentionFlopsPerSecond",
    "elementwiseBytesPerSecond",
    "stridedBytesPerSecond",
    "gemmCurve",
    "sharesHostCores",
    "note",
  ]);
  const cpuCtx = child(ctx, "cpu");
  const cpu = readObject(o, "cpu", ctx);
  rejectUnknownKeys(cpu, cpuCtx, [
    "name",
    "cores",
    "fp32FlopsPerSecond",
    "memoryBandwidthBytesPerSecond",
    ...CPU_KERNEL_RATES,
    "matmulCurve",
    "quantizedMatmulCurves",
    "note",
  ]);
  const diskCtx = child(ctx, "disk");
  const disk = readObject(o, "disk", ctx);
  rejectUnknownKeys(disk, diskCtx, [
    "readBytesPerSecond",
    "writeBytesPerSecond",
    "latencySeconds",
    "mmapReadBytesPerSecond",
    "note",
  ]);
  const profile: HardwareProfile = {
    name: readName(o, "name", ctx),
    description: readName(o, "description", ctx),
    host: readName(o, "host", ctx),
    capacityBytes: {
      gpu: readSourced(cap, "gpu", capCtx, capacity(MAX_CAPACITY_BYTES.gpu)),
      cpu: readSourced(cap, "cpu", capCtx, capacity(MAX_CAPACITY_BYTES.cpu)),
      disk: readSourced(cap, "disk", capCtx, capacity(MAX_CAPACITY_BYTES.disk)),
    },
    gpu: {
      name: readName(gpu, "name", gpuCtx),
      memoryBandwidthBytesPerSecond: readQuantity(gpu, "memoryBandwidthBytesPerSecond", gpuCtx),
      fp16MatmulFlopsPerSecond: readQuantity(gpu, "fp16MatmulFlopsPerSecond", gpuCtx),
      kernelLaunchSeconds: readQuantity(gpu, "kernelLaunchSeconds", gpuCtx, LATENCY),
      ...(gpu.matmulCurve !== undefined ? { matmulCurve: readMatmulCurve(gpu, gpuCtx) } : {}),
      ...(gpu.quantizedMatmulCurves !== undefined
        ? { quantizedMatmulCurves: readQuantizedMatmulCurves(gpu, gpuCtx) }
        : {}),
      ...(gpu.workingBytesPerValue !== undefined
        ? { workingBytesPerValue: readWorkingBytesPerValue(gpu, gpuCtx) }
        : {}),
      ...(gpu.dequantizeValuesPerSecond !== undefined
        ? { dequantizeValuesPerSecond: readQuantity(gpu, "dequantizeValuesPerSecond", gpuCtx) }
        : {}),
      ...optionalQuantities(gpu, gpuCtx, [
        "attentionFlopsPerSecond",
        "elementwiseBytesPerSecond",
        "stridedBytesPerSecond",
      ]),
      ...(gpu.gemmCurve !== undefined ? { gemmCurve: readGemmCurve(gpu, gpuCtx) } : {}),
      ...(gpu.sharesHostCores !== undefined ? { sharesHostCores: readSharesHostCores(gpu, gpuCtx) } : {}),
    },
    cpu: {
      name: readName(cpu, "name", cpuCtx),
      cores: readBoundedNumber(cpu, "cores", cpuCtx, { min: 1, integer: true }, { min: 1, max: MAX_CPU_CORES }),
      fp32FlopsPerSecond: readQuantity(cpu, "fp32FlopsPerSecond", cpuCtx),
      memoryBandwidthBytesPerSecond: readQuantity(cpu, "memoryBandwidthBytesPerSecond", cpuCtx),
      ...optionalQuantities(cpu, cpuCtx, CPU_KERNEL_RATES),
      ...(cpu.matmulCurve !== undefined ? { matmulCurve: readMatmulSamples(cpu, "matmulCurve", cpuCtx) } : {}),
      ...(cpu.quantizedMatmulCurves !== undefined
        ? { quantizedMatmulCurves: readQuantizedMatmulCurves(cpu, cpuCtx) }
        : {}),
    },
    hostToDevice: readLink(o, "hostToDevice", ctx),
    deviceToHost: readLink(o, "deviceToHost", ctx),
    disk: {
      readBytesPerSecond: readQuantity(disk, "readBytesPerSecond", diskCtx),
      writeBytesPerSecond: readQuantity(disk, "writeBytesPerSecond", diskCtx),
      latencySeconds: readQuantity(disk, "latencySeconds", diskCtx, LATENCY),
      ...optionalQuantities(disk, diskCtx, ["mmapReadBytesPerSecond"]),
    },
    ...(o.flexgenFitted !== undefined ? { flexgenFitted: readFlexgen(o, ctx) } : {}),
  };
  readOptionalString(o, "notes", ctx);
  return profile;
}

/** Returns a copy with capacities replaced where an override (bytes) is given. */
export function withCapacities(
  profile: HardwareProfile,
  overrides: { gpu?: number; cpu?: number; disk?: number },
  source = "command-line flag",
): HardwareProfile {
  const cap = { ...profile.capacityBytes };
  if (overrides.gpu !== undefined) cap.gpu = { value: overrides.gpu, source: `${source} --gpu-mem` };
  if (overrides.cpu !== undefined) cap.cpu = { value: overrides.cpu, source: `${source} --cpu-mem` };
  if (overrides.disk !== undefined) cap.disk = { value: overrides.disk, source: `${source} --disk-mem` };
  return { ...profile, capacityBytes: cap };
}
