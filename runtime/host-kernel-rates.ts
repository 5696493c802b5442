/**
 * Measures the host's kernel-class rates for `spillway profile`: STREAM-like copy and triad bandwidth
 * and fp16 -> fp32 conversion across worker threads (one per hardware thread, on slices of shared
 * arrays, as STREAM's OpenMP loops split theirs), the rate of writes into freshly allocated
 * memory (first touch, one thread), and one thread's copy between two already-mapped buffers (what a
 * CUDA driver's staging copy of a pageable transfer does). Each is the best of several trials, as STREAM
 * reports.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { COMMAND, CONTROL, type HostRateBuffers, type KernelCommand, runKernel, viewsOf } from "./host-rate-kernels.js";
import type { ProfileSample } from "./profile-sample.js";

export interface HostRateOptions {
  /** Doubles in each of STREAM's three arrays (and fp16 values converted per trial). */
  readonly values: number;
  /** Timed trials per kernel (the best is kept), after one untimed run. */
  readonly trials: number;
  /** Worker threads; 1 runs the kernels on the calling thread. Default: every hardware thread. */
  readonly threads?: number;
  /** Bytes of each fresh allocation written in the first-touch measurement (and copied in the one-thread copy). */
  readonly firstTouchBytes: number;
}

/** STREAM's byte counts per element: copy reads and writes a double, triad reads two and writes one. */
const STREAM_BYTES_PER_ELEMENT = { copy: 16, triad: 24 } as const;
/** How long to wait for the workers to start before measuring on the calling thread instead. */
const WORKER_START_TIMEOUT_MS = 20_000;

/** Runs kernels on worker threads, synchronously (the calling thread waits on the shared control block). */
class WorkerPool {
  private readonly control: Int32Array;
  private readonly workers: Worker[];

  private constructor(control: Int32Array, workers: Worker[]) {
    this.control = control;
    this.workers = workers;
  }

  /** Starts `count` workers over `buffers`; undefined when they do not all start in time (they are stopped). */
  static start(buffers: HostRateBuffers, count: number): WorkerPool | undefined {
    const control = new Int32Array(buffers.control);
    const workers = Array.from(
      { length: count },
      (_, index) =>
        new Worker(new URL("./host-rate-worker.js", import.meta.url), { workerData: { ...buffers, index, count } }),
    );
    for (const w of workers) w.unref();
    const pool = new WorkerPool(control, workers);
    const deadline = performance.now() + WORKER_START_TIMEOUT_MS;
    for (
      let ready = Atomics.load(control, CONTROL.ready);
      ready < count;
      ready = Atomics.load(control, CONTROL.ready)
    ) {
      const left = deadline - performance.now();
      if (left <= 0) {
        pool.stop();
        return undefined;
      }
      Atomics.wait(control, CONTROL.ready, ready, left);
    }
    return pool;
  }

  get size(): number {
    return this.workers.length;
  }

  /** Runs one command on every worker's slice and returns when all are done. */
  run(command: KernelCommand): void {
    const c = this.control;
    Atomics.store(c, CONTROL.command, command);
    Atomics.store(c, CONTROL.done, 0);
    Atomics.add(c, CONTROL.generation, 1);
    Atomics.notify(c, CONTROL.generation);
    for (let done = Atomics.load(c, CONTROL.done); done < this.workers.length; done = Atomics.load(c, CONTROL.done))
      Atomics.wait(c, CONTROL.done, done);
  }

  stop(): void {
    Atomics.store(this.control, CONTROL.command, COMMAND.stop);
    Atomics.add(this.control, CONTROL.generation, 1);
    Atomics.notify(this.control, CONTROL.generation);
    for (const w of this.workers) void w.terminate();
  }
}

/** The best (shortest) of `trials` timings of `fn`, after one untimed run. */
function bestSeconds(fn: () => void, trials: number): number {
  fn();
  let best = Number.POSITIVE_INFINITY;
  for (let t = 0; t < trials; t++) {
    const start = performance.now();
    fn();
    best = Math.min(best, (performance.now() - start) / 1000);
  }
  // A timer tick is the least a measured interval can be.
  return Math.max(best, 1e-9);
}

/** Seconds to allocate `bytes` of fresh memory and write every byte of it once (best of `trials`). */
export function firstTouchSeconds(bytes: number, trials: number): number {
  let best = Number.POSITIVE_INFINITY;
  for (let t = 0; t < trials; t++) {
    const start = performance.now();
    // A fresh allocation this large is mapped on demand: every page faults and is zeroed on first write.
    new Uint8Array(bytes).fill(1);
    best = Math.min(best, (performance.now() - start) / 1000);
  }
  return Math.max(best, 1e-9);
}

/** Seconds for one thread to copy `bytes` between two buffers already written once (best of `trials`). */
export function singleThreadCopySeconds(bytes: number, trials: number): number {
  const source = new Uint8Array(bytes).fill(1);
  const target = new Uint8Array(bytes).fill(2);
  // TypedArray.set between distinct buffers is one memmove on the calling thread.
  return bestSeconds(() => target.set(source), trials);
}

function checkOptions(options: HostRateOptions): void {
  for (const [name, value] of Object.entries(options))
    if (value !== undefined && (!Number.isInteger(value) || value < 1))
      throw new RangeError(`measureHostKernelRates: ${name} must be a positive integer, got ${value}`);
}

/**
 * Samples "streamCopy" and "streamTriad" (size: STREAM's bytes moved), "fp16ToFp32" (size: values
 * converted), "firstTouch" (size: bytes written) and "singleThreadCopy" (size: bytes copied); the shape
 * says the threads and array sizes.
 */
export function measureHostKernelRates(options: HostRateOptions): ProfileSample[] {
  checkOptions(options);
  const { values, trials } = options;
  const buffers: HostRateBuffers = {
    control: new SharedArrayBuffer(CONTROL.length * 4),
    a: new SharedArrayBuffer(values * 8),
    b: new SharedArrayBuffer(values * 8),
    c: new SharedArrayBuffer(values * 8),
    half: new SharedArrayBuffer(values * 2),
    out: new SharedArrayBuffer(values * 4),
  };
  const views = viewsOf(buffers);
  views.a.fill(1);
  views.b.fill(2);
  views.c.fill(0.5);
  // Finite fp16 values of both signs (exponent field never all ones).
  for (let i = 0; i < values; i++) views.half[i] = i & 0xbbff;
  const requested = options.threads ?? availableParallelism();
  const pool = requested > 1 ? WorkerPool.start(buffers, Math.min(requested, values)) : undefined;
  const threads = pool?.size ?? 1;
  const run = (command: KernelCommand) => (pool ? pool.run(command) : runKernel(command, views, 0, values));
  try {
    const shape = `${threads} thread${threads === 1 ? "" : "s"} x ${values} values per array`;
    const copy = bestSeconds(() => run(COMMAND.copy), trials);
    const triad = bestSeconds(() => run(COMMAND.triad), trials);
    const convert = bestSeconds(() => run(COMMAND.fp16ToFp32), trials);
    return [
      { measurement: "streamCopy", size: STREAM_BYTES_PER_ELEMENT.copy * values, shape, seconds: copy },
      { measurement: "streamTriad", size: STREAM_BYTES_PER_ELEMENT.triad * values, shape, seconds: triad },
      { measurement: "fp16ToFp32", size: values, shape, seconds: convert },
      {
        measurement: "firstTouch",
        size: options.firstTouchBytes,
        shape: "1 thread",
        seconds: firstTouchSeconds(options.firstTouchBytes, trials),
      },
      {
        measurement: "singleThreadCopy",
        size: options.firstTouchBytes,
        shape: "1 thread",
        seconds: singleThreadCopySeconds(options.firstTouchBytes, trials),
      },
    ];
  } finally {
    pool?.stop();
  }
}
