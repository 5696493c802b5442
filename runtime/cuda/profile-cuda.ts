/**
 * `spillway profile --backend cuda`: measures a GPU the way the planner needs it — pinned and pageable
 * host→device and device→host bandwidth against transfer size, device memory bandwidth (a copy kernel
 * and cudaMemcpy), the backend's fp16 GEMM against shape (tensor cores above SPW_GEMV_MAX_ROWS rows),
 * decode and prefill attention, 4-bit dequantisation, an elementwise add and a kernel launch — each
 * timed with CUDA events, the median of several repetitions after a warm-up, on rotating buffers larger
 * than the L2 cache. The host side (CPU attention rate, memory bandwidth, offload-file reads and writes,
 * the host kernel-class rates) comes from the CPU backend's own measurements, so the profile is complete.
 */
import type { GemmSample, HardwareProfile } from "../../core/hardware-profile.js";
import { InputError } from "../../core/input-error.js";
import { toFloat16Array } from "../fp16.js";
import {
  dateSample,
  fastestSample,
  hostFieldsFromSamples,
  linkFromSamples,
  matmulCurveFromSamples,
  measureCpuBackend,
  measurementSource,
  type ProfileSample,
  samplesOf,
} from "../profile-cpu.js";
import { encode } from "../tensor-codec.js";
import type { CudaNative } from "./native-api.js";

export interface CudaProfileOptions {
  readonly quick: boolean;
  /** Toy sizes (a few KiB to 1 MiB, h = 64): for tests on the emulated device, not for a profile. */
  readonly tiny?: boolean;
  /**
   * Host-side samples (diskRead, diskWrite, cpuAttention, hostMemcpy and the host kernel rates:
   * streamCopy, streamTriad, fp16ToFp32, firstTouch) to use instead of measuring them.
   */
  readonly hostSamples?: readonly ProfileSample[];
  readonly device?: number;
  readonly offloadDir?: string;
  readonly onProgress?: (done: number, total: number, what: string) => void;
}

function filled(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin((i + seed) * 12.9898) * 0.5;
  return x;
}

/** Median seconds of `reps` timed runs of `enqueue` on `stream` (events around each), after `warmup` runs. */
/** Kernels in the timed burst of the launch measurement. */
const LAUNCH_BURST = 64;

function timeOnDevice(
  native: CudaNative,
  stream: number,
  enqueue: (rep: number) => void,
  reps: number,
  warmup = 2,
): number {
  for (let i = 0; i < warmup; i++) enqueue(i);
  native.streamSynchronize(stream);
  const start = native.eventCreate(true);
  const end = native.eventCreate(true);
  const times: number[] = [];
  try {
    for (let r = 0; r < reps; r++) {
      native.eventRecord(start, stream);
      enqueue(warmup + r);
      native.eventRecord(end, stream);
      native.eventSynchronize(end);
      times.push(native.eventElapsedMs(start, end) / 1000);
    }
  } finally {
    native.eventDestroy(start);
    native.eventDestroy(end);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** The CPU backend's measurements a CUDA profile takes its host side from. */
const HOST_MEASUREMENTS = [
  "diskRead",
  "diskWrite",
  "attention",
  "memcpy",
  "streamCopy",
  "streamTriad",
  "fp16ToFp32",
  "firstTouch",
];

/** Achieved GEMM FLOP/s at each row count, over every "matmul" shape of that row count together. */
export function gemmCurveFromSamples(samples: readonly ProfileSample[]): GemmSample[] {
  const byRows = new Map<number, { flops: number; seconds: number }>();
  for (const g of samplesOf(samples, "matmul")) {
    const rows = Number(g.shape.split("x")[0]);
    if (!Number.isInteger(rows) || rows < 1)
      throw new InputError("samples", "matmul", `shape ${JSON.stringify(g.shape)} is not MxKxN`);
    const entry = byRows.get(rows) ?? { flops: 0, seconds: 0 };
    entry.flops += g.size;
    entry.seconds += g.seconds;
    byRows.set(rows, entry);
  }
  return [...byRows.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([rows, e]) => ({ rows, flopsPerSecond: e.flops / e.seconds }));
}

export function measureCudaBackend(native: CudaNative, options: CudaProfileOptions): ProfileSample[] {
  const device = options.device ?? 0;
  native.setDevice(device);
  const props = native.deviceProperties(device);
  const reps = options.quick ? 5 : 15;
  const tiny = options.tiny === true;
  const sizes = tiny
    ? [4096, 65536, 1 << 20]
    : options.quick
      ? [4096, 65536, 1 << 20, 16 << 20, 64 << 20]
      : [4096, 16384, 65536, 262144, 1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20];
  const largest = sizes[sizes.length - 1]!;
  const h = tiny ? 64 : options.quick ? 4096 : 8192;
  const rowsCurve = tiny
    ? [1, 8, 16, 64]
    : options.quick
      ? [1, 8, 16, 64, 256, 1024]
      : [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048];
  const contexts = tiny ? [64, 128] : options.quick ? [512, 2048] : [128, 512, 1024, 2048, 4096];
  const total = sizes.length * 4 + 3 + rowsCurve.length + 1 + contexts.length + 2;
  let done = 0;
  const step = (what: string) => options.onProgress?.(++done, total, what);
  const samples: ProfileSample[] = [dateSample()];
  const stream = native.streamCreate();
  const allocations: number[] = [];
  const malloc = (bytes: number) => {
    const p = native.malloc(bytes);
    allocations.push(p);
    return p;
  };
  try {
    // Host <-> device, pinned and pageable.
    const pinned = new Uint8Array(native.hostAlloc(largest));
    const pageable = new Uint8Array(largest);
    for (let i = 0; i < largest; i += 4096) pinned[i] = pageable[i] = i & 255;
    const deviceBuffer = malloc(largest);
    for (const size of sizes) {
      const repsFor = size >= 64 << 20 ? Math.max(3, Math.floor(reps / 2)) : reps;
      samples.push({
        measurement: "h2d",
        size,
        shape: "pinned",
        seconds: timeOnDevice(
          native,
          stream,
          () => native.memcpyHtoD(deviceBuffer, pinned.subarray(0, size), stream),
          repsFor,
        ),
      });
      step(`pinned host->device ${size} B`);
      samples.push({
        measurement: "d2h",
        size,
        shape: "pinned",
        seconds: timeOnDevice(
          native,
          stream,
          () => native.memcpyDtoH(pinned.subarray(0, size), deviceBuffer, stream),
          repsFor,
        ),
      });
      step(`pinned device->host ${size} B`);
      // Pageable copies are synchronous with the host: time them on the host clock.
      const hostTime = (fn: () => void) => {
        fn();
        native.streamSynchronize(stream);
        const times: number[] = [];
        for (let r = 0; r < repsFor; r++) {
          const t0 = performance.now();
          fn();
          native.streamSynchronize(stream);
          times.push((performance.now() - t0) / 1000);
        }
        return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
      };
      samples.push({
        measurement: "h2dPageable",
        size,
        shape: "pageable",
        seconds: hostTime(() => native.memcpyHtoD(deviceBuffer, pageable.subarray(0, size), stream)),
      });
      step(`pageable host->device ${size} B`);
      samples.push({
        measurement: "d2hPageable",
        size,
        shape: "pageable",
        seconds: hostTime(() => native.memcpyDtoH(pageable.subarray(0, size), deviceBuffer, stream)),
      });
      step(`pageable device->host ${size} B`);
    }
    native.hostFree(pinned.buffer as ArrayBuffer);
    // Device memory bandwidth: bytes read plus bytes written.
    {
      const copyBytes = Math.min(largest, Math.floor(native.memGetInfo().freeBytes / 8));
      const a = malloc(copyBytes);
      const b = malloc(copyBytes);
      native.memset(a, 1, copyBytes, stream);
      samples.push({
        measurement: "deviceCopy",
        size: 2 * copyBytes,
        shape: "kernel",
        seconds: timeOnDevice(native, stream, () => native.copy(a, b, copyBytes, stream), reps),
      });
      step("device memory bandwidth (copy kernel)");
      samples.push({
        measurement: "deviceCopy",
        size: 2 * copyBytes,
        shape: "cudaMemcpy",
        seconds: timeOnDevice(native, stream, () => native.memcpyDtoD(b, a, copyBytes, stream), reps),
      });
      step("device memory bandwidth (cudaMemcpy)");
      // An elementwise kernel: the backend's residual add x += y reads two floats and writes one per element.
      const n = Math.floor(copyBytes / 4);
      native.memset(b, 0, copyBytes, stream);
      samples.push({
        measurement: "deviceElementwise",
        size: 12 * n,
        shape: "add",
        seconds: timeOnDevice(native, stream, () => native.add(a, b, n, stream), reps),
      });
      step("elementwise kernel (add)");
    }
    // GEMMs through the backend's linear kernel, weights rotating through more than the L2 cache.
    const copiesFor = (bytes: number) => Math.max(2, Math.ceil((4 * props.l2CacheBytes) / bytes));
    const maxRows = rowsCurve[rowsCurve.length - 1]!;
    const x = malloc(maxRows * 4 * h * 4);
    native.memcpyHtoD(x, filled(maxRows * 4 * h, 1), stream);
    const out = malloc(maxRows * 4 * h * 4);
    const shapes: [number, number][] = [
      [h, h],
      [h, 4 * h],
      [4 * h, h],
    ];
    const weightSets = shapes.map(([k, n]) => {
      const w = toFloat16Array(filled(k * n, 2));
      return Array.from({ length: Math.min(4, copiesFor(w.byteLength)) }, () => {
        const p = malloc(w.byteLength);
        native.memcpyHtoD(p, w, stream);
        return p;
      });
    });
    for (const m of rowsCurve) {
      shapes.forEach(([k, n], i) => {
        const set = weightSets[i]!;
        samples.push({
          measurement: "matmul",
          size: 2 * m * k * n,
          shape: `${m}x${k}x${n}`,
          seconds: timeOnDevice(
            native,
            stream,
            (r) => native.linear(x, set[r % set.length]!, 0, out, m, k, n, stream),
            reps,
          ),
        });
      });
      step(`GEMM curve at ${m} rows`);
    }
    for (const m of rowsCurve) {
      const s = samples.find((e) => e.measurement === "matmul" && e.shape === `${m}x${h}x${h}`)!;
      samples.push({ ...s, measurement: "gemm" });
    }
    // A launch as the runtime's per-sequence attention sees it: a burst of tiny kernels issued back to back
    // from JavaScript, per kernel (the host's issue rate or the GPU's smallest kernel, whichever is slower).
    // One kernel alone between two events also counts the events' own overhead: on an H200 (2026-12-04) it
    // read 7.2 us while a 32-sequence decode step's launches averaged about 4.7 us each.
    const tinyKernel = () => native.linear(x, weightSets[0]![0]!, 0, out, 1, 16, 16, stream);
    samples.push({
      measurement: "launch",
      size: 2 * 16 * 16,
      shape: `1x16x16 x${LAUNCH_BURST} back to back`,
      seconds:
        timeOnDevice(
          native,
          stream,
          () => {
            for (let i = 0; i < LAUNCH_BURST; i++) tinyKernel();
          },
          reps,
        ) / LAUNCH_BURST,
    });
    samples.push({
      measurement: "launchAlone",
      size: 2 * 16 * 16,
      shape: "1x16x16",
      seconds: timeOnDevice(native, stream, tinyKernel, reps),
    });
    step("kernel launch");
    {
      const values = h * 4 * h;
      const stored = encode(filled(values, 3), "q4");
      const q4 = malloc(stored.byteLength);
      native.memcpyHtoD(q4, stored, stream);
      const f16 = malloc(values * 2);
      const seconds = timeOnDevice(native, stream, () => native.dequantize4F16(q4, 1, values, f16, stream), reps);
      samples.push({ measurement: "dequantize", size: values, shape: "q4->f16", seconds });
      // The same kernel as a uint8-unpacking one: bytes of packed codes read plus fp16 values written.
      samples.push({ measurement: "deviceUnpack", size: stored.byteLength + 2 * values, shape: "q4->f16", seconds });
      step("4-bit dequantisation");
    }
    // Attention: decode (one query) over each context, 32 heads of 128, and one prefill.
    const heads = tiny ? 4 : 32;
    const headDim = tiny ? 16 : 128;
    const width = heads * headDim;
    const maxContext = contexts[contexts.length - 1]!;
    const prefill = tiny ? 32 : options.quick ? 512 : 2048;
    const k = malloc(Math.max(maxContext, prefill) * width * 4);
    const v = malloc(Math.max(maxContext, prefill) * width * 4);
    const q = malloc(prefill * width * 4);
    const o = malloc(prefill * width * 4);
    native.memcpyHtoD(k, filled(Math.max(maxContext, prefill) * width, 4), stream);
    native.memcpyHtoD(v, filled(Math.max(maxContext, prefill) * width, 5), stream);
    native.memcpyHtoD(q, filled(prefill * width, 6), stream);
    const scratch = malloc(
      Math.max(
        native.attentionScratchFloats(1, maxContext - 1, heads),
        native.attentionScratchFloats(prefill, 0, heads),
      ) * 4,
    );
    for (const context of contexts) {
      samples.push({
        measurement: "gpuAttention",
        size: 4 * context * width,
        shape: `1x${context}x${width}`,
        seconds: timeOnDevice(
          native,
          stream,
          () => native.attention(q, k, v, o, scratch, 1, context - 1, heads, headDim, stream),
          reps,
        ),
      });
      step(`decode attention over ${context} tokens`);
    }
    samples.push({
      measurement: "gpuAttention",
      size: (4 * prefill * prefill * width) / 2,
      shape: `${prefill}x${prefill}x${width}`,
      seconds: timeOnDevice(
        native,
        stream,
        () => native.attention(q, k, v, o, scratch, prefill, 0, heads, headDim, stream),
        Math.max(3, Math.floor(reps / 3)),
      ),
    });
    step(`prefill attention over ${prefill} tokens`);
  } finally {
    native.streamSynchronize(stream);
    for (const p of allocations) native.free(p);
    native.streamDestroy(stream);
  }
  // The host side, measured as the CPU backend measures it.
  if (options.hostSamples) samples.push(...options.hostSamples);
  else {
    const host = measureCpuBackend({
      quick: true,
      gpuBytes: 64 << 20,
      ...(options.offloadDir ? { offloadDir: options.offloadDir } : {}),
    }).filter((s) => HOST_MEASUREMENTS.includes(s.measurement));
    samples.push(
      ...host.map((s) => ({
        ...s,
        measurement:
          s.measurement === "attention" ? "cpuAttention" : s.measurement === "memcpy" ? "hostMemcpy" : s.measurement,
      })),
    );
  }
  step("host CPU and disk");
  return samples;
}

/** A hardware profile from CUDA samples (the CSV columns of the CPU backend's profile). */
export function cudaProfileFromSamples(
  samples: readonly ProfileSample[],
  capacity: { gpu: number; cpu: number; disk: number },
  deviceName: string,
): HardwareProfile {
  const of = (m: string) => samplesOf(samples, m);
  const rate = (s: ProfileSample) => s.size / s.seconds;
  const h2d = linkFromSamples(samples, "h2d");
  const d2h = linkFromSamples(samples, "d2h");
  const h2dPageable = of("h2dPageable");
  const d2hPageable = of("d2hPageable");
  const copy = fastestSample(samples, "deviceCopy");
  const gemm = fastestSample(samples, "gemm");
  const launch = of("launch")[0];
  if (!launch) throw new InputError("samples", "launch", "no samples");
  const dequantize = of("dequantize")[0];
  const elementwise = of("deviceElementwise");
  const unpack = of("deviceUnpack");
  // The prefill attention sample (shape PxPxW: P queries over P keys): its size counts the causal half of
  // 4 P^2 W FLOPs; the planner counts the whole square, so the rate is over 4 P^2 W.
  const prefillAttention = of("gpuAttention").find((e) => {
    const [t, ctx] = e.shape.split("x").map(Number);
    return t !== undefined && t > 1 && t === ctx;
  });
  const curve = matmulCurveFromSamples(samples);
  const gemmCurve = gemmCurveFromSamples(samples);
  const source = measurementSource("cuda", samples);
  // Host-side fields from the CPU backend's own measurements.
  const hostSide = hostFieldsFromSamples(samples, { attention: "cpuAttention", memcpy: "hostMemcpy" }, source);
  const measured = (value: number, what: string) => ({ measured: { value, source: source(what) } });
  return {
    name: `cuda-${deviceName
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-|-$/g, "")}`,
    description: `${deviceName} as Spillway's CUDA backend sees it (its own kernels and copies, timed with CUDA events).`,
    host: hostSide.host,
    capacityBytes: {
      gpu: { value: capacity.gpu, source: "spillway profile --gpu-mem, or the device's free memory" },
      cpu: { value: capacity.cpu, source: "half of this machine's memory, or --cpu-mem" },
      disk: { value: capacity.disk, source: "half of the offload folder's free space, or --disk-mem" },
    },
    gpu: {
      name: deviceName,
      memoryBandwidthBytesPerSecond: measured(
        rate(copy),
        `device-to-device copy of ${copy.size / 2} bytes (${copy.shape}), bytes read plus written`,
      ),
      fp16MatmulFlopsPerSecond: measured(
        rate(gemm),
        `fp16 GEMM ${gemm.shape} through the backend's linear kernel, best of the shapes measured`,
      ),
      kernelLaunchSeconds: measured(
        launch.seconds,
        launch.shape.includes("back to back")
          ? `${launch.shape.split(" ")[1]!.slice(1)} launches of a 1x16x16 linear kernel back to back, event to event, per launch`
          : "one 1x16x16 linear kernel, event to event",
      ),
      ...(curve.length > 0
        ? {
            matmulCurve: {
              samples: curve,
              source: source("the linear kernel on h x h, h x 4h and 4h x h weights against rows"),
            },
          }
        : {}),
      workingBytesPerValue: {
        value: 4,
        source: "the CUDA backend keeps activations in fp32 between kernels (runtime/cuda/cuda-run.ts)",
      },
      ...(dequantize
        ? {
            dequantizeValuesPerSecond: measured(
              dequantize.size / dequantize.seconds,
              "4-bit group-wise dequantisation into fp16 (dequantize4F16)",
            ),
          }
        : {}),
      ...(prefillAttention
        ? {
            attentionFlopsPerSecond: measured(
              (2 * prefillAttention.size) / prefillAttention.seconds,
              `the backend's attention kernels over a ${prefillAttention.shape} prompt (queries x keys x width), 4 x queries x keys x width FLOPs`,
            ),
          }
        : {}),
      ...(elementwise.length > 0
        ? {
            elementwiseBytesPerSecond: measured(
              rate(fastestSample(elementwise, "deviceElementwise")),
              `the backend's elementwise add kernel x += y over ${fastestSample(elementwise, "deviceElementwise").size / 12} floats (12 bytes read plus written per element)`,
            ),
          }
        : {}),
      ...(unpack.length > 0
        ? {
            stridedBytesPerSecond: measured(
              rate(fastestSample(unpack, "deviceUnpack")),
              "the backend's 4-bit dequantisation kernel (dequantize4F16) as a uint8-unpacking kernel: packed bytes read plus fp16 bytes written; Spillway's kernel, not PyTorch's strided views",
            ),
          }
        : {}),
      ...(gemmCurve.length > 0
        ? {
            gemmCurve: {
              samples: gemmCurve,
              source: source(
                "FLOP/s of the backend's linear kernel (fp16 weights, tensor cores above SPW_GEMV_MAX_ROWS rows) on h x h, h x 4h and 4h x h weights against rows",
              ),
            },
          }
        : {}),
    },
    cpu: hostSide.cpu,
    hostToDevice: {
      pinnedBytesPerSecond: measured(h2d.rate, `cudaMemcpyAsync of ${h2d.big.size} bytes from pinned memory`),
      ...(h2dPageable.length > 0
        ? {
            pageableBytesPerSecond: measured(
              rate(h2dPageable[h2dPageable.length - 1]!),
              `cudaMemcpyAsync of ${h2dPageable[h2dPageable.length - 1]!.size} bytes from pageable memory`,
            ),
          }
        : {}),
      latencySeconds: measured(h2d.latency, `copy of ${h2d.small.size} bytes less its share at the large-copy rate`),
      curve: {
        samples: h2d.list.map((s) => ({ bytes: s.size, bytesPerSecond: rate(s) })),
        source: source("pinned host-to-device copies by size"),
      },
    },
    deviceToHost: {
      pinnedBytesPerSecond: measured(d2h.rate, `cudaMemcpyAsync of ${d2h.big.size} bytes into pinned memory`),
      ...(d2hPageable.length > 0
        ? {
            pageableBytesPerSecond: measured(
              rate(d2hPageable[d2hPageable.length - 1]!),
              `cudaMemcpyAsync of ${d2hPageable[d2hPageable.length - 1]!.size} bytes into pageable memory`,
            ),
          }
        : {}),
      latencySeconds: measured(d2h.latency, `copy of ${d2h.small.size} bytes less its share at the large-copy rate`),
      curve: {
        samples: d2h.list.map((s) => ({ bytes: s.size, bytesPerSecond: rate(s) })),
        source: source("pinned device-to-host copies by size"),
      },
    },
    disk: hostSide.disk,
  };
}
