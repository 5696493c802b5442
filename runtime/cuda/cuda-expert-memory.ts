/**
 * ExpertStore's memory on the CUDA backend (runtime/moe/expert-memory.ts): expert slots, the staging
 * block and the prefetch buffers are blocks of the device pool; copies run on their own stream, ordered
 * by events; routed experts run on the compute stream with the group-wise SwiGLU kernel
 * (kernels.h spw_expert_swiglu, any stored precision).
 *
 * Ordering, by events only:
 * - a copy into a block waits for the compute stream's last read of that block (an evicted slot, a
 *   prefetch buffer given back, the staging block between two streamed experts);
 * - the store's `await(copy)` makes the compute stream wait for the copy's end event, so a demand fetch
 *   or a prefetch is waited for by the kernel that reads it, not by the host; prefetches issued for
 *   later layers keep running on the copy stream while the compute stream runs the decoder's attention
 *   (cuda-mixtral-decoder.ts, on the same compute stream);
 * - per layer, with the device decoder's rows (cuda-expert-rows.ts), each device expert's token rows
 *   are gathered by index from the router input into the expert input block at their own offset
 *   (spw_gather_rows), run, and its outputs scattered into their (row, rank) slots (spw_scatter_rows):
 *   no copy over the bus but the layer's indices, and no synchronisation. With a host io (a host decoder), the rows are gathered by the host
 *   into a pinned buffer, copied up on the compute stream, run, and copied down into a pinned buffer;
 *   endLayer synchronises the compute stream once and hands the outputs to the model. The pinned
 *   buffers are reused only after that synchronisation.
 *
 * Every copy and expert kernel is bracketed by timing events; `report` hands finished ones to the
 * runner (epoch milliseconds, as the CPU backend's TransferEngine reports its copies).
 */
import type { ModelSpec } from "../../core/model-spec.js";
import { expertActivationFloats } from "../moe/device-budget.js";
import type { ExpertMemory, ExpertTransferKind, ExpertTransferMeta, ExpertWork } from "../moe/expert-memory.js";
import type { FinishedTransfer } from "../transfer-engine.js";
import { isCudaExpertIo } from "./cuda-expert-rows.js";
import type { DevicePointer, DevicePool } from "./device-pool.js";
import type { CudaNative } from "./native-api.js";

export interface CudaExpertBlock {
  readonly memory: DevicePointer;
  /** The compute stream's event after its last kernel reading this block. */
  lastRead?: number;
}

export interface CudaExpertCopy {
  readonly start: number;
  readonly end: number;
  readonly bytes: number;
  readonly meta: ExpertTransferMeta;
  /** The link (default h2d: expert weights). */
  readonly link?: "h2d" | "d2h";
}

interface ExpertLaunch {
  readonly layer: number;
  readonly expert: number;
  /** First row of the expert's rows in the layer's input and output buffers. */
  readonly row: number;
  readonly rows: number;
  /** Events: before the rows' copy up, before the kernel, after it, after the outputs' copy down. */
  readonly events: readonly [number, number, number, number];
  /** Rows and outputs stayed on the device (device-to-device copies, nothing handed back). */
  readonly onDevice: boolean;
}

/** Where finished device work goes (epoch milliseconds). */
export interface CudaExpertReports {
  readonly onCopy: (done: FinishedTransfer<ExpertTransferMeta>) => void;
  readonly onExpert: (layer: number, startMs: number, endMs: number) => void;
  readonly onCompute: (layer: number, startMs: number, endMs: number) => void;
}

export class CudaExpertMemory implements ExpertMemory<CudaExpertBlock, CudaExpertCopy> {
  private readonly events: number[] = [];
  private readonly copies: CudaExpertCopy[] = [];
  private launches: ExpertLaunch[] = [];
  /** The decoder's work on the compute stream, between two events, not yet reported. */
  private readonly computes: { readonly layer: number; readonly start: number; readonly end: number }[] = [];
  /** Device experts' kernels (rows kept on the device) between two events, not yet reported. */
  private readonly deviceExperts: { readonly layer: number; readonly start: number; readonly end: number }[] = [];
  private readonly input: DevicePointer;
  private readonly output: DevicePointer;
  private readonly scratch: DevicePointer;
  private readonly pinnedInput: Float32Array;
  private readonly pinnedOutput: Float32Array;
  private readonly h: number;
  private readonly ffn: number;
  private rowsUsed = 0;

  /**
   * @param host every expert's stored home copy [layer][expert], in pinned memory.
   * @param maxRows the most token rows a layer's experts take together (tokens per step x experts per token).
   * @param origin a completed event on the device at `originMs` (epoch ms), the zero of every report.
   */
  constructor(
    private readonly native: CudaNative,
    private readonly pool: DevicePool,
    private readonly host: readonly (readonly Uint16Array[])[],
    model: ModelSpec,
    private readonly bits: number,
    maxRows: number,
    private readonly streams: { readonly compute: number; readonly copy: number },
    private readonly origin: { readonly event: number; readonly epochMs: number },
    private readonly reports: CudaExpertReports,
    pinned: (bytes: number) => ArrayBuffer,
  ) {
    this.h = model.hiddenSize;
    this.ffn = model.moe!.expertFfnSize;
    // The blocks the plan's GPU memory counts (device-budget.ts).
    const floats = expertActivationFloats(model, maxRows);
    this.input = pool.allocate(floats.inputs * 4, "expert inputs");
    this.output = pool.allocate(floats.outputs * 4, "expert outputs");
    this.scratch = pool.allocate(floats.scratch * 4, "expert scratch");
    this.pinnedInput = new Float32Array(pinned(floats.inputs * 4));
    this.pinnedOutput = new Float32Array(pinned(floats.outputs * 4));
  }

  private mark(stream: number): number {
    const event = this.native.eventCreate(true);
    this.events.push(event);
    this.native.eventRecord(event, stream);
    return event;
  }

  allocate(bytes: number, what: string): CudaExpertBlock {
    return { memory: this.pool.allocate(bytes, what) };
  }

  copyIn(layer: number, expert: number, block: CudaExpertBlock, kind: ExpertTransferKind): CudaExpertCopy {
    const { copy } = this.streams;
    const src = this.host[layer]![expert]!;
    if (block.lastRead !== undefined) this.native.streamWaitEvent(copy, block.lastRead);
    const start = this.mark(copy);
    this.native.memcpyHtoD(block.memory.pointer, src, copy);
    const done: CudaExpertCopy = {
      start,
      end: this.mark(copy),
      bytes: src.byteLength,
      meta: { kind, layer, expert },
    };
    this.copies.push(done);
    return done;
  }

  await(copy: CudaExpertCopy): void {
    this.native.streamWaitEvent(this.streams.compute, copy.end);
  }

  /** On the copy stream like any copy (after the copies issued so far), the compute stream waiting for it by event. */
  copyNow(layer: number, expert: number, block: CudaExpertBlock, kind: ExpertTransferKind): void {
    this.await(this.copyIn(layer, expert, block, kind));
  }

  computeFrom(layer: number, expert: number, block: CudaExpertBlock, work: ExpertWork): void {
    if (!work.io) throw new Error(`layer ${layer}: the CUDA backend runs experts from their rows (no ExpertIo given)`);
    const { compute } = this.streams;
    const device = isCudaExpertIo(work.io) ? work.io.device.rows(expert) : undefined;
    const hostRows = device ? undefined : work.io.gather(expert);
    const rows = device ? device.count : hostRows!.rows;
    const row = this.rowsUsed;
    const at = row * this.h;
    const values = rows * this.h;
    if (at + values > this.pinnedInput.length)
      throw new Error(`layer ${layer}: experts take more than the ${this.pinnedInput.length / this.h} rows allocated`);
    this.rowsUsed += rows;
    const sent = this.mark(compute);
    if (device && isCudaExpertIo(work.io)) {
      const { routerInput, routerRows } = work.io.device;
      const index = device.sourceRows + device.offset * 4;
      this.native.gatherRows(routerInput, routerRows, index, rows, this.h, this.input.pointer + at * 4, compute);
    } else {
      this.pinnedInput.set(hostRows!.input.subarray(0, values), at);
      this.native.memcpyHtoD(this.input.pointer + at * 4, this.pinnedInput.subarray(at, at + values), compute);
    }
    const start = this.mark(compute);
    this.native.expertSwiglu(
      this.input.pointer + at * 4,
      block.memory.pointer,
      this.bits,
      rows,
      this.h,
      this.ffn,
      this.scratch.pointer,
      this.output.pointer + at * 4,
      compute,
    );
    const end = this.mark(compute);
    block.lastRead = end;
    if (device && isCudaExpertIo(work.io)) {
      const { outputs, slots } = work.io.device;
      const index = device.outputSlots + device.offset * 4;
      this.native.scatterRows(this.output.pointer + at * 4, index, rows, this.h, outputs, slots, compute);
    } else {
      this.native.memcpyDtoH(this.pinnedOutput.subarray(at, at + values), this.output.pointer + at * 4, compute);
    }
    const events = [sent, start, end, this.mark(compute)] as const;
    this.launches.push({ layer, expert, row, rows, events, onDevice: device !== undefined });
  }

  endLayer(_layer: number, work: ExpertWork): void {
    if (this.launches.length > 0) {
      // Host outputs are read once the compute stream has passed their copies; device ones need no wait.
      if (this.launches.some((launch) => !launch.onDevice)) this.native.streamSynchronize(this.streams.compute);
      for (const { layer, expert, row, rows, events, onDevice } of this.launches) {
        if (onDevice) {
          this.deviceExperts.push({ layer, start: events[1], end: events[2] }); // reported once finished
          continue;
        }
        const at = row * this.h;
        const bytes = rows * this.h * 4;
        work.io!.scatter(expert, this.pinnedOutput.subarray(at, at + rows * this.h));
        const [sent, start, end, returned] = events.map((e) => this.epochMs(e)) as [number, number, number, number];
        this.reports.onCopy({
          stream: "h2d",
          bytes,
          meta: { kind: "rows-in", layer, expert },
          startMs: sent,
          endMs: start,
        });
        this.reports.onExpert(layer, start, end);
        this.reports.onCopy({
          stream: "d2h",
          bytes,
          meta: { kind: "rows-out", layer, expert },
          startMs: end,
          endMs: returned,
        });
      }
    }
    this.launches = [];
    this.rowsUsed = 0;
    this.report(false);
  }

  private epochMs(event: number): number {
    return this.origin.epochMs + this.native.eventElapsedMs(this.origin.event, event);
  }

  /**
   * A copy another part of the pass issues on the compute stream (the device decoder's activations),
   * bracketed by timing events and reported with the expert copies, in issue order.
   */
  trackCopy(link: "h2d" | "d2h", kind: ExpertTransferKind, layer: number, bytes: number, issue: () => void): void {
    const { compute } = this.streams;
    const start = this.mark(compute);
    issue();
    this.copies.push({ start, end: this.mark(compute), bytes, meta: { kind, layer, expert: -1 }, link });
  }

  /** Work another part of the pass issues on the compute stream (the device decoder's), timed by events and reported by `report`. */
  trackCompute(layer: number, issue: () => void): void {
    const { compute } = this.streams;
    const start = this.mark(compute);
    issue();
    this.computes.push({ layer, start, end: this.mark(compute) });
  }

  /** Reports the copies and kernels that have finished (all of them: `all`, after a device synchronise), in issue order. */
  report(all: boolean): void {
    let finished = 0;
    while (finished < this.computes.length && (all || this.native.eventQuery(this.computes[finished]!.end))) finished++;
    for (const { layer, start, end } of this.computes.splice(0, finished))
      this.reports.onCompute(layer, this.epochMs(start), this.epochMs(end));
    let ran = 0;
    while (ran < this.deviceExperts.length && (all || this.native.eventQuery(this.deviceExperts[ran]!.end))) ran++;
    for (const { layer, start, end } of this.deviceExperts.splice(0, ran))
      this.reports.onExpert(layer, this.epochMs(start), this.epochMs(end));
    let done = 0;
    while (done < this.copies.length && (all || this.native.eventQuery(this.copies[done]!.end))) done++;
    for (const copy of this.copies.splice(0, done))
      this.reports.onCopy({
        stream: copy.link ?? "h2d",
        bytes: copy.bytes,
        meta: copy.meta,
        startMs: this.epochMs(copy.start),
        endMs: this.epochMs(copy.end),
      });
  }

  /** Destroys the timing events (after a device synchronise). */
  destroy(): void {
    for (const event of this.events.splice(0)) this.native.eventDestroy(event);
  }
}
