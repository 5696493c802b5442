/**
 * `spillway profile --backend cpu`: measures this machine as the CPU backend sees it — copies into and
 * out of the device arena against size, offload-file writes and reads against size, the fp16-weight
 * GEMM the runtime uses against shape, attention, per-call overheads and the host's kernel-class rates
 * (STREAM, fp16 conversion, first touch: runtime/host-kernel-rates.ts) — and writes a hardware profile
 * (every value under `measured`, sourced to this measurement and its day) plus the raw samples as CSV.
 */
import { statfsSync } from "node:fs";
import { cpus, hostname, tmpdir, totalmem } from "node:os";
import { parse } from "csv-parse/sync";
import { csvInputError } from "../core/csv-input-error.js";
import type { ExpertBits } from "../core/expert-policy.js";
import {
  type CpuProfile,
  type HardwareProfile,
  type MatmulSample,
  QUANTIZED_CURVE_BITS,
  type QuantizedMatmulCurves,
} from "../core/hardware-profile.js";
import { InputError } from "../core/input-error.js";
import { DeviceArena } from "./device-arena.js";
import { DiskStore } from "./disk-store.js";
import { toFloat16Array } from "./fp16.js";
import { type HostRateOptions, measureHostKernelRates } from "./host-kernel-rates.js";
import { attention, attentionScratchLength } from "./kernels/attention.js";
import { linearF16, linearScratchLength } from "./kernels/linear-f16.js";
import { linearQuantized } from "./kernels/linear-quantized.js";
import { groupFormat, quantizedByteLength, quantizeGroupwise } from "./moe/expert-quantization.js";
import type { ProfileSample } from "./profile-sample.js";
import { decodeToFloat16, encode } from "./tensor-codec.js";

export type { ProfileSample } from "./profile-sample.js";

export interface ProfileOptions {
  readonly quick: boolean;
  readonly gpuBytes: number;
  readonly offloadDir?: string;
  readonly onProgress?: (done: number, total: number, what: string) => void;
  /** Overrides of the host kernel-rate measurement's sizes (tests use small ones). */
  readonly hostRates?: Partial<HostRateOptions>;
}

/** STREAM arrays of 2^24 doubles (128 MiB each; 2^23 with --quick): several times any last-level cache. */
const STREAM_VALUES = { full: 2 ** 24, quick: 2 ** 23 } as const;
/** Rows of the quantised GEMM curves: a decode step's few tokens per expert up to a prompt's. */
const QUANTIZED_CURVE_ROWS = { full: [1, 2, 4, 8, 16, 64, 256], quick: [1, 4, 16, 64] } as const;
/** Fresh allocations of 64 MiB: above glibc's largest mmap threshold (32 MiB), so each is new pages. */
const FIRST_TOUCH_BYTES = 64 * 2 ** 20;

/** The host kernel-rate measurement's options for a profile run. */
export function hostRateOptions(quick: boolean, overrides: Partial<HostRateOptions> = {}): HostRateOptions {
  return {
    values: quick ? STREAM_VALUES.quick : STREAM_VALUES.full,
    trials: quick ? 3 : 5,
    firstTouchBytes: FIRST_TOUCH_BYTES,
    ...overrides,
  };
}

/** A "date" row recording the day of the measurement (its shape; size and seconds are placeholders). */
export function dateSample(): ProfileSample {
  return { measurement: "date", size: 1, shape: new Date().toISOString().slice(0, 10), seconds: 1 };
}

/** Source text for a value measured by `spillway profile --backend <backend>`, naming the host and the day. */
export function measurementSource(backend: "cpu" | "cuda", samples: readonly ProfileSample[]) {
  const day = samples.find((s) => s.measurement === "date")?.shape;
  return (what: string) =>
    `Measured on ${hostname()} by spillway profile --backend ${backend}${day ? ` on ${day}` : ""}: ${what}`;
}

/** Median seconds per call over three batches of at least `minMs`, after a warm-up (JIT tiers, wasm compilation, page faults). */
function timeIt(fn: () => void, minMs: number): number {
  const warm = performance.now();
  for (let i = 0; i < 3 || performance.now() - warm < minMs / 2; i++) fn();
  const batches: number[] = [];
  for (let b = 0; b < 3; b++) {
    let reps = 0;
    const start = performance.now();
    do {
      fn();
      reps++;
    } while (performance.now() - start < minMs / 3);
    batches.push((performance.now() - start) / 1000 / reps);
  }
  return batches.sort((a, b) => a - b)[1]!;
}

/**
 * The stored form (expert-quantization.ts) of `values` values that repeat one quantised block of 16 x 768
 * values: the same layout and work per value as any tensor of that size, without quantising all of it
 * (seconds per width in JavaScript).
 */
export function tiledQuantized(values: number, bits: Exclude<ExpertBits, 16>): Uint8Array {
  const f = groupFormat(bits);
  const blockValues = 16 * 768;
  const block = quantizeGroupwise(filled(blockValues), bits);
  const blockGroups = blockValues / f.groupSize;
  const groups = values / f.groupSize;
  const out = new Uint8Array(quantizedByteLength(values, bits));
  const sections = [
    { from: 0, to: groups * f.codeBytes, bytes: f.codeBytes },
    { from: blockGroups * f.codeBytes, to: groups * (f.codeBytes + f.metaBytes), bytes: f.metaBytes },
    {
      from: blockGroups * (f.codeBytes + f.metaBytes),
      to: groups * (f.codeBytes + 2 * f.metaBytes),
      bytes: f.metaBytes,
    },
  ];
  let start = 0;
  for (const { from, to, bytes } of sections) {
    const part = block.subarray(from, from + blockGroups * bytes);
    for (let at = start; at < to; at += part.byteLength) out.set(part, at);
    start = to;
  }
  return out;
}

/** Weight bytes GEMM measurements cycle through: three times a 32 MiB last-level cache. */
const ROTATING_WEIGHT_BYTES = 96 * 2 ** 20;

function filled(n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 12.9898) * 0.5;
  return x;
}

export function measureCpuBackend(options: ProfileOptions): ProfileSample[] {
  const minMs = options.quick ? 40 : 250;
  const sizes = options.quick
    ? [4096, 65536, 1 << 20, 16 << 20]
    : [4096, 16384, 65536, 262144, 1 << 20, 4 << 20, 16 << 20, 64 << 20];
  const gemmShapes = options.quick
    ? [
        [1, 768, 3072],
        [1, 3072, 768],
        [16, 768, 3072],
        [128, 768, 768],
      ]
    : [
        [1, 768, 3072],
        [4, 768, 3072],
        [16, 768, 3072],
        [64, 768, 3072],
        [128, 768, 768],
        [256, 2048, 2048],
      ];
  const contexts = options.quick ? [128, 512] : [64, 128, 256, 512, 1024];
  const curveRows = [1, 2, 4, 8, 16, 32, 64, 128, 256];
  const quantizedRows = options.quick ? QUANTIZED_CURVE_ROWS.quick : QUANTIZED_CURVE_ROWS.full;
  const total =
    sizes.length * 4 + gemmShapes.length + curveRows.length + contexts.length + 4 + QUANTIZED_CURVE_BITS.length;
  let done = 0;
  const step = (what: string) => options.onProgress?.(++done, total, what);
  const samples: ProfileSample[] = [dateSample()];
  const largest = sizes[sizes.length - 1]!;
  const arena = new DeviceArena(Math.max(largest * 2 + (1 << 20), 8 << 20));
  const host = new Uint8Array(largest);
  host.fill(7);
  for (const size of sizes) {
    const block = arena.allocate(size, "profile buffer");
    const device = arena.uint8(block, size);
    const source = host.subarray(0, size);
    samples.push({ measurement: "h2d", size, shape: "", seconds: timeIt(() => device.set(source), minMs) });
    step(`host->device ${size} B`);
    samples.push({ measurement: "d2h", size, shape: "", seconds: timeIt(() => source.set(device), minMs) });
    step(`device->host ${size} B`);
    arena.release(block);
  }
  const disk = new DiskStore(options.offloadDir ?? tmpdir());
  try {
    for (const size of sizes) {
      const data = host.subarray(0, size);
      samples.push({
        measurement: "diskWrite",
        size,
        shape: "",
        seconds: timeIt(() => disk.write("probe", data), minMs),
      });
      step(`disk write ${size} B`);
      samples.push({
        measurement: "diskRead",
        size,
        shape: "",
        seconds: timeIt(() => disk.read("probe", host), minMs),
      });
      step(`disk read ${size} B`);
    }
  } finally {
    disk.close();
  }
  {
    // WebAssembly compiles in tiers: run the GEMM long enough for the optimised tier before timing it.
    const x = filled(64 * 768);
    const w = toFloat16Array(filled(768 * 768));
    const out = new Float32Array(64 * 768);
    const scratch = linearScratchLength(64, 768);
    const tile = new Float32Array(scratch.tile);
    const tileOut = new Float32Array(scratch.out);
    const until = performance.now() + (options.quick ? 400 : 1000);
    while (performance.now() < until) linearF16(x, w, undefined, out, 64, 768, 768, tile, tileOut);
  }
  // A model streams each layer's weights from memory once per step; a benchmark that multiplies by one
  // matrix again and again reads it from cache. So calls cycle through distinct copies of the weights
  // that together are several times larger than any last-level cache.
  const timeGemm = (m: number, k: number, n: number): number => {
    const x = filled(m * k);
    const base = toFloat16Array(filled(n * k));
    const copies = Math.max(2, Math.ceil(ROTATING_WEIGHT_BYTES / base.byteLength));
    const weights = Array.from({ length: copies }, () => base.slice());
    const bias = filled(n);
    const out = new Float32Array(m * n);
    const scratch = linearScratchLength(m, k);
    const tile = new Float32Array(scratch.tile);
    const tileOut = new Float32Array(scratch.out);
    let call = 0;
    return timeIt(() => linearF16(x, weights[call++ % copies]!, bias, out, m, k, n, tile, tileOut), minMs);
  };
  // The GEMM curve: a layer's three weight shapes (h x h, h x 4h, 4h x h at h = 768) against rows.
  // Largest first: once the process has run large GEMMs, small ones run measurably slower (5.0 ms
  // against 7.9 ms for 4x768x3072 on a 2-core EPYC VM), and a model's decode steps always follow its
  // prefill, so the small-row samples are taken in that state.
  for (const m of [...curveRows].reverse()) {
    for (const [k, n] of [
      [768, 768],
      [768, 3072],
      [3072, 768],
    ] as const)
      samples.push({ measurement: "matmul", size: 2 * m * k * n, shape: `${m}x${k}x${n}`, seconds: timeGemm(m, k, n) });
    step(`GEMM curve at ${m} rows`);
  }
  // The MoE runtime's dequantising linear (kernels/linear-quantized.ts) at each stored width below 16
  // bits, against rows, over an expert matrix's two orientations (hidden x FFN and FFN x hidden), the
  // weights cycled as above. One quantised tensor serves both orientations (same values, row-major).
  for (const bits of QUANTIZED_CURVE_BITS) {
    const b = Number(bits) as Exclude<ExpertBits, 16>;
    const base = tiledQuantized(768 * 3072, b);
    const copies = Math.max(2, Math.ceil(ROTATING_WEIGHT_BYTES / base.byteLength));
    const weights = Array.from({ length: copies }, () => base.slice());
    for (const m of [...quantizedRows].reverse()) {
      for (const [k, n] of [
        [768, 3072],
        [3072, 768],
      ] as const) {
        const x = filled(m * k);
        const out = new Float32Array(m * n);
        const scratch = linearScratchLength(m, k);
        const tiles = { tile: new Float32Array(scratch.tile), out: new Float32Array(scratch.out) };
        let call = 0;
        const seconds = timeIt(
          () => linearQuantized(x, weights[call++ % copies]!, out, { m, k, n, bits: b }, tiles),
          minMs,
        );
        samples.push({ measurement: "quantizedMatmul", size: 2 * m * k * n, shape: `${m}x${k}x${n}@${bits}`, seconds });
      }
    }
    step(`${bits}-bit GEMM curve`);
  }
  for (const [m, k, n] of gemmShapes as [number, number, number][]) {
    samples.push({ measurement: "gemm", size: 2 * m * k * n, shape: `${m}x${k}x${n}`, seconds: timeGemm(m, k, n) });
    step(`GEMM ${m}x${k}x${n}`);
  }
  {
    const x = filled(16);
    const w = toFloat16Array(filled(16 * 16));
    const out = new Float32Array(16);
    const tile = new Float32Array(16 * 16);
    const tileOut = new Float32Array(16);
    samples.push({
      measurement: "launch",
      size: 2 * 16 * 16,
      shape: "1x16x16",
      seconds: timeIt(() => linearF16(x, w, undefined, out, 1, 16, 16, tile, tileOut), minMs),
    });
    step("kernel overhead");
  }
  {
    // 4-bit group-wise dequantisation into fp16 (the runtime's decodeToFloat16), over distinct tensors.
    const values = 768 * 3072;
    const stored = encode(filled(values), "q4");
    const copies = Math.max(2, Math.ceil(ROTATING_WEIGHT_BYTES / (values * 2)));
    const inputs = Array.from({ length: copies }, () => stored.slice());
    const out = new Uint16Array(values);
    const scratch = new Float32Array(4096);
    let call = 0;
    samples.push({
      measurement: "dequantize",
      size: values,
      shape: "q4->f16",
      seconds: timeIt(() => decodeToFloat16(inputs[call++ % copies]!, values, out, scratch), minMs),
    });
    step("4-bit dequantisation");
  }
  const heads = 12;
  const headDim = 64;
  const h = heads * headDim;
  for (const context of contexts) {
    const q = filled(h);
    const k = filled(context * h);
    const v = filled(context * h);
    const out = new Float32Array(h);
    const scratch = new Float32Array(attentionScratchLength(1, context - 1, heads, headDim));
    samples.push({
      measurement: "attention",
      size: 4 * context * h,
      shape: `1x${context}x${h}`,
      seconds: timeIt(() => attention(q, k, v, out, 1, context - 1, heads, headDim, scratch), minMs),
    });
    step(`attention over ${context} tokens`);
  }
  {
    const a = new Uint8Array(largest);
    const b = new Uint8Array(largest);
    samples.push({ measurement: "memcpy", size: largest, shape: "", seconds: timeIt(() => b.set(a), minMs) });
    step("memory bandwidth");
  }
  samples.push(...measureHostKernelRates(hostRateOptions(options.quick, options.hostRates)));
  step("host kernel rates (STREAM, fp16 conversion, first touch)");
  return samples;
}

/** The samples of one measurement, smallest first. */
export function samplesOf(samples: readonly ProfileSample[], measurement: string): ProfileSample[] {
  return samples.filter((s) => s.measurement === measurement).sort((a, b) => a.size - b.size);
}

function requireSamples(samples: readonly ProfileSample[], measurement: string): ProfileSample[] {
  const list = samplesOf(samples, measurement);
  if (list.length === 0) throw new InputError("samples", measurement, "no samples");
  return list;
}

/** A link from its samples by size: the rate of the largest transfer, the latency left in the smallest. */
export function linkFromSamples(samples: readonly ProfileSample[], measurement: string) {
  const list = requireSamples(samples, measurement);
  const big = list[list.length - 1]!;
  const small = list[0]!;
  const rate = big.size / big.seconds;
  return { rate, latency: Math.max(0, small.seconds - small.size / rate), big, small, list };
}

/** The sample of a measurement with the highest size per second. */
export function fastestSample(samples: readonly ProfileSample[], measurement: string): ProfileSample {
  return requireSamples(samples, measurement).reduce((a, s) => (s.size / s.seconds > a.size / a.seconds ? s : a));
}

/** GEMM seconds per weight element at each row count, over every "matmul" shape of that row count together. */
export function matmulCurveFromSamples(samples: readonly ProfileSample[]): MatmulSample[] {
  return curveOfGemms(samplesOf(samples, "matmul"), "matmul");
}

/**
 * The quantised GEMM curves of the "quantizedMatmul" samples (shape MxKxN@BITS), per stored width, in the
 * profile's form; undefined without such samples.
 */
export function quantizedMatmulCurvesFromSamples(
  samples: readonly ProfileSample[],
  source: (what: string) => string,
): QuantizedMatmulCurves | undefined {
  const all = samplesOf(samples, "quantizedMatmul");
  if (all.length === 0) return undefined;
  const curves: Record<string, { samples: MatmulSample[]; source: string }> = {};
  for (const bits of QUANTIZED_CURVE_BITS) {
    const of = all
      .filter((g) => g.shape.endsWith(`@${bits}`))
      .map((g) => ({ ...g, shape: g.shape.slice(0, -bits.length - 1) }));
    if (of.length > 0)
      curves[bits] = {
        samples: curveOfGemms(of, "quantizedMatmul"),
        source: source(
          `${bits}-bit group-wise weights (runtime/moe/expert-quantization.ts) of 768x3072 and 3072x768 against rows, dequantised as multiplied (the MoE runtime's linearQuantized)`,
        ),
      };
  }
  return curves;
}

function curveOfGemms(gemms: readonly ProfileSample[], measurement: string): MatmulSample[] {
  const byRows = new Map<number, { seconds: number; weights: number }>();
  for (const g of gemms) {
    const [m, k, n] = g.shape.split("x").map(Number) as [number, number, number];
    if (![m, k, n].every((v) => Number.isInteger(v) && v > 0))
      throw new InputError("samples", measurement, `shape ${JSON.stringify(g.shape)} is not MxKxN`);
    const entry = byRows.get(m) ?? { seconds: 0, weights: 0 };
    entry.seconds += g.seconds;
    entry.weights += k * n;
    byRows.set(m, entry);
  }
  return [...byRows.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([rows, e]) => ({ rows, secondsPerWeight: e.seconds / e.weights }));
}

/**
 * A profile's host side from the CPU backend's host measurements: the CPU's rate from its attention
 * kernel, its memory bandwidth from a copy, the offload disk from file reads and writes.
 */
export function hostFieldsFromSamples(
  samples: readonly ProfileSample[],
  names: { attention: string; memcpy: string },
  source: (what: string) => string,
): Pick<HardwareProfile, "host" | "cpu" | "disk"> {
  const read = linkFromSamples(samples, "diskRead");
  const write = linkFromSamples(samples, "diskWrite");
  const attentionBest = fastestSample(samples, names.attention);
  const memcpy = samplesOf(samples, names.memcpy)[0];
  if (!memcpy) throw new InputError("samples", names.memcpy, "no samples");
  const measured = (value: number, what: string) => ({ measured: { value, source: source(what) } });
  const cores = cpus().length;
  return {
    host: `${hostname()}: ${cpus()[0]?.model ?? "unknown CPU"}, ${cores} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB memory`,
    cpu: {
      name: cpus()[0]?.model ?? "unknown CPU",
      cores,
      fp32FlopsPerSecond: measured(
        attentionBest.size / attentionBest.seconds,
        `decode attention ${attentionBest.shape} (the runtime's attention kernel)`,
      ),
      memoryBandwidthBytesPerSecond: measured(memcpy.size / memcpy.seconds, `copy of ${memcpy.size} bytes`),
      ...hostKernelRatesFromSamples(samples, source),
    },
    disk: {
      readBytesPerSecond: measured(
        read.rate,
        `read of a ${read.big.size}-byte offload file (page cache included, as the runtime sees it)`,
      ),
      writeBytesPerSecond: measured(write.rate, `write of a ${write.big.size}-byte offload file`),
      latencySeconds: measured(
        Math.max(read.latency, write.latency),
        "smallest offload-file access less its share at the large-file rate",
      ),
    },
  };
}

/** The host kernel-class rates (cpu.streamBytesPerSecond, ...) of the samples that have them. */
export function hostKernelRatesFromSamples(
  samples: readonly ProfileSample[],
  source: (what: string) => string,
): Pick<
  CpuProfile,
  "streamBytesPerSecond" | "fp16ToFp32ValuesPerSecond" | "firstTouchBytesPerSecond" | "singleThreadCopyBytesPerSecond"
> {
  const rate = (s: ProfileSample) => s.size / s.seconds;
  const measured = (s: ProfileSample, what: string) => ({ measured: { value: rate(s), source: source(what) } });
  const oneThread = (s: ProfileSample) =>
    s.shape.startsWith("1 thread")
      ? " Single-threaded (no worker threads could be started), so below what all the cores reach together."
      : "";
  const stream = [...samplesOf(samples, "streamCopy"), ...samplesOf(samples, "streamTriad")];
  const best = stream.length > 0 ? stream.reduce((a, s) => (rate(s) > rate(a) ? s : a)) : undefined;
  const convert = fastestOf(samples, "fp16ToFp32");
  const touch = fastestOf(samples, "firstTouch");
  const copy = fastestOf(samples, "singleThreadCopy");
  return {
    ...(best
      ? {
          streamBytesPerSecond: measured(
            best,
            `STREAM-like ${best.measurement === "streamCopy" ? "copy (c = a, a native memory copy; 16 bytes per element)" : "triad (a = b + 3c, a JavaScript typed-array loop; 24 bytes per element)"} over ${best.shape}, bytes counted as STREAM counts them, the better of copy and triad, best of the trials. JavaScript loops cannot always keep memory busy, so this can be below compiled STREAM.${oneThread(best)}`,
          ),
        }
      : {}),
    ...(convert
      ? {
          fp16ToFp32ValuesPerSecond: measured(
            convert,
            `fp16 -> fp32 conversion by the CPU backend's table decode (runtime/fp16.ts fromFloat16Array) over ${convert.shape}, best of the trials.${oneThread(convert)}`,
          ),
        }
      : {}),
    ...(touch
      ? {
          firstTouchBytesPerSecond: measured(
            touch,
            `writing every byte of a fresh ${touch.size}-byte allocation once (page faults and the kernel's zeroing included), one thread, best of the trials`,
          ),
        }
      : {}),
    ...(copy
      ? {
          singleThreadCopyBytesPerSecond: measured(
            copy,
            `one thread copying ${copy.size} bytes between two buffers already written once (TypedArray.set, a memmove), bytes copied per second, best of the trials`,
          ),
        }
      : {}),
  };
}

function fastestOf(samples: readonly ProfileSample[], measurement: string): ProfileSample | undefined {
  const list = samplesOf(samples, measurement);
  return list.length > 0 ? fastestSample(list, measurement) : undefined;
}

/** Builds a hardware profile from samples (the rate of the largest transfer; latency from the smallest). */
export function profileFromSamples(
  samples: readonly ProfileSample[],
  capacity: { gpu: number; cpu: number; disk: number },
  name = "cpu-backend",
): HardwareProfile {
  const of = (m: string) => samplesOf(samples, m);
  const h2d = linkFromSamples(samples, "h2d");
  const d2h = linkFromSamples(samples, "d2h");
  const gemm = fastestSample(samples, "gemm");
  const oneToken = of("gemm").filter((g) => g.shape.startsWith("1x"));
  if (oneToken.length === 0) throw new InputError("samples", "gemm", "needs a one-token (1xKxN) GEMM sample");
  const weightStream = oneToken
    .map((g) => {
      const [, k, n] = g.shape.split("x").map(Number) as [number, number, number];
      return { bytes: 2 * k * n, seconds: g.seconds, shape: g.shape };
    })
    .reduce((a, b) => (b.bytes / b.seconds > a.bytes / a.seconds ? b : a));
  const dequantize = of("dequantize")[0];
  const curveSamples = matmulCurveFromSamples(samples);
  const launch = of("launch")[0];
  if (!launch || of("memcpy").length === 0) throw new InputError("samples", "launch/memcpy", "missing samples");
  const source = measurementSource("cpu", samples);
  const measured = (value: number, what: string) => ({ measured: { value, source: source(what) } });
  const hostSide = hostFieldsFromSamples(samples, { attention: "attention", memcpy: "memcpy" }, source);
  const quantizedCurves = quantizedMatmulCurvesFromSamples(samples, source);
  return {
    name,
    description: `This machine as Spillway's CPU backend sees it: the 'GPU' is a device arena in host memory, computed on by the CPU (${hostSide.cpu.cores} cores).`,
    host: hostSide.host,
    capacityBytes: {
      gpu: { value: capacity.gpu, source: "spillway profile --gpu-mem (the device arena's size)" },
      cpu: { value: capacity.cpu, source: "half of this machine's memory, or --cpu-mem" },
      disk: { value: capacity.disk, source: "half of the offload folder's free space, or --disk-mem" },
    },
    gpu: {
      name: "CPU backend device arena",
      // Memory-bound kernels (one-token GEMMs) stream fp16 weights through the decode-and-multiply path,
      // not at raw memcpy speed: their rate is what the roofline's bandwidth term must hold.
      memoryBandwidthBytesPerSecond: measured(
        weightStream.bytes / weightStream.seconds,
        `fp16 weights streamed by a one-token GEMM ${weightStream.shape} (the runtime's linear kernel)`,
      ),
      fp16MatmulFlopsPerSecond: measured(
        gemm.size / gemm.seconds,
        `fp16-weight GEMM ${gemm.shape} (the runtime's linear kernel), best of the shapes measured`,
      ),
      kernelLaunchSeconds: measured(launch.seconds, "one 1x16x16 fp16-weight linear call"),
      ...(curveSamples.length > 0
        ? {
            matmulCurve: {
              samples: curveSamples,
              source: source(
                "fp16-weight GEMMs of 768x768, 768x3072 and 3072x768 weights against rows (the runtime's linear kernel)",
              ),
            },
          }
        : {}),
      ...(quantizedCurves ? { quantizedMatmulCurves: quantizedCurves } : {}),
      workingBytesPerValue: { value: 4, source: "the CPU backend computes in fp32 (runtime/kernels)" },
      sharesHostCores: {
        value: true,
        source:
          "the CPU backend: device kernels and host-side experts run on this machine's cores on the runtime's main thread, and its copies are memcpys by the same cores (runtime/moe/arena-expert-memory.ts)",
      },
      ...(dequantize
        ? {
            dequantizeValuesPerSecond: measured(
              dequantize.size / dequantize.seconds,
              "4-bit group-wise dequantisation of a 768x3072 tensor into fp16 (the runtime's decodeToFloat16)",
            ),
          }
        : {}),
    },
    cpu: {
      ...hostSide.cpu,
      // The CPU backend computes a missed expert on the host with the same linear kernels as its device.
      ...(curveSamples.length > 0
        ? {
            matmulCurve: {
              samples: curveSamples,
              source: source(
                "the device's fp16-weight GEMM curve: the CPU backend computes host-side experts with the same linear kernel, on the same cores",
              ),
            },
          }
        : {}),
      ...(quantizedCurves ? { quantizedMatmulCurves: quantizedCurves } : {}),
    },
    hostToDevice: {
      pinnedBytesPerSecond: measured(h2d.rate, `copy of ${h2d.big.size} bytes into the arena`),
      latencySeconds: measured(h2d.latency, `copy of ${h2d.small.size} bytes less its share at the large-copy rate`),
      curve: {
        samples: h2d.list.map((s) => ({ bytes: s.size, bytesPerSecond: s.size / s.seconds })),
        source: source("copies into the arena by size"),
      },
    },
    deviceToHost: {
      pinnedBytesPerSecond: measured(d2h.rate, `copy of ${d2h.big.size} bytes out of the arena`),
      latencySeconds: measured(d2h.latency, `copy of ${d2h.small.size} bytes less its share at the large-copy rate`),
      curve: {
        samples: d2h.list.map((s) => ({ bytes: s.size, bytesPerSecond: s.size / s.seconds })),
        source: source("copies out of the arena by size"),
      },
    },
    disk: hostSide.disk,
  };
}

export function defaultCapacities(gpuBytes: number, offloadDir = tmpdir()): { gpu: number; cpu: number; disk: number } {
  const fs = statfsSync(offloadDir);
  return { gpu: gpuBytes, cpu: Math.floor(totalmem() / 2), disk: Math.floor((fs.bavail * fs.bsize) / 2) };
}

export const SAMPLE_COLUMNS = ["measurement", "size", "shape", "seconds"] as const;

export function samplesToCsv(samples: readonly ProfileSample[]): string {
  return (
    [SAMPLE_COLUMNS.join(","), ...samples.map((s) => `${s.measurement},${s.size},${s.shape},${s.seconds}`)].join("\n") +
    "\n"
  );
}

/** Reads samples back from CSV, with errors that name the line and the column. */
export function samplesFromCsv(text: string, sourceName: string): ProfileSample[] {
  let rows: Record<string, string>[];
  try {
    rows = parse(text, { columns: true, skip_empty_lines: true, trim: true }) as Record<string, string>[];
  } catch (error) {
    throw csvInputError(error, sourceName);
  }
  const missing = rows.length > 0 ? SAMPLE_COLUMNS.find((column) => !(column in rows[0]!)) : undefined;
  if (missing !== undefined)
    throw new InputError(
      sourceName,
      "line 1, header",
      `missing column "${missing}"; expected the header ${SAMPLE_COLUMNS.join(",")} (spillway profile's samples file)`,
    );
  return rows.map((row, i) => {
    const line = i + 2;
    const size = Number(row.size);
    const seconds = Number(row.seconds);
    if (!Number.isFinite(size) || size <= 0)
      throw new InputError(
        sourceName,
        `line ${line}, column size`,
        `expected a positive number, got ${JSON.stringify(row.size)}`,
      );
    if (!Number.isFinite(seconds) || seconds <= 0)
      throw new InputError(
        sourceName,
        `line ${line}, column seconds`,
        `expected a positive number, got ${JSON.stringify(row.seconds)}`,
      );
    return { measurement: row.measurement!, size, shape: row.shape ?? "", seconds };
  });
}
