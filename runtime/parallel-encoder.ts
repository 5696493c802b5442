/**
 * Checkpoint tensors encoded to 4-bit on worker threads (encode-worker.ts), a chunk of whole groups per
 * task, each thread reading its chunks from the file itself: quantising is the one setup phase bound by
 * the CPU (several seconds per GiB on one thread, bench/setup-time.ts), and groups quantise
 * independently, so the bytes are exactly readEncodedTensor's. Tensors are handed in small sets (one
 * layer's), so the encoded bytes waiting to be placed never exceed a layer's.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { EncodeChunk } from "./encode-worker.js";
import type { OptWeights } from "./opt-checkpoint.js";
import { elementCount } from "./safetensors.js";
import { type Encoding, encodedByteLength } from "./tensor-codec.js";
import { sharedBytes } from "./transfer-engine.js";

/** Values per task: whole 4-bit groups, small enough that one layer of a 1B-parameter model spreads over 16 threads. */
const TASK_VALUES = 64 * 2 ** 14;
/** At most this many threads (memory bandwidth, not cores, bounds the rest). */
const MAX_ENCODER_THREADS = 16;
/**
 * From this many cores the threads quantise (on one, the main thread does). On the 2-core development
 * machine, opt-1.3b's 4-bit placement (run() up to its first layer): 11.4 s on two threads against
 * 21.4 s on the main thread, idle; under a load average of 5 from other work, 0.92x (npm run bench:setup).
 */
const MIN_CORES = 2;

interface Waiting {
  resolve(): void;
  reject(error: Error): void;
}

export class ParallelEncoder {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  private readonly idle: Worker[] = [];
  private readonly queue: EncodeChunk[] = [];
  private failure: Error | undefined;

  private readonly exited: Promise<unknown>[];

  private constructor(private readonly workers: readonly Worker[]) {
    this.exited = workers.map((worker) => new Promise((resolve) => worker.once("exit", resolve)));
    for (const worker of workers) {
      this.idle.push(worker);
      worker.on("message", (done: { id: number; error?: string }) => {
        const waiting = this.waiting.get(done.id);
        this.waiting.delete(done.id);
        if (done.error !== undefined) waiting?.reject(new Error(done.error));
        else waiting?.resolve();
        this.idle.push(worker);
        this.pump();
      });
      worker.on("error", (error) => this.fail(error));
    }
  }

  /** Threads for the encoder by default: the machine's cores, at most MAX_ENCODER_THREADS; 1 (none) on one core. */
  static threadsAvailable(cores = availableParallelism()): number {
    return cores < MIN_CORES ? 1 : Math.min(MAX_ENCODER_THREADS, cores);
  }

  /** Starts `requested` workers (default: threadsAvailable(); at most 16); undefined when fewer than two would run. */
  static async start(requested = ParallelEncoder.threadsAvailable()): Promise<ParallelEncoder | undefined> {
    // NaN, a fraction below 2 or a negative count: no threads, rather than an encoder with none that never finishes.
    const threads = Math.min(MAX_ENCODER_THREADS, Math.floor(requested));
    if (!(threads >= 2)) return undefined;
    const workers = Array.from(
      { length: threads },
      (_, i) => new Worker(new URL("./encode-worker.js", import.meta.url), { name: `spillway encoder ${i}` }),
    );
    try {
      await Promise.all(
        workers.map(
          (worker) =>
            new Promise<void>((resolve, reject) => {
              worker.once("online", resolve);
              worker.once("error", reject);
            }),
        ),
      );
    } catch (error) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw error;
    }
    return new ParallelEncoder(workers);
  }

  /** Each tensor encoded into a fresh shared array (sharedBytes), all of them on the threads at once. */
  async encode(
    weights: OptWeights,
    tensors: readonly { readonly name: string; readonly encoding: Encoding }[],
  ): Promise<Map<string, Uint8Array>> {
    const encoded = new Map<string, Uint8Array>();
    const done: Promise<void>[] = [];
    for (const { name, encoding } of tensors) {
      const info = weights.info(name);
      const totalValues = elementCount(info.shape);
      const out = sharedBytes(encodedByteLength(totalValues, encoding));
      encoded.set(name, out);
      for (let firstValue = 0; firstValue < totalValues; firstValue += TASK_VALUES) {
        const id = this.nextId++;
        const count = Math.min(TASK_VALUES, totalValues - firstValue);
        done.push(new Promise<void>((resolve, reject) => this.waiting.set(id, { resolve, reject })));
        this.queue.push({ id, path: info.file, name: info.storedName, encoding, totalValues, firstValue, count, out });
      }
    }
    this.pump();
    await Promise.all(done);
    return encoded;
  }

  async close(): Promise<void> {
    // Each worker closes its files and exits (terminating it would leave its file handles open).
    for (const worker of this.workers) worker.postMessage("close");
    await Promise.all(this.exited);
  }

  private pump(): void {
    if (this.failure) {
      for (const chunk of this.queue.splice(0)) this.waiting.get(chunk.id)?.reject(this.failure);
      return;
    }
    while (this.idle.length > 0 && this.queue.length > 0) this.idle.pop()!.postMessage(this.queue.shift()!);
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiting of this.waiting.values()) waiting.reject(error);
    this.waiting.clear();
    this.queue.length = 0;
  }
}

/**
 * The 4-bit tensors among `tensors` encoded on the encoder's threads (none without an encoder); fp16
 * ones are left to be read straight into place, one read that threads would not speed up.
 */
export async function encodeQuantized(
  encoder: ParallelEncoder | undefined,
  weights: OptWeights,
  tensors: readonly { readonly name: string; readonly encoding: Encoding }[],
): Promise<Map<string, Uint8Array>> {
  const quantized = tensors.filter((t) => t.encoding === "q4");
  return encoder && quantized.length > 0 ? encoder.encode(weights, quantized) : new Map();
}

/**
 * Runs a placement with an encoder of `threads` threads (default: threadsAvailable()) when it
 * quantises weights (`compress`), and stops the threads once it is done (or has failed).
 */
export async function placeWeights<T>(
  threads: number | undefined,
  compress: boolean,
  place: (encoder: ParallelEncoder | undefined) => Promise<T>,
): Promise<T> {
  const encoder = compress ? await ParallelEncoder.start(threads) : undefined;
  try {
    return await place(encoder);
  } finally {
    await encoder?.close();
  }
}
