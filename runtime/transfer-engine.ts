/**
 * The CPU backend's copy engines: transfers (host → device, device → host, disk reads, disk writes)
 * submitted with their dependencies and run either inline on the main thread (no overlap: each runs
 * when submitted) or on one worker thread per stream, so they proceed while the main thread computes
 * — the way a GPU's copy engines and an I/O thread run beside its kernels.
 *
 * Memory that a worker touches must be shared (SharedArrayBuffer): the device arena, host tensors,
 * KV caches and staging buffers are allocated with sharedBytes(). Each finished transfer is reported
 * once, with its start and end on the main thread's clock, to the `onFinished` callback.
 */
import { Worker } from "node:worker_threads";
import { LINKS, type Link } from "../core/links.js";
import { actionBytes, executeTransferActions, type TransferAction } from "./transfer-action.js";
import { createTransferRing, isTransferDone, RING_SLOTS, type TransferRing, waitForTransfer } from "./transfer-ring.js";

/** A submitted transfer's handle; 0 stands for "nothing to wait for". */
export type TransferId = number;

export interface FinishedTransfer<M> {
  readonly stream: Link;
  readonly bytes: number;
  readonly meta: M;
  /** Milliseconds since the epoch (performance.timeOrigin + performance.now()). */
  readonly startMs: number;
  readonly endMs: number;
}

export class TransferError extends Error {
  override readonly name = "TransferError";
}

/** A Uint8Array over shared memory, which transfer workers can read and write. */
export function sharedBytes(length: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(Math.max(1, length)), 0, length);
}

interface Pending<M> {
  readonly stream: Link;
  readonly bytes: number;
  readonly meta: M;
}

export class TransferEngine<M> {
  private nextId = 1;
  private readonly pending = new Map<TransferId, Pending<M>>();
  private readonly done: Int32Array;
  private readonly failed: Int32Array;
  private readonly times: Float64Array;
  private closed = false;

  private constructor(
    readonly threads: boolean,
    private readonly ring: TransferRing,
    private readonly workers: ReadonlyMap<Link, Worker>,
    private readonly onFinished: (transfer: FinishedTransfer<M>) => void,
  ) {
    this.done = new Int32Array(ring.done);
    this.failed = new Int32Array(ring.failed);
    this.times = new Float64Array(ring.times);
  }

  /** Starts the engine: with `threads`, one worker per stream (ready when this resolves). */
  static async start<M>(
    threads: boolean,
    onFinished: (transfer: FinishedTransfer<M>) => void,
  ): Promise<TransferEngine<M>> {
    const ring = createTransferRing();
    const workers = new Map<Link, Worker>();
    if (threads) {
      try {
        await Promise.all(
          LINKS.map(
            (stream) =>
              new Promise<void>((resolve, reject) => {
                const worker = new Worker(new URL("./transfer-worker.js", import.meta.url), {
                  workerData: ring,
                  name: `spillway ${stream}`,
                });
                workers.set(stream, worker);
                worker.once("online", () => resolve());
                worker.once("error", reject);
              }),
          ),
        );
      } catch (error) {
        await Promise.all([...workers.values()].map((w) => w.terminate()));
        throw error;
      }
      for (const worker of workers.values()) worker.unref();
    }
    return new TransferEngine(threads, ring, workers, onFinished);
  }

  /**
   * Submits a transfer on `stream` that starts once every dependency has finished (and, on its own
   * stream, after the transfers submitted before it). Returns 0 when there is nothing to move.
   */
  submit(
    stream: Link,
    actions: readonly TransferAction[],
    deps: readonly (TransferId | undefined)[],
    meta: M,
  ): TransferId {
    if (this.closed) throw new Error("transfer engine is closed");
    const work = actions.filter((a) => actionBytes(a) > 0);
    if (work.length === 0) return 0;
    if (this.threads) {
      for (const a of work) {
        const view = a.type === "write" ? a.src : a.dst;
        if (!(view.buffer instanceof SharedArrayBuffer))
          throw new Error(
            `transfer on ${stream}: ${a.type === "write" ? "source" : "destination"} is not shared memory`,
          );
      }
    }
    const id = this.register(stream, work, meta);
    const waitOn = deps.filter((d): d is TransferId => d !== undefined && d > 0);
    if (!this.threads) {
      for (const d of waitOn) this.wait(d);
      this.runInline(id, work);
      return id;
    }
    this.workers.get(stream)!.postMessage({ id, deps: waitOn, actions: work });
    return id;
  }

  /**
   * A transfer the caller waits for at once (an expert the layer needs now): it runs on the calling
   * thread, after every transfer already submitted on its stream, as an inline engine runs it. Handing
   * it to the stream's worker only to sleep until that worker has been scheduled, copied and woken the
   * caller again costs two thread wake-ups per copy and overlaps nothing.
   */
  runNow(stream: Link, actions: readonly TransferAction[], meta: M): void {
    if (this.closed) throw new Error("transfer engine is closed");
    const work = actions.filter((a) => actionBytes(a) > 0);
    if (work.length === 0) return;
    for (const [earlier, p] of [...this.pending]) if (p.stream === stream) this.wait(earlier);
    this.runInline(this.register(stream, work, meta), work);
  }

  /** A new transfer's id, its ring slot free (fewer than RING_SLOTS in flight, so a slot is never reused while awaited). */
  private register(stream: Link, work: readonly TransferAction[], meta: M): TransferId {
    const bytes = work.reduce((sum, a) => sum + actionBytes(a), 0);
    const id = this.nextId++;
    if (id > RING_SLOTS) this.wait(id - RING_SLOTS);
    this.pending.set(id, { stream, bytes, meta });
    return id;
  }

  /** Runs transfer `id` on this thread now, timed, and reports it. */
  private runInline(id: TransferId, work: readonly TransferAction[]): void {
    const slot = id % RING_SLOTS;
    this.times[2 * slot] = performance.timeOrigin + performance.now();
    try {
      executeTransferActions(work);
    } catch (error) {
      this.pending.delete(id);
      throw error;
    } finally {
      this.times[2 * slot + 1] = performance.timeOrigin + performance.now();
      Atomics.store(this.failed, slot, 0);
      Atomics.store(this.done, slot, id);
    }
    this.collect(id);
  }

  isDone(id: TransferId | undefined): boolean {
    return !id || isTransferDone(this.done, id);
  }

  /** Blocks until transfer `id` has finished; throws if it (or one it waited on) failed. */
  wait(id: TransferId | undefined): void {
    if (!id) return;
    waitForTransfer(this.done, id);
    this.collect(id);
  }

  /** Waits for every transfer submitted so far (or up to and including `upTo`). */
  drain(upTo = this.nextId - 1): void {
    for (const id of [...this.pending.keys()]) if (id <= upTo) this.wait(id);
  }

  /** The id the next submitted transfer will get: drain(lastSubmitted) waits for all before it. */
  get lastSubmitted(): TransferId {
    return this.nextId - 1;
  }

  /** Reports every transfer that has finished, without waiting. */
  poll(): void {
    for (const id of [...this.pending.keys()]) if (isTransferDone(this.done, id)) this.collect(id);
  }

  private collect(id: TransferId): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    const slot = id % RING_SLOTS;
    if (Atomics.load(this.failed, slot) !== 0) {
      const length = new DataView(this.ring.errorText).getUint32(0, true);
      const message = new TextDecoder().decode(new Uint8Array(this.ring.errorText).slice(4, 4 + length));
      throw new TransferError(`${p.stream} transfer failed: ${message}`);
    }
    this.onFinished({
      stream: p.stream,
      bytes: p.bytes,
      meta: p.meta,
      startMs: this.times[2 * slot]!,
      endMs: this.times[2 * slot + 1]!,
    });
  }

  /** Waits (a bounded time) for what is in flight, ignoring failures, and stops the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const deadline = performance.now() + 30_000;
    for (const id of this.pending.keys())
      if (!waitForTransfer(this.done, id, Math.max(0, deadline - performance.now()))) break;
    this.pending.clear();
    await Promise.all([...this.workers.values()].map((w) => w.terminate()));
  }
}
