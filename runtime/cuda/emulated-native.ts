/**
 * An emulated CUDA device: the CudaNative interface (native-api.ts) implemented in plain JavaScript, so
 * the CUDA backend's TypeScript (its streams, events, transfers and memory accounting) runs and is
 * tested on machines with no GPU. The kernels compute what native/cuda/kernels.h specifies, through the
 * CPU reference kernels (runtime/kernels/*.ts, runtime/tensor-codec.ts, runtime/fp16.ts).
 *
 * The point is less to be fast than to be strict, so that bugs which a GPU would hide by luck show up
 * deterministically on CI:
 *
 * Device memory
 * - One ArrayBuffer of `deviceBytes`, carved first-fit into 256-byte aligned blocks. Pointers are
 *   numbers from DEVICE_BASE (2^40), so a byte offset mistaken for a pointer (or the reverse) fails.
 * - Freshly allocated memory is filled with 0xFF bytes (NaN as fp32 and as fp16), as cudaMalloc does
 *   not clear memory: reading something never written gives NaNs rather than plausible zeros.
 * - Every call accepts any address inside a live allocation (pointer arithmetic), and checks that each
 *   range it reads or writes lies inside ONE live allocation's requested bytes (not its 256-byte
 *   rounding): a kernel reading past its buffer throws, naming the kernel and the argument, where a GPU
 *   would fault (cudaErrorIllegalAddress) or silently read a neighbour. Typed views need their natural
 *   alignment (4 bytes for fp32/int32, 2 for fp16); a misaligned pointer throws (cudaErrorMisalignedAddress).
 *   Byte data (copies, memset, 4-bit stored rows, which kernels.cu reads bytewise) needs none.
 * - Kernels whose output partially overlaps an input (a data race on a GPU) throw as well; the exact
 *   in-place forms kernels.h allows (layerNorm out == x, add x == y, copies onto themselves) are fine.
 * - attention fills its scratch with NaN after use, so nothing can rely on what the GPU leaves there.
 * - cudaMalloc(0) gives the null pointer and cudaFree(0) does nothing, as in CUDA. cudaFree synchronises
 *   the device first (as the real cudaFree does), so freeing cannot race queued work.
 *
 * Streams and events (deferred: true, the default)
 * - Copies, memsets and kernels are queued per stream and run only when the host synchronises:
 *   streamSynchronize, eventSynchronize and deviceSynchronize run exactly the queued work the call has
 *   to wait for (the stream's or event's work and, through streamWaitEvent, what it depends on), no
 *   more, so work nobody waited for has not happened yet. Among streams with runnable work, the next op
 *   is chosen pseudo-randomly from `seed`: a missing streamWaitEvent gives wrong data for some seeds.
 * - streamQuery / eventQuery may run at most one op toward what they ask about (seeded coin; never three
 *   queries in a row without progress, so polling loops end), then say whether it is done.
 * - streamWaitEvent waits for the event's most recent record at the time of the call; waiting on an
 *   event never recorded is a no-op (as in CUDA). Destroying a stream or an event with work still
 *   queued is legal: the work still runs (deviceSynchronize drains it), as CUDA releases them later.
 * - Stream 0, the legacy default stream, is an ordinary stream here: it does NOT implicitly wait for
 *   other streams nor they for it (code should not rely on that legacy behaviour anyway). It is drained
 *   by its own synchronisation and by deviceSynchronize.
 * - Host memory: hostAlloc() buffers are "pinned" (a WeakSet). An async copy from a pinned buffer reads
 *   the host bytes when it EXECUTES, and a copy into one writes them when it executes, so a host that
 *   touches the buffer before the copy's event has completed sees the hazard. Copies from pageable
 *   memory (any other buffer) take their bytes at call time (CUDA stages them then); copies into
 *   pageable memory drain the stream up to the copy and return with the data there (synchronous, as in
 *   CUDA). hostFree of a buffer that a queued copy still references throws (a use after free on a GPU);
 *   otherwise the buffer is detached (byteLength 0).
 * - Errors of a queued op (e.g. its pinned host buffer was transferred away) surface from the
 *   synchronising call that ran it, as CUDA reports asynchronous errors at the next synchronisation.
 * - Timing: a virtual clock per stream. Each executed op advances its stream's time by a modelled
 *   duration (launch latency + bytes / 20 GB/s for host copies, + bytes / 2 TB/s for device memory
 *   traffic, + flops / 50 TFLOP/s for compute, the slower of the last two for kernels); a wait moves the
 *   waiting stream's time up to the event's; an event's timestamp is its stream's time at its record
 *   position. eventElapsedMs is therefore deterministic, non-zero for real work and independent of seed.
 *   It throws cudaErrorNotReady for an event that has not completed, like CUDA.
 *
 * deferred: false runs every op when it is enqueued (no hazards visible; a plain synchronous device).
 *
 * Errors follow native/cuda/addon.cpp: malformed arguments (wrong count or type, a negative or
 * fractional size, an int argument beyond 2^31 - 1, a byte beyond 255, a non-finite eps, event 0) are
 * TypeErrors with Node's codes, thrown before anything happens; failing CUDA calls are Errors worded
 * "<call>: <error string> (<cudaError name>)" with `code` and `cudaError` set, launches named as the
 * addon names them ("linear(m=4, k=768, n=3072): ..."). Errors the GPU would only report at a later
 * synchronisation (an out-of-bounds kernel: cudaErrorIllegalAddress) are thrown at the call here, with
 * what was found appended after a colon and "(emulated device check)".
 */

import { COMPRESSION_GROUP_SIZE, compressedBytes } from "../../core/compression.js";
import type { ExpertBits } from "../../core/expert-policy.js";
import { mulberry32 } from "../../core/random.js";
import { type DeviceBlock, DeviceOutOfMemory, FirstFitAllocator } from "../first-fit-allocator.js";
import { fromFloat16Array, toFloat16Array } from "../fp16.js";
import { addInPlace } from "../kernels/add.js";
import { argmaxRows as argmaxRowsCpu } from "../kernels/argmax.js";
import { attention as attentionCpu } from "../kernels/attention.js";
import { layerNorm as layerNormCpu } from "../kernels/layer-norm.js";
import { linearF16, linearScratchLength } from "../kernels/linear-f16.js";
import { linearQuantized } from "../kernels/linear-quantized.js";
import { reluInPlace } from "../kernels/relu.js";
import { softmaxRowsInPlace } from "../kernels/softmax.js";
import { dequantizeGroupwise, quantizedByteLength } from "../moe/expert-quantization.js";
import { gqaAttention as gqaAttentionCpu } from "../moe/gqa-attention.js";
import { route } from "../moe/mixtral-model.js";
import { rmsNorm as rmsNormCpu } from "../moe/rms-norm.js";
import { Rope } from "../moe/rope.js";
import { siluGateInPlace } from "../moe/silu.js";
import { decode, decodeToFloat16, encode } from "../tensor-codec.js";
import { CUDA_NATIVE_FUNCTIONS, type CudaNative } from "./native-api.js";
import { argError, checkArguments, hostBytes, NATIVE_ARGUMENTS } from "./native-arguments.js";

export interface EmulatedNativeOptions {
  /** Device memory in bytes (default 256 MiB; rounded down to 256 bytes). */
  readonly deviceBytes?: number;
  /** deviceProperties(0).name (default "Emulated CUDA device"). */
  readonly deviceName?: string;
  /** Queue work until the host synchronises (default true); false runs each op when enqueued. */
  readonly deferred?: boolean;
  /** Seeds the choice of which stream runs next while draining, and the queries' progress (default 1). */
  readonly seed?: number;
  /**
   * Which runnable stream a drain prefers (default "random"): "waited-first" runs the stream the host
   * synchronises on as far as it can before any other (a consumer missing its wait on a producer reads
   * memory the producer has not written yet); "others-first" runs every other stream first (a producer
   * missing its wait on a consumer overwrites memory before it was read). Uniform random interleaving
   * rarely exposes either when one stream has many more ops queued than the other.
   */
  readonly order?: "random" | "waited-first" | "others-first";
}

/** Live counters of the emulated device (each read gives the current value). */
export interface EmulatedNativeStats {
  /** Device memory: capacity, bytes in use (whole 256-byte blocks), their peak, and the bytes asked for. */
  readonly totalBytes: number;
  readonly inUseBytes: number;
  readonly peakBytes: number;
  readonly requestedBytes: number;
  readonly liveAllocations: number;
  /** Bytes of hostAlloc() buffers not yet hostFree()d (collected buffers are not subtracted). */
  readonly pinnedHostBytes: number;
  /** Copies, memsets and kernels queued and not yet run, on every stream. */
  readonly pendingOps: number;
  /** Copies, memsets and kernels run so far. */
  readonly executedOps: number;
  readonly kernelLaunches: number;
  readonly bytesHostToDevice: number;
  readonly bytesDeviceToHost: number;
}

export type EmulatedNative = CudaNative & { readonly stats: EmulatedNativeStats };

export function createEmulatedNative(options: EmulatedNativeOptions = {}): EmulatedNative {
  return new EmulatedDevice(options);
}

// ---------------------------------------------------------------------------------------------------
// Constants: addresses, handles, the timing model.
// ---------------------------------------------------------------------------------------------------

const DEFAULT_DEVICE_BYTES = 256 * 2 ** 20;
const DEVICE_NAME = "Emulated CUDA device";
/** The first device address: far from 0, so that offsets used as pointers (and the reverse) fail. */
export const DEVICE_BASE = 2 ** 40;
const ALIGN = 256;
/** Stream and event handles live in ranges of their own, so that one passed for the other is refused. */
const STREAM_HANDLE_BASE = 0x5e_0000_0000;
const EVENT_HANDLE_BASE = 0xe7_0000_0000;
const HANDLE_STRIDE = 0x100;
/** What uninitialised device memory holds: 0xFF bytes read as NaN in fp32 and fp16. */
const POISON_BYTE = 0xff;

/** Fixed cost of every op (launch / DMA setup), seconds. */
const LAUNCH_SECONDS = 3e-6;
/** Host <-> device copies (PCIe 4.0 x16, in practice). */
const PCIE_BYTES_PER_SECOND = 20e9;
/** Device memory bandwidth. */
const DEVICE_BYTES_PER_SECOND = 2e12;
/** Arithmetic throughput (fp16 tensor cores for large linears; used for every kernel for simplicity). */
const FLOPS_PER_SECOND = 50e12;

/** m at or below which spw_linear is the fp32-x GEMV; above, fp16 tensor cores with x rounded to fp16. */
const GEMV_MAX_ROWS = 8;
const HALF_MAX = 65504;
const HALF_NAN_BITS = 0x7e00;
const Q4_CODE_BYTES_PER_GROUP = COMPRESSION_GROUP_SIZE / 2;

const kernelSeconds = (flops: number, bytes: number) =>
  LAUNCH_SECONDS + Math.max(flops / FLOPS_PER_SECOND, bytes / DEVICE_BYTES_PER_SECOND);
const hex = (n: number) => `0x${n.toString(16)}`;

// ---------------------------------------------------------------------------------------------------
// Errors, as native/cuda/addon.cpp throws them.
// - A malformed argument: a TypeError (native-arguments.ts), thrown by the wrapper the constructor puts
//   around each function, before the function runs.
// - A failing CUDA call: an Error "<call>: <cudaGetErrorString> (<cudaError name>)", with `code` the
//   error name and `cudaError` its number. The emulator's own checks (out-of-bounds ranges, overlaps,
//   use after free) take the error the GPU would eventually report and add what it found after a colon.
// ---------------------------------------------------------------------------------------------------

const CUDA_ERRORS = {
  cudaErrorInvalidValue: [1, "invalid argument"],
  cudaErrorMemoryAllocation: [2, "out of memory"],
  cudaErrorInvalidDevice: [101, "invalid device ordinal"],
  cudaErrorInvalidResourceHandle: [400, "invalid resource handle"],
  cudaErrorNotReady: [600, "device not ready"],
  cudaErrorIllegalAddress: [700, "an illegal memory access was encountered"],
  cudaErrorMisalignedAddress: [716, "misaligned address"],
} as const;
type CudaErrorName = keyof typeof CUDA_ERRORS;

function cudaError(call: string, error: CudaErrorName, detail?: string): Error {
  const [number, text] = CUDA_ERRORS[error];
  return Object.assign(new Error(`${call}: ${text} (${error})${detail ? `: ${detail}` : ""}`), {
    code: error,
    cudaError: number,
  });
}

/** The live stream or event of a handle; a handle destroyed or never created is refused as CUDA refuses it. */
function live<T>(handles: ReadonlyMap<number, T>, what: "stream" | "event", call: string, handle: number): T {
  const state = handles.get(handle);
  if (!state)
    throw cudaError(
      call,
      "cudaErrorInvalidResourceHandle",
      `${hex(handle)} is not a live ${what} (emulated device check)`,
    );
  return state;
}

// ---------------------------------------------------------------------------------------------------
// Streams, events and the ops queued on streams.
// ---------------------------------------------------------------------------------------------------

/** One eventRecord: the position it was recorded at, and (once the stream has passed it) when. */
interface Marker {
  readonly stream: StreamState;
  /** The sequence number of the record op in its stream. */
  readonly seq: number;
  done: boolean;
  /** The stream's virtual time when the record op ran, seconds. */
  time: number;
}

type Op =
  | {
      readonly kind: "work";
      readonly name: string;
      readonly seconds: number;
      readonly run: () => void;
      readonly pinned?: ArrayBuffer;
    }
  | { readonly kind: "record"; readonly marker: Marker }
  | { readonly kind: "wait"; readonly marker: Marker };

/** A stream's queue: ops get consecutive sequence numbers; those below doneSeq have run. */
class StreamState {
  private ops: (Op | undefined)[] = [];
  /** Sequence number of ops[0]. */
  private base = 0;
  private head = 0;
  nextSeq = 0;
  /** Virtual time at which the stream's executed work ends, seconds. */
  time = 0;
  destroyed = false;
  /** Copies, memsets and kernels queued and not yet run (records and waits not counted). */
  pendingWork = 0;

  constructor(readonly handle: number) {}

  get doneSeq(): number {
    return this.base + this.head;
  }

  get pending(): number {
    return this.nextSeq - this.doneSeq;
  }

  opAt(seq: number): Op {
    return this.ops[seq - this.base]!;
  }

  peek(): Op | undefined {
    return this.ops[this.head];
  }

  push(op: Op): number {
    this.ops.push(op);
    if (op.kind === "work") this.pendingWork++;
    return this.nextSeq++;
  }

  shift(): Op {
    const op = this.ops[this.head]!;
    this.ops[this.head++] = undefined;
    if (op.kind === "work") this.pendingWork--;
    if (this.head > 1024 && this.head * 2 > this.ops.length) {
      this.ops.splice(0, this.head);
      this.base += this.head;
      this.head = 0;
    }
    return op;
  }
}

interface EventState {
  readonly handle: number;
  readonly timing: boolean;
  /** The most recent record, null before the first. */
  current: Marker | null;
}

interface Block {
  /** Byte offset in device memory (pointer - DEVICE_BASE). */
  readonly offset: number;
  /** Bytes asked for: the range calls may touch. */
  readonly requested: number;
  /** The allocator's block: the request rounded up to 256 bytes. */
  readonly reserved: DeviceBlock;
}

/** A validated device range: its byte offset in device memory and length. */
interface Range {
  readonly name: string;
  readonly offset: number;
  readonly bytes: number;
}

// ---------------------------------------------------------------------------------------------------
// The device.
// ---------------------------------------------------------------------------------------------------

class EmulatedDevice implements CudaNative {
  private readonly capacity: number;
  private readonly name: string;
  private readonly deferred: boolean;
  private readonly order: "random" | "waited-first" | "others-first";
  private readonly random: () => number;
  private readonly memory: ArrayBuffer;
  private readonly bytes: Uint8Array;

  /** Where allocations go: first fit in 256-byte units, freed extents merged. */
  private readonly allocator: FirstFitAllocator;
  /** Live allocations, sorted by offset (binary search resolves interior pointers). */
  private readonly blocks: Block[] = [];
  private requested = 0;

  private readonly pinned = new WeakSet<ArrayBuffer>();
  /** Queued copies that still reference each pinned buffer. */
  private readonly pinnedRefs = new WeakMap<ArrayBuffer, number>();
  private pinnedBytes = 0;

  /** Live stream handles (0 is the legacy default stream), and every stream that may hold work. */
  private readonly streamHandles = new Map<number, StreamState>();
  private readonly streams = new Set<StreamState>();
  private readonly events = new Map<number, EventState>();
  private nextStream = 1;
  private nextEvent = 1;
  /** Queries answered in a row without running anything (capped so polling loops make progress). */
  private idleQueries = 0;

  private executed = 0;
  private launches = 0;
  private htod = 0;
  private dtoh = 0;

  readonly stats: EmulatedNativeStats;

  constructor(options: EmulatedNativeOptions) {
    const requestedBytes = options.deviceBytes ?? DEFAULT_DEVICE_BYTES;
    if (!Number.isSafeInteger(requestedBytes) || requestedBytes < ALIGN)
      throw new RangeError(`createEmulatedNative: deviceBytes must be an integer >= ${ALIGN}, got ${requestedBytes}`);
    this.capacity = Math.floor(requestedBytes / ALIGN) * ALIGN;
    this.name = options.deviceName ?? DEVICE_NAME;
    this.deferred = options.deferred ?? true;
    this.random = mulberry32(options.seed ?? 1);
    this.order = options.order ?? "random";
    this.memory = new ArrayBuffer(this.capacity);
    this.bytes = new Uint8Array(this.memory);
    this.allocator = new FirstFitAllocator(this.capacity, this.capacity, ALIGN);
    const legacy = new StreamState(0);
    this.streamHandles.set(0, legacy);
    this.streams.add(legacy);

    const self = this;
    this.stats = {
      get totalBytes() {
        return self.capacity;
      },
      get inUseBytes() {
        return self.allocator.usedBytes;
      },
      get peakBytes() {
        return self.allocator.peakBytes;
      },
      get requestedBytes() {
        return self.requested;
      },
      get liveAllocations() {
        return self.blocks.length;
      },
      get pinnedHostBytes() {
        return self.pinnedBytes;
      },
      get pendingOps() {
        let n = 0;
        for (const s of self.streams) n += s.pendingWork;
        return n;
      },
      get executedOps() {
        return self.executed;
      },
      get kernelLaunches() {
        return self.launches;
      },
      get bytesHostToDevice() {
        return self.htod;
      },
      get bytesDeviceToHost() {
        return self.dtoh;
      },
    };
    // The addon's functions are plain functions (callable detached from the object) that check their
    // argument count, then each argument in order (native-arguments.ts), before anything else: so are these.
    const own = this as unknown as Record<string, unknown>;
    for (const name of CUDA_NATIVE_FUNCTIONS) {
      const method = this[name] as (...args: unknown[]) => unknown;
      const names = Object.keys(NATIVE_ARGUMENTS[name]);
      const kinds = Object.values(NATIVE_ARGUMENTS[name]);
      const arity = names.length;
      if (method.length !== arity)
        throw new Error(`emulated CUDA device: internal error: ${name} takes ${method.length} arguments, not ${arity}`);
      own[name] = (...args: unknown[]) => {
        if (args.length !== arity) {
          throw argError(
            args.length < arity ? "ERR_MISSING_ARGS" : "ERR_INVALID_ARG_COUNT",
            `${name} expects ${arity} argument${arity === 1 ? "" : "s"}, got ${args.length}`,
          );
        }
        checkArguments(name, names, kinds, args);
        return method.apply(this, args);
      };
    }
  }

  // ---- Device ----------------------------------------------------------------------------------

  readonly probe: CudaNative["probe"] = () => {
    return { ok: true, deviceCount: 1, runtimeVersion: 13000, driverVersion: 13000 };
  };

  readonly deviceProperties: CudaNative["deviceProperties"] = (device) => {
    this.checkDevice(`cudaGetDeviceProperties(device ${device})`, device);
    return {
      name: this.name,
      totalBytes: this.capacity,
      major: 9,
      minor: 0,
      multiprocessors: 132,
      l2CacheBytes: 50 * 2 ** 20,
      memoryBusWidthBits: 5120,
      sharedMemoryPerBlockOptinBytes: 232448,
      pciDomain: 0,
      pciBus: 1,
      pciDevice: 0,
      asyncEngines: 2,
    };
  };

  readonly setDevice: CudaNative["setDevice"] = (device) => {
    this.checkDevice(`cudaSetDevice(device ${device})`, device);
  };

  readonly memGetInfo: CudaNative["memGetInfo"] = () => {
    return { freeBytes: this.capacity - this.allocator.usedBytes, totalBytes: this.capacity };
  };

  readonly deviceSynchronize: CudaNative["deviceSynchronize"] = () => {
    this.drain([...this.streams].map((s) => [s, s.nextSeq] as const));
  };

  private checkDevice(call: string, device: number): void {
    if (device !== 0) throw cudaError(call, "cudaErrorInvalidDevice", "the emulated machine has one device, 0");
  }

  // ---- Device memory ---------------------------------------------------------------------------

  readonly malloc: CudaNative["malloc"] = (bytes) => {
    if (bytes === 0) return 0; // cudaMalloc(0) succeeds with the null pointer
    let reserved: DeviceBlock;
    try {
      reserved = this.allocator.allocate(bytes, "cudaMalloc");
    } catch (error) {
      if (error instanceof DeviceOutOfMemory)
        throw cudaError(`cudaMalloc(${bytes} bytes)`, "cudaErrorMemoryAllocation");
      throw error;
    }
    const offset = reserved.offset;
    this.blocks.splice(this.blockIndexAfter(offset), 0, { offset, requested: bytes, reserved });
    this.requested += bytes;
    this.bytes.fill(POISON_BYTE, offset, offset + reserved.bytes);
    return DEVICE_BASE + offset;
  };

  readonly free: CudaNative["free"] = (pointer) => {
    if (pointer === 0) return; // cudaFree(NULL) does nothing
    const index = this.blockIndexAfter(pointer - DEVICE_BASE) - 1;
    const block = this.blocks[index];
    if (!block || DEVICE_BASE + block.offset !== pointer) {
      throw cudaError(
        `cudaFree(${hex(pointer)})`,
        "cudaErrorInvalidValue",
        "not a pointer returned by malloc(), or already freed",
      );
    }
    // cudaFree waits for the device to be idle: nothing queued can touch the block afterwards.
    this.deviceSynchronize();
    this.blocks.splice(index, 1);
    this.requested -= block.requested;
    this.allocator.release(block.reserved);
  };

  /** Index of the first live block whose offset is > `offset` (so index - 1 may contain it). */
  private blockIndexAfter(offset: number): number {
    let lo = 0;
    let hi = this.blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.blocks[mid]!.offset <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Checks that [pointer, pointer + bytes) lies inside one live allocation and that the pointer has the
   * alignment its typed view needs; returns the byte range in device memory. Empty ranges are not checked.
   */
  private range(call: string, name: string, pointer: number, bytes: number, align = 1): Range {
    if (bytes === 0) return { name, offset: 0, bytes: 0 };
    const where = `${name} = ${hex(pointer)}, ${bytes} bytes`;
    if (pointer === 0)
      throw cudaError(call, "cudaErrorIllegalAddress", `${where}: null pointer (emulated device check)`);
    const offset = pointer - DEVICE_BASE;
    const block = this.blocks[this.blockIndexAfter(offset) - 1];
    if (!block || offset >= block.offset + block.requested) {
      throw cudaError(
        call,
        "cudaErrorIllegalAddress",
        `${where}: not inside any live allocation (emulated device check)`,
      );
    }
    const end = block.offset + block.requested;
    if (offset + bytes > end) {
      throw cudaError(
        call,
        "cudaErrorIllegalAddress",
        `${where}: runs ${offset + bytes - end} bytes past the end of its allocation ${hex(DEVICE_BASE + block.offset)} of ${block.requested} bytes (emulated device check)`,
      );
    }
    if (offset % align !== 0) {
      throw cudaError(
        call,
        "cudaErrorMisalignedAddress",
        `${where}: not ${align}-byte aligned for its ${align === 4 ? "fp32/int32" : "fp16"} values (emulated device check)`,
      );
    }
    return { name, offset, bytes };
  }

  /** Throws when two ranges overlap (a race on a GPU), unless `sameAllowed` and they are identical. */
  private disjoint(call: string, a: Range, b: Range, sameAllowed = false): void {
    if (a.bytes === 0 || b.bytes === 0) return;
    if (sameAllowed && a.offset === b.offset && a.bytes === b.bytes) return;
    if (a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes) {
      throw cudaError(
        call,
        "cudaErrorInvalidValue",
        `${a.name} [${hex(DEVICE_BASE + a.offset)}, +${a.bytes}) overlaps ${b.name} [${hex(DEVICE_BASE + b.offset)}, +${b.bytes}): the GPU kernel's result would be undefined (emulated device check)`,
      );
    }
  }

  private f32(r: Range, count: number): Float32Array {
    return count === 0 ? new Float32Array(0) : new Float32Array(this.memory, r.offset, count);
  }

  private u16(r: Range, count: number): Uint16Array {
    return count === 0 ? new Uint16Array(0) : new Uint16Array(this.memory, r.offset, count);
  }

  private i32(r: Range, count: number): Int32Array {
    return count === 0 ? new Int32Array(0) : new Int32Array(this.memory, r.offset, count);
  }

  private u8(r: Range): Uint8Array {
    return new Uint8Array(this.memory, r.offset, r.bytes);
  }

  // ---- Host memory -----------------------------------------------------------------------------

  readonly hostAlloc: CudaNative["hostAlloc"] = (bytes) => {
    const buffer = new ArrayBuffer(bytes);
    // hostAlloc(0) pins nothing: an ordinary empty buffer, as the addon returns.
    if (bytes > 0) {
      this.pinned.add(buffer);
      this.pinnedBytes += bytes;
    }
    return buffer;
  };

  readonly hostFree: CudaNative["hostFree"] = (buffer) => {
    if (isDetached(buffer))
      throw argError("ERR_INVALID_ARG_VALUE", "hostFree: the ArrayBuffer is detached (already freed by hostFree?)");
    if (buffer.byteLength > 0) {
      if (!this.pinned.has(buffer))
        throw argError(
          "ERR_INVALID_ARG_VALUE",
          `hostFree: the ArrayBuffer (${buffer.byteLength} bytes) is not a live buffer from hostAlloc()`,
        );
      const refs = this.pinnedRefs.get(buffer) ?? 0;
      if (refs > 0) {
        throw cudaError(
          `cudaFreeHost(${buffer.byteLength} bytes)`,
          "cudaErrorInvalidValue",
          `${refs} queued async cop${refs === 1 ? "y still uses" : "ies still use"} this buffer: synchronise with ${refs === 1 ? "it" : "them"} before freeing it (a use after free on a GPU; emulated device check)`,
        );
      }
      this.pinned.delete(buffer);
      this.pinnedBytes -= buffer.byteLength;
    }
    detach(buffer);
  };

  // ---- Streams and events ----------------------------------------------------------------------

  readonly streamCreate: CudaNative["streamCreate"] = () => {
    const handle = STREAM_HANDLE_BASE + HANDLE_STRIDE * this.nextStream++;
    const stream = new StreamState(handle);
    this.streamHandles.set(handle, stream);
    this.streams.add(stream);
    return handle;
  };

  readonly streamDestroy: CudaNative["streamDestroy"] = (stream) => {
    const call = `cudaStreamDestroy(stream ${hex(stream)})`;
    if (stream === 0)
      throw cudaError(call, "cudaErrorInvalidResourceHandle", "the legacy default stream cannot be destroyed");
    const state = this.stream(call, stream);
    // Queued work still runs (CUDA releases the stream once it is done).
    this.streamHandles.delete(stream);
    state.destroyed = true;
    if (state.pending === 0) this.streams.delete(state);
  };

  readonly streamSynchronize: CudaNative["streamSynchronize"] = (stream) => {
    const state = this.stream(`cudaStreamSynchronize(stream ${hex(stream)})`, stream);
    this.drain([[state, state.nextSeq]]);
  };

  readonly streamQuery: CudaNative["streamQuery"] = (stream) => {
    const state = this.stream(`cudaStreamQuery(stream ${hex(stream)})`, stream);
    this.settle();
    if (state.pending === 0) return true;
    this.maybeStep(state, state.nextSeq);
    return state.pending === 0;
  };

  readonly eventCreate: CudaNative["eventCreate"] = (timing) => {
    const handle = EVENT_HANDLE_BASE + HANDLE_STRIDE * this.nextEvent++;
    this.events.set(handle, { handle, timing, current: null });
    return handle;
  };

  readonly eventDestroy: CudaNative["eventDestroy"] = (event) => {
    this.event(`cudaEventDestroy(event ${hex(event)})`, event);
    // Records and waits already queued keep their markers; only the handle goes.
    this.events.delete(event);
  };

  readonly eventRecord: CudaNative["eventRecord"] = (event, stream) => {
    const call = `cudaEventRecord(event ${hex(event)}, stream ${hex(stream)})`;
    const e = this.event(call, event);
    const s = this.stream(call, stream);
    const marker: Marker = { stream: s, seq: s.nextSeq, done: false, time: 0 };
    s.push({ kind: "record", marker });
    e.current = marker;
    this.settle(); // on a stream with nothing queued, the event completes at once
  };

  readonly eventSynchronize: CudaNative["eventSynchronize"] = (event) => {
    const marker = this.event(`cudaEventSynchronize(event ${hex(event)})`, event).current;
    if (!marker || marker.done) return; // never recorded: returns at once, as in CUDA
    this.drain([[marker.stream, marker.seq + 1]]);
  };

  readonly eventQuery: CudaNative["eventQuery"] = (event) => {
    const marker = this.event(`cudaEventQuery(event ${hex(event)})`, event).current;
    if (!marker || marker.done) return true;
    this.maybeStep(marker.stream, marker.seq + 1);
    return marker.done;
  };

  readonly eventElapsedMs: CudaNative["eventElapsedMs"] = (start, end) => {
    const call = `cudaEventElapsedTime(start ${hex(start)}, end ${hex(end)})`;
    const a = this.event(call, start);
    const b = this.event(call, end);
    if (!a.timing || !b.timing)
      throw cudaError(call, "cudaErrorInvalidResourceHandle", "an event was created without timing");
    if (!a.current || !b.current)
      throw cudaError(call, "cudaErrorInvalidResourceHandle", "an event was never recorded");
    if (!a.current.done || !b.current.done)
      throw cudaError(call, "cudaErrorNotReady", "an event has not completed yet: synchronise with it first");
    // cudaEventElapsedTime returns a float.
    return Math.fround((b.current.time - a.current.time) * 1000);
  };

  readonly streamWaitEvent: CudaNative["streamWaitEvent"] = (stream, event) => {
    const call = `cudaStreamWaitEvent(stream ${hex(stream)}, event ${hex(event)})`;
    const s = this.stream(call, stream);
    const marker = this.event(call, event).current;
    if (!marker) return; // never recorded: nothing to wait for, as in CUDA
    s.push({ kind: "wait", marker });
    this.settle();
  };

  private stream(call: string, handle: number): StreamState {
    return live(this.streamHandles, "stream", call, handle);
  }

  private event(call: string, handle: number): EventState {
    return live(this.events, "event", call, handle);
  }

  // ---- The scheduler ---------------------------------------------------------------------------

  /** Queues a copy or kernel; deferred: false runs it at once. */
  private enqueue(stream: StreamState, name: string, seconds: number, run: () => void, pinned?: ArrayBuffer): void {
    if (pinned) this.pinnedRefs.set(pinned, (this.pinnedRefs.get(pinned) ?? 0) + 1);
    stream.push(pinned ? { kind: "work", name, seconds, run, pinned } : { kind: "work", name, seconds, run });
    if (!this.deferred) this.drain([[stream, stream.nextSeq]]);
  }

  /** Runs the head op of a stream (the caller checked that a wait there is satisfied). */
  private pop(stream: StreamState): void {
    const op = stream.shift();
    if (op.kind === "record") {
      op.marker.done = true;
      op.marker.time = stream.time;
    } else if (op.kind === "wait") {
      stream.time = Math.max(stream.time, op.marker.time);
    } else {
      try {
        op.run();
      } catch (error) {
        throw new Error(`${op.name} on stream ${hex(stream.handle)} failed when it ran: ${(error as Error).message}`, {
          cause: error,
        });
      } finally {
        stream.time += op.seconds;
        this.executed++;
        if (op.pinned) this.pinnedRefs.set(op.pinned, this.pinnedRefs.get(op.pinned)! - 1);
      }
    }
  }

  /**
   * Completes what takes no work: records whose preceding work has run, and waits whose event has
   * completed, at the head of any stream (repeatedly, as one may unblock another). Drops destroyed
   * streams once empty.
   */
  private settle(): void {
    let changed = true;
    while (changed) {
      changed = false;
      for (const s of this.streams) {
        for (let op = s.peek(); op && (op.kind === "record" || (op.kind === "wait" && op.marker.done)); op = s.peek()) {
          this.pop(s);
          changed = true;
        }
        if (s.destroyed && s.pending === 0) this.streams.delete(s);
      }
    }
  }

  /**
   * Runs queued ops until each target stream has run every op below its sequence number, running
   * exactly those and what they wait for (through streamWaitEvent), in a seeded interleaving of the
   * streams involved; at most `maxSteps` copies/kernels/records/waits.
   */
  private drain(targets: readonly (readonly [StreamState, number])[], maxSteps = Infinity): void {
    this.settle();
    // need: per stream, the sequence number below which everything must run. Computed with a
    // worklist, following each pending wait to the record it waits for.
    const need = new Map<StreamState, number>();
    const work = [...targets];
    while (work.length > 0) {
      const [s, until] = work.pop()!;
      const from = Math.max(need.get(s) ?? 0, s.doneSeq);
      if (until <= from) continue;
      need.set(s, until);
      for (let seq = from; seq < until; seq++) {
        const op = s.opAt(seq);
        if (op.kind === "wait" && !op.marker.done) work.push([op.marker.stream, op.marker.seq + 1]);
      }
    }
    for (let steps = 0; steps < maxSteps; steps++) {
      const ready: StreamState[] = [];
      let unfinished = false;
      for (const [s, until] of need) {
        if (s.doneSeq >= until) continue;
        unfinished = true;
        const op = s.peek()!;
        if (op.kind !== "wait" || op.marker.done) ready.push(s);
      }
      if (!unfinished) break;
      if (ready.length === 0) throw new Error("emulated CUDA device: internal error: queued work waits on itself");
      let candidates = ready;
      if (this.order !== "random" && ready.length > 1) {
        const waited = new Set(targets.map(([t]) => t));
        const preferred = ready.filter((r) => waited.has(r) === (this.order === "waited-first"));
        if (preferred.length > 0) candidates = preferred;
      }
      const s = candidates.length === 1 ? candidates[0]! : candidates[Math.floor(this.random() * candidates.length)]!;
      this.pop(s);
      this.settle();
    }
  }

  /** A query's progress: maybe one op toward the stream's position (never three idle queries in a row). */
  private maybeStep(stream: StreamState, until: number): void {
    if (this.idleQueries >= 2 || this.random() < 0.5) {
      this.idleQueries = 0;
      this.drain([[stream, until]], 1);
    } else {
      this.idleQueries++;
    }
  }

  // ---- Copies ----------------------------------------------------------------------------------

  readonly memcpyHtoD: CudaNative["memcpyHtoD"] = (dst, src, stream) => {
    const { buffer, offset: srcOffset, bytes } = hostBytes(src);
    const call = `cudaMemcpyAsync(HtoD, dst ${hex(dst)}, ${bytes} bytes, stream ${hex(stream)})`;
    if (bytes === 0) return;
    const s = this.stream(call, stream);
    const to = this.range(call, "dst", dst, bytes);
    const seconds = LAUNCH_SECONDS + bytes / PCIE_BYTES_PER_SECOND;
    if (buffer instanceof ArrayBuffer && this.pinned.has(buffer)) {
      // Pinned: the DMA reads the host bytes when the copy runs.
      this.enqueue(
        s,
        call,
        seconds,
        () => {
          if (buffer.byteLength < srcOffset + bytes)
            throw new Error("its pinned source buffer was detached (freed or transferred) before the copy ran");
          this.bytes.set(new Uint8Array(buffer, srcOffset, bytes), to.offset);
          this.htod += bytes;
        },
        buffer,
      );
    } else {
      // Pageable: CUDA stages the bytes before returning; the device write stays in stream order.
      const staged = new Uint8Array(buffer, srcOffset, bytes).slice();
      this.enqueue(s, call, seconds, () => {
        this.bytes.set(staged, to.offset);
        this.htod += bytes;
      });
    }
  };

  readonly memcpyDtoH: CudaNative["memcpyDtoH"] = (dst, src, stream) => {
    const { buffer, offset: dstOffset, bytes } = hostBytes(dst);
    const call = `cudaMemcpyAsync(DtoH, src ${hex(src)}, ${bytes} bytes, stream ${hex(stream)})`;
    if (bytes === 0) return;
    const s = this.stream(call, stream);
    const from = this.range(call, "src", src, bytes);
    const pinned = buffer instanceof ArrayBuffer && this.pinned.has(buffer);
    this.enqueue(
      s,
      call,
      LAUNCH_SECONDS + bytes / PCIE_BYTES_PER_SECOND,
      () => {
        if (buffer.byteLength < dstOffset + bytes)
          throw new Error("its destination host buffer was detached (freed or transferred) before the copy ran");
        new Uint8Array(buffer, dstOffset, bytes).set(this.bytes.subarray(from.offset, from.offset + bytes));
        this.dtoh += bytes;
      },
      pinned ? (buffer as ArrayBuffer) : undefined,
    );
    // Pageable: the call returns once the copy has completed, as CUDA's does.
    if (!pinned) this.drain([[s, s.nextSeq]]);
  };

  readonly memcpyDtoD: CudaNative["memcpyDtoD"] = (dst, src, bytes, stream) => {
    const call = `cudaMemcpyAsync(DtoD, dst ${hex(dst)}, src ${hex(src)}, ${bytes} bytes, stream ${hex(stream)})`;
    this.deviceCopy(call, src, dst, bytes, stream);
  };

  readonly copy: CudaNative["copy"] = (src, dst, bytes, stream) => {
    this.deviceCopy(`copy(bytes=${bytes})`, src, dst, bytes, stream, true);
  };

  private deviceCopy(call: string, src: number, dst: number, bytes: number, stream: number, kernel = false): void {
    if (bytes === 0) return;
    const s = this.stream(call, stream);
    const from = this.range(call, "src", src, bytes);
    const to = this.range(call, "dst", dst, bytes);
    this.disjoint(call, to, from, true);
    if (kernel) this.launches++;
    this.enqueue(s, call, LAUNCH_SECONDS + (2 * bytes) / DEVICE_BYTES_PER_SECOND, () => {
      this.bytes.copyWithin(to.offset, from.offset, from.offset + bytes);
    });
  }

  readonly memset: CudaNative["memset"] = (dst, byte, bytes, stream) => {
    const call = `cudaMemsetAsync(dst ${hex(dst)}, byte ${byte}, ${bytes} bytes, stream ${hex(stream)})`;
    if (bytes === 0) return;
    const s = this.stream(call, stream);
    const to = this.range(call, "dst", dst, bytes);
    this.enqueue(s, call, LAUNCH_SECONDS + bytes / DEVICE_BYTES_PER_SECOND, () =>
      this.bytes.fill(byte, to.offset, to.offset + bytes),
    );
  };

  // ---- Kernels (native/cuda/kernels.h) ---------------------------------------------------------
  // Each, its arguments checked (the constructor's wrapper), checks its stream and device ranges
  // (errors named as the addon names a failing launch: "linear(m=4, k=768, n=3072): ..."), then
  // queues the CPU reference computation on views of device memory. A launch with nothing to do
  // queues nothing. Each is a property typed by CudaNative, so its parameters are declared once
  // (native-api.ts).

  private launch(stream: StreamState, call: string, seconds: number, run: () => void): void {
    this.launches++;
    this.enqueue(stream, call, seconds, run);
  }

  readonly linear: CudaNative["linear"] = (x, w, bias, out, m, k, n, stream) => {
    const call = `linear(m=${m}, k=${k}, n=${n})`;
    const s = this.stream(call, stream);
    const xr = this.range(call, "x", x, m * k * 4, 4);
    const wr = this.range(call, "w", w, n * k * 2, 2);
    const br = bias === 0 ? null : this.range(call, "bias", bias, n * 4, 4);
    const or = this.range(call, "out", out, m * n * 4, 4);
    for (const input of br ? [xr, wr, br] : [xr, wr]) this.disjoint(call, or, input);
    if (m === 0 || n === 0) return;
    this.launch(s, call, kernelSeconds(2 * m * k * n, xr.bytes + wr.bytes + or.bytes), () => {
      let xs = this.f32(xr, m * k);
      // Above SPW_GEMV_MAX_ROWS the GPU runs fp16 tensor cores on x split into hi = fp16(x) and
      // lo = fp16(x - hi): the product sees x' = hi + lo (exact in fp32; products of halves are exact
      // in fp32, accumulation is fp32).
      if (m > GEMV_MAX_ROWS) xs = splitHalves(xs);
      const scratch = linearScratchLength(m, k);
      linearF16(
        xs,
        this.u16(wr, n * k),
        br ? this.f32(br, n) : undefined,
        this.f32(or, m * n),
        m,
        k,
        n,
        new Float32Array(scratch.tile),
        new Float32Array(scratch.out),
      );
    });
  };

  readonly layerNorm: CudaNative["layerNorm"] = (x, gamma, beta, out, rows, cols, eps, stream) => {
    const call = `layerNorm(rows=${rows}, cols=${cols})`;
    const s = this.stream(call, stream);
    const xr = this.range(call, "x", x, rows * cols * 4, 4);
    const gr = this.range(call, "gamma", gamma, cols * 4, 4);
    const br = this.range(call, "beta", beta, cols * 4, 4);
    const or = this.range(call, "out", out, rows * cols * 4, 4);
    this.disjoint(call, or, xr, true);
    this.disjoint(call, or, gr);
    this.disjoint(call, or, br);
    if (rows === 0 || cols === 0) return;
    // The launcher takes eps as a C float.
    const epsF32 = Math.fround(eps);
    this.launch(s, call, kernelSeconds(8 * rows * cols, 2 * xr.bytes), () => {
      layerNormCpu(
        this.f32(xr, rows * cols),
        this.f32(gr, cols),
        this.f32(br, cols),
        this.f32(or, rows * cols),
        rows,
        cols,
        epsF32,
      );
    });
  };

  readonly softmaxRows: CudaNative["softmaxRows"] = (x, rows, cols, stream) => {
    const call = `softmaxRows(rows=${rows}, cols=${cols})`;
    const s = this.stream(call, stream);
    const xr = this.range(call, "x", x, rows * cols * 4, 4);
    if (rows === 0 || cols === 0) return;
    this.launch(s, call, kernelSeconds(5 * rows * cols, 2 * xr.bytes), () =>
      softmaxRowsInPlace(this.f32(xr, rows * cols), rows, cols),
    );
  };

  /** heads · t · (past + t) floats (one score per head, new token and visible position), as kernels.cu. */
  readonly attentionScratchFloats: CudaNative["attentionScratchFloats"] = (t, past, heads) => {
    return heads * t * (past + t);
  };

  readonly attention: CudaNative["attention"] = (q, k, v, out, scratch, t, past, heads, headDim, stream) => {
    const call = `attention(t=${t}, past=${past}, heads=${heads}, headDim=${headDim})`;
    const s = this.stream(call, stream);
    const h = heads * headDim;
    const ctx = past + t;
    const qr = this.range(call, "q", q, t * h * 4, 4);
    const kr = this.range(call, "k", k, ctx * h * 4, 4);
    const vr = this.range(call, "v", v, ctx * h * 4, 4);
    const or = this.range(call, "out", out, t * h * 4, 4);
    const scratchFloats = h === 0 ? 0 : heads * t * ctx;
    const sr = this.range(call, "scratch", scratch, scratchFloats * 4, 4);
    for (const input of [qr, kr, vr, sr]) this.disjoint(call, or, input);
    for (const input of [qr, kr, vr]) this.disjoint(call, sr, input);
    if (t === 0 || h === 0) return;
    this.launch(s, call, kernelSeconds(4 * t * ctx * h, qr.bytes + kr.bytes + vr.bytes + or.bytes), () => {
      attentionCpu(
        this.f32(qr, t * h),
        this.f32(kr, ctx * h),
        this.f32(vr, ctx * h),
        this.f32(or, t * h),
        t,
        past,
        heads,
        headDim,
      );
      // The GPU leaves intermediate values in scratch: NaN here, so nothing relies on its contents.
      this.f32(sr, scratchFloats).fill(Number.NaN);
    });
  };

  readonly relu: CudaNative["relu"] = (x, n, stream) => {
    const call = `relu(n=${n})`;
    const s = this.stream(call, stream);
    const xr = this.range(call, "x", x, n * 4, 4);
    if (n === 0) return;
    this.launch(s, call, kernelSeconds(n, 2 * xr.bytes), () => reluInPlace(this.f32(xr, n)));
  };

  readonly add: CudaNative["add"] = (x, y, n, stream) => {
    const call = `add(n=${n})`;
    const s = this.stream(call, stream);
    const xr = this.range(call, "x", x, n * 4, 4);
    const yr = this.range(call, "y", y, n * 4, 4);
    this.disjoint(call, xr, yr, true);
    if (n === 0) return;
    this.launch(s, call, kernelSeconds(n, 3 * xr.bytes), () => addInPlace(this.f32(xr, n), this.f32(yr, n)));
  };

  readonly embedding: CudaNative["embedding"] = (table, ids, count, dim, rows, out, stream) => {
    const call = `embedding(count=${count}, dim=${dim}, rows=${rows})`;
    const s = this.stream(call, stream);
    const tr = this.range(call, "table", table, rows * dim * 2, 2);
    const ir = this.range(call, "ids", ids, count * 4, 4);
    const or = this.range(call, "out", out, count * dim * 4, 4);
    this.disjoint(call, or, tr);
    this.disjoint(call, or, ir);
    if (count === 0 || dim === 0) return;
    this.launch(s, call, kernelSeconds(0, count * dim * 6 + ir.bytes), () => {
      const tableValues = this.u16(tr, rows * dim);
      const idValues = this.i32(ir, count);
      const outValues = this.f32(or, count * dim);
      for (let i = 0; i < count; i++) {
        const id = idValues[i]!;
        const row = outValues.subarray(i * dim, (i + 1) * dim);
        if (id >= 0 && id < rows) fromFloat16Array(tableValues.subarray(id * dim, (id + 1) * dim), row);
        else row.fill(Number.NaN); // kernels.h: an id outside 0..rows-1 writes NaN across its row
      }
    });
  };

  readonly f32ToF16: CudaNative["f32ToF16"] = (x, out, n, stream) => {
    const call = `f32ToF16(n=${n})`;
    const s = this.stream(call, stream);
    const xr = this.range(call, "x", x, n * 4, 4);
    const or = this.range(call, "out", out, n * 2, 2);
    this.disjoint(call, or, xr);
    if (n === 0) return;
    this.launch(s, call, kernelSeconds(n, 6 * n), () => toFloat16Array(this.f32(xr, n), this.u16(or, n)));
  };

  readonly f16ToF32: CudaNative["f16ToF32"] = (x, out, n, stream) => {
    const call = `f16ToF32(n=${n})`;
    const s = this.stream(call, stream);
    const xr = this.range(call, "x", x, n * 2, 2);
    const or = this.range(call, "out", out, n * 4, 4);
    this.disjoint(call, or, xr);
    if (n === 0) return;
    this.launch(s, call, kernelSeconds(n, 6 * n), () => fromFloat16Array(this.u16(xr, n), this.f32(or, n)));
  };

  readonly q4Bytes: CudaNative["q4Bytes"] = (rowValues) => {
    return compressedBytes(rowValues);
  };

  readonly dequantize4F16: CudaNative["dequantize4F16"] = (stored, rows, rowValues, out, stream) => {
    this.dequantize4("dequantize4F16", stored, rows, rowValues, out, stream, 2);
  };

  readonly dequantize4F32: CudaNative["dequantize4F32"] = (stored, rows, rowValues, out, stream) => {
    this.dequantize4("dequantize4F32", stored, rows, rowValues, out, stream, 4);
  };

  private dequantize4(
    fn: string,
    stored: number,
    rows: number,
    rowValues: number,
    out: number,
    stream: number,
    outBytes: 2 | 4,
  ): void {
    const call = `${fn}(rows=${rows}, rowValues=${rowValues})`;
    const s = this.stream(call, stream);
    const rowBytes = compressedBytes(rowValues);
    // kernels.cu reads scales and minimums byte by byte: `stored` needs no alignment.
    const sr = this.range(call, "stored", stored, rows * rowBytes);
    const or = this.range(call, "out", out, rows * rowValues * outBytes, outBytes);
    this.disjoint(call, or, sr);
    if (rows === 0 || rowValues === 0) return;
    this.launch(s, call, kernelSeconds(2 * rows * rowValues, sr.bytes + or.bytes), () => {
      const storedBytes = this.u8(sr);
      const scratch = new Float32Array(
        Math.min(Math.ceil(rowValues / COMPRESSION_GROUP_SIZE), 256) * COMPRESSION_GROUP_SIZE,
      );
      const outF16 = outBytes === 2 ? this.u16(or, rows * rowValues) : null;
      const outF32 = outBytes === 4 ? this.f32(or, rows * rowValues) : null;
      for (let r = 0; r < rows; r++) {
        // tensor-codec reads scales through a Uint16Array: an odd address goes through an aligned copy.
        const rowStored = alignedForHalves(storedBytes.subarray(r * rowBytes, (r + 1) * rowBytes));
        if (outF16) decodeToFloat16(rowStored, rowValues, outF16.subarray(r * rowValues, (r + 1) * rowValues), scratch);
        else decode(rowStored, "q4", rowValues, outF32!.subarray(r * rowValues, (r + 1) * rowValues));
      }
    });
  }

  readonly quantize4: CudaNative["quantize4"] = (x, rows, rowValues, stored, stream) => {
    const call = `quantize4(rows=${rows}, rowValues=${rowValues})`;
    const s = this.stream(call, stream);
    const rowBytes = compressedBytes(rowValues);
    const xr = this.range(call, "x", x, rows * rowValues * 4, 4);
    const sr = this.range(call, "stored", stored, rows * rowBytes); // no alignment needed (kernels.cu writes bytes)
    this.disjoint(call, sr, xr);
    if (rows === 0 || rowValues === 0) return;
    this.launch(s, call, kernelSeconds(4 * rows * rowValues, xr.bytes + sr.bytes), () => {
      const values = this.f32(xr, rows * rowValues);
      const storedBytes = this.u8(sr);
      const groups = Math.ceil(rowValues / COMPRESSION_GROUP_SIZE);
      for (let r = 0; r < rows; r++)
        quantizeRow(
          values.subarray(r * rowValues, (r + 1) * rowValues),
          storedBytes.subarray(r * rowBytes, (r + 1) * rowBytes),
          groups,
        );
    });
  };

  readonly groupwiseBytes: CudaNative["groupwiseBytes"] = (values, bits) => {
    return quantizedByteLength(values, bits as ExpertBits);
  };

  readonly dequantizeGroupwiseF32: CudaNative["dequantizeGroupwiseF32"] = (stored, values, bits, out, stream) => {
    const b = bits as ExpertBits;
    const call = `dequantizeGroupwiseF32(values=${values}, bits=${bits})`;
    const s = this.stream(call, stream);
    // Codes, scales and minimums are read byte by byte; only plain fp16 (16 bits) needs 2-byte alignment.
    const sr = this.range(call, "stored", stored, quantizedByteLength(values, b), b === 16 ? 2 : 1);
    const or = this.range(call, "out", out, values * 4, 4);
    this.disjoint(call, or, sr);
    if (values === 0) return;
    this.launch(s, call, kernelSeconds(2 * values, sr.bytes + or.bytes), () =>
      dequantizeGroupwise(this.u8(sr), b, values, 0, values, this.f32(or, values)),
    );
  };

  /** out = x · wᵀ for w stored at `bits`: the CPU's dequantising linear (16 bits: spw_linear's numerics, tensor cores above 8 rows). */
  private groupwiseProduct(
    x: Float32Array,
    w: Uint8Array,
    bits: ExpertBits,
    out: Float32Array,
    m: number,
    k: number,
    n: number,
    bias?: Float32Array,
  ) {
    const scratch = linearScratchLength(m, k);
    const xs = bits === 16 && m > GEMV_MAX_ROWS ? splitHalves(x) : x;
    linearQuantized(
      xs,
      w,
      out,
      { m, k, n, bits },
      { tile: new Float32Array(scratch.tile), out: new Float32Array(scratch.out) },
      bias,
    );
  }

  readonly linearGroupwise: CudaNative["linearGroupwise"] = (x, w, bits, out, m, k, n, stream) => {
    this.groupwiseLinear("linearGroupwise", x, w, bits, undefined, out, m, k, n, stream);
  };

  /** linearGroupwise and linearGroupwiseBias: the same checks and product, the bias (if any) added per column. */
  private groupwiseLinear(
    fn: string,
    x: number,
    w: number,
    bits: number,
    bias: number | undefined,
    out: number,
    m: number,
    k: number,
    n: number,
    stream: number,
  ): void {
    const b = bits as ExpertBits;
    const call = `${fn}(bits=${bits}, m=${m}, k=${k}, n=${n})`;
    const s = this.stream(call, stream);
    const xr = this.range(call, "x", x, m * k * 4, 4);
    const wr = this.range(call, "w", w, quantizedByteLength(n * k, b), b === 16 ? 2 : 1);
    const br = bias === undefined ? undefined : this.range(call, "bias", bias, n * 4, 4);
    const or = this.range(call, "out", out, m * n * 4, 4);
    for (const input of br ? [xr, wr, br] : [xr, wr]) this.disjoint(call, or, input);
    if (m === 0 || n === 0) return;
    this.launch(s, call, kernelSeconds(2 * m * k * n, xr.bytes + wr.bytes + (br?.bytes ?? 0) + or.bytes), () =>
      this.groupwiseProduct(
        this.f32(xr, m * k),
        this.u8(wr),
        b,
        this.f32(or, m * n),
        m,
        k,
        n,
        br ? this.f32(br, n) : undefined,
      ),
    );
  }

  readonly expertSwiglu: CudaNative["expertSwiglu"] = (x, expert, bits, m, hidden, ffn, scratch, out, stream) => {
    const b = bits as ExpertBits;
    const call = `expertSwiglu(bits=${bits}, m=${m}, hidden=${hidden}, ffn=${ffn})`;
    const s = this.stream(call, stream);
    const matrixBytes = quantizedByteLength(hidden * ffn, b);
    const xr = this.range(call, "x", x, m * hidden * 4, 4);
    const er = this.range(call, "expert", expert, 3 * matrixBytes, b === 16 ? 2 : 1);
    const sr = this.range(call, "scratch", scratch, 2 * m * ffn * 4, 4);
    const or = this.range(call, "out", out, m * hidden * 4, 4);
    for (const [a, c] of [
      [or, xr],
      [or, er],
      [or, sr],
      [sr, xr],
      [sr, er],
    ] as const)
      this.disjoint(call, a, c);
    if (m === 0 || hidden === 0) return;
    this.launch(s, call, kernelSeconds(6 * m * hidden * ffn, xr.bytes + er.bytes + sr.bytes + or.bytes), () => {
      const weights = this.u8(er);
      const gate = this.f32(sr, m * ffn);
      const up = new Float32Array(this.memory, sr.offset + m * ffn * 4, m * ffn);
      const xs = this.f32(xr, m * hidden);
      this.groupwiseProduct(xs, weights.subarray(0, matrixBytes), b, gate, m, hidden, ffn);
      this.groupwiseProduct(xs, weights.subarray(matrixBytes, 2 * matrixBytes), b, up, m, hidden, ffn);
      siluGateInPlace(gate, up, m * ffn);
      this.groupwiseProduct(gate, weights.subarray(2 * matrixBytes), b, this.f32(or, m * hidden), m, ffn, hidden);
    });
  };

  readonly linearGroupwiseBias: CudaNative["linearGroupwiseBias"] = (x, w, bits, bias, out, m, k, n, stream) => {
    this.groupwiseLinear("linearGroupwiseBias", x, w, bits, bias, out, m, k, n, stream);
  };

  readonly rmsNorm: CudaNative["rmsNorm"] = (x, weight, out, rows, cols, eps, stream) => {
    const call = `rmsNorm(rows=${rows}, cols=${cols})`;
    const s = this.stream(call, stream);
    const xr = this.range(call, "x", x, rows * cols * 4, 4);
    const wr = this.range(call, "weight", weight, cols * 4, 4);
    const or = this.range(call, "out", out, rows * cols * 4, 4);
    this.disjoint(call, or, xr, true);
    this.disjoint(call, or, wr);
    if (rows === 0 || cols === 0) return;
    // The launcher takes eps as a C double (the CPU's float64 arithmetic).
    this.launch(s, call, kernelSeconds(4 * rows * cols, 2 * xr.bytes), () =>
      rmsNormCpu(this.f32(xr, rows * cols), this.f32(wr, cols), this.f32(or, rows * cols), rows, cols, eps),
    );
  };

  readonly rope: CudaNative["rope"] = (x, rows, heads, headDim, rowsPerSequence, past, theta, stream) => {
    const call = `rope(rows=${rows}, heads=${heads}, headDim=${headDim})`;
    const s = this.stream(call, stream);
    if (headDim % 2 !== 0 || (rows > 0 && rowsPerSequence === 0) || !(theta > 0))
      throw cudaError(call, "cudaErrorInvalidValue", "headDim must be even, rowsPerSequence and theta positive");
    const xr = this.range(call, "x", x, rows * heads * headDim * 4, 4);
    if (rows === 0 || heads === 0 || headDim === 0) return;
    this.launch(s, call, kernelSeconds(6 * rows * heads * headDim, 2 * xr.bytes), () => {
      const values = this.f32(xr, rows * heads * headDim);
      const rotary = new Rope(headDim, theta);
      for (let r = 0; r < rows; r++) rotary.apply(values, r, heads, past + (r % rowsPerSequence));
    });
  };

  readonly gqaAttention: CudaNative["gqaAttention"] = (
    q,
    k,
    v,
    out,
    scratch,
    t,
    past,
    heads,
    kvHeads,
    headDim,
    stream,
  ) => {
    const call = `gqaAttention(t=${t}, past=${past}, heads=${heads}, kvHeads=${kvHeads}, headDim=${headDim})`;
    const s = this.stream(call, stream);
    if (heads > 0 && (kvHeads === 0 || heads % kvHeads !== 0))
      throw cudaError(call, "cudaErrorInvalidValue", "heads must be a multiple of kvHeads");
    const ctx = past + t;
    const qr = this.range(call, "q", q, t * heads * headDim * 4, 4);
    const kr = this.range(call, "k", k, ctx * kvHeads * headDim * 4, 4);
    const vr = this.range(call, "v", v, ctx * kvHeads * headDim * 4, 4);
    const or = this.range(call, "out", out, t * heads * headDim * 4, 4);
    const scratchFloats = heads * headDim === 0 ? 0 : heads * t * ctx;
    const sr = this.range(call, "scratch", scratch, scratchFloats * 4, 4);
    for (const input of [qr, kr, vr, sr]) this.disjoint(call, or, input);
    for (const input of [qr, kr, vr]) this.disjoint(call, sr, input);
    if (t === 0 || heads === 0 || headDim === 0) return;
    const flops = 4 * t * ctx * heads * headDim;
    this.launch(s, call, kernelSeconds(flops, qr.bytes + kr.bytes + vr.bytes + or.bytes), () => {
      gqaAttentionCpu(
        this.f32(qr, t * heads * headDim),
        this.f32(kr, ctx * kvHeads * headDim),
        this.f32(vr, ctx * kvHeads * headDim),
        this.f32(or, t * heads * headDim),
        t,
        past,
        heads,
        kvHeads,
        headDim,
        new Float32Array(ctx),
      );
      this.f32(sr, scratchFloats).fill(Number.NaN); // nothing may rely on what the GPU leaves there
    });
  };

  readonly moeCombine: CudaNative["moeCombine"] = (x, outputs, weights, rows, k, cols, stream) => {
    const call = `moeCombine(rows=${rows}, k=${k}, cols=${cols})`;
    const s = this.stream(call, stream);
    const xr = this.range(call, "x", x, rows * cols * 4, 4);
    const or = this.range(call, "outputs", outputs, rows * k * cols * 4, 4);
    const wr = this.range(call, "weights", weights, rows * k * 4, 4);
    this.disjoint(call, xr, or);
    this.disjoint(call, xr, wr);
    if (rows === 0 || cols === 0) return;
    this.launch(s, call, kernelSeconds(2 * rows * k * cols, 2 * xr.bytes + or.bytes), () => {
      const xs = this.f32(xr, rows * cols);
      const outs = this.f32(or, rows * k * cols);
      const ws = this.f32(wr, rows * k);
      // As mixtral-model.ts sums them: in rank order, each product added (and rounded) in turn.
      for (let row = 0; row < rows; row++)
        for (let r = 0; r < k; r++) {
          const weight = ws[row * k + r]!;
          const base = (row * k + r) * cols;
          for (let c = 0; c < cols; c++) xs[row * cols + c]! += weight * outs[base + c]!;
        }
    });
  };

  readonly gatherRows: CudaNative["gatherRows"] = (src, srcRows, index, rows, cols, dst, stream) => {
    this.rowsByIndex("gatherRows", src, srcRows, index, rows, cols, dst, rows, stream);
  };

  readonly scatterRows: CudaNative["scatterRows"] = (src, index, rows, cols, dst, dstRows, stream) => {
    this.rowsByIndex("scatterRows", src, rows, index, rows, cols, dst, dstRows, stream);
  };

  /** kernels.h spw_gather_rows (dst[i] = src[index[i]]) and spw_scatter_rows (dst[index[i]] = src[i]). */
  private rowsByIndex(
    fn: "gatherRows" | "scatterRows",
    src: number,
    srcRows: number,
    index: number,
    rows: number,
    cols: number,
    dst: number,
    dstRows: number,
    stream: number,
  ): void {
    const call = `${fn}(rows=${rows}, cols=${cols}, ${fn === "gatherRows" ? `srcRows=${srcRows}` : `dstRows=${dstRows}`})`;
    const s = this.stream(call, stream);
    const sr = this.range(call, "src", src, srcRows * cols * 4, 4);
    const ir = this.range(call, "index", index, rows * 4, 4);
    const dr = this.range(call, "dst", dst, dstRows * cols * 4, 4);
    this.disjoint(call, dr, sr);
    this.disjoint(call, dr, ir);
    if (rows === 0 || cols === 0) return;
    this.launch(s, call, kernelSeconds(0, 2 * rows * cols * 4 + ir.bytes), () => {
      const from = this.f32(sr, srcRows * cols);
      const to = this.f32(dr, dstRows * cols);
      const indices = this.i32(ir, rows);
      for (let i = 0; i < rows; i++) {
        const at = indices[i]!;
        if (fn === "gatherRows") {
          const row = to.subarray(i * cols, (i + 1) * cols);
          if (at >= 0 && at < srcRows) row.set(from.subarray(at * cols, (at + 1) * cols));
          else row.fill(Number.NaN); // kernels.h: an index outside the source writes NaN across its row
        } else if (at >= 0 && at < dstRows) {
          to.set(from.subarray(i * cols, (i + 1) * cols), at * cols);
        }
      }
    });
  }

  /** kernels.h spw_router_top_k, as the CPU backend's lookahead computes it (route() per row, renormalised). */
  readonly routerTopK: CudaNative["routerTopK"] = (logits, rows, experts, k, outExperts, outWeights, stream) => {
    const call = `routerTopK(rows=${rows}, experts=${experts}, k=${k})`;
    const s = this.stream(call, stream);
    if (rows < 0 || experts < 0 || k < 1 || k > experts)
      throw cudaError(call, "cudaErrorInvalidValue", "rows must be >= 0 and k 1 .. experts");
    const lr = this.range(call, "logits", logits, rows * experts * 4, 4);
    const er = this.range(call, "outExperts", outExperts, rows * k * 4, 4);
    const wr = this.range(call, "outWeights", outWeights, rows * k * 4, 4);
    this.disjoint(call, er, lr);
    this.disjoint(call, wr, lr);
    this.disjoint(call, er, wr);
    if (rows === 0) return;
    this.launch(s, call, kernelSeconds(rows * k * experts, lr.bytes + er.bytes + wr.bytes), () => {
      const values = this.f32(lr, rows * experts);
      const chosen = this.i32(er, rows * k);
      const weights = this.f32(wr, rows * k);
      for (let row = 0; row < rows; row++)
        route(
          values.subarray(row * experts, (row + 1) * experts),
          k,
          chosen.subarray(row * k, (row + 1) * k),
          weights.subarray(row * k, (row + 1) * k),
        );
    });
  };

  readonly sigmoidGatedAdd: CudaNative["sigmoidGatedAdd"] = (x, y, gate, rows, cols, stream) => {
    const call = `sigmoidGatedAdd(rows=${rows}, cols=${cols})`;
    const s = this.stream(call, stream);
    const xr = this.range(call, "x", x, rows * cols * 4, 4);
    const yr = this.range(call, "y", y, rows * cols * 4, 4);
    const gr = this.range(call, "gate", gate, rows * 4, 4);
    this.disjoint(call, xr, yr);
    this.disjoint(call, xr, gr);
    if (rows === 0 || cols === 0) return;
    this.launch(s, call, kernelSeconds(2 * rows * cols, 3 * xr.bytes), () => {
      const xs = this.f32(xr, rows * cols);
      const ys = this.f32(yr, rows * cols);
      const gs = this.f32(gr, rows);
      // As mixtral-model.ts's shared expert: the gate in float64, each sum rounded once.
      for (let row = 0; row < rows; row++) {
        const g = 1 / (1 + Math.exp(-gs[row]!));
        for (let c = 0; c < cols; c++) xs[row * cols + c]! += g * ys[row * cols + c]!;
      }
    });
  };

  readonly argmaxRows: CudaNative["argmaxRows"] = (x, rows, cols, out, stream) => {
    const call = `argmaxRows(rows=${rows}, cols=${cols})`;
    const s = this.stream(call, stream);
    const xr = this.range(call, "x", x, rows * cols * 4, 4);
    const or = this.range(call, "out", out, rows * 4, 4);
    this.disjoint(call, or, xr);
    if (rows === 0) return;
    this.launch(s, call, kernelSeconds(rows * cols, xr.bytes), () => {
      const outValues = this.i32(or, rows);
      // A row of no values has no maximum: index 0, as for a row of only NaN or -inf (as kernels.cu).
      if (cols === 0) outValues.fill(0);
      else argmaxRowsCpu(this.f32(xr, rows * cols), rows, cols, outValues);
    });
  };

  readonly argmaxMerge: CudaNative["argmaxMerge"] = (x, rows, cols, colOffset, bestValue, bestIndex, first, stream) => {
    const call = `argmaxMerge(rows=${rows}, cols=${cols}, colOffset=${colOffset})`;
    const s = this.stream(call, stream);
    const xr = this.range(call, "x", x, rows * cols * 4, 4);
    const vr = this.range(call, "bestValue", bestValue, rows * 4, 4);
    const ir = this.range(call, "bestIndex", bestIndex, rows * 4, 4);
    this.disjoint(call, vr, xr);
    this.disjoint(call, ir, xr);
    this.disjoint(call, ir, vr);
    if (rows === 0) return;
    this.launch(s, call, kernelSeconds(rows * cols, xr.bytes), () => {
      const values = this.f32(xr, rows * cols);
      const best = this.f32(vr, rows);
      const index = this.i32(ir, rows);
      for (let r = 0; r < rows; r++) {
        if (first) {
          best[r] = -Infinity;
          index[r] = 0;
        }
        if (cols === 0) continue;
        const i = argmaxRowsCpu(values.subarray(r * cols, (r + 1) * cols), 1, cols)[0]!;
        const v = values[r * cols + i]!;
        // Strictly greater, as the CPU backend's finishHeads merges chunks: a tie keeps the earlier chunk.
        if (v > best[r]!) {
          best[r] = v;
          index[r] = colOffset + i;
        }
      }
    });
  };
}

/** x' = fp16(x) + fp16(x - fp16(x)) per value: what the tensor-core GEMM multiplies (kernels.h). */
export function splitHalves(x: Float32Array): Float32Array {
  const hi = fromFloat16Array(toFloat16Array(x));
  const residual = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) residual[i] = x[i]! - hi[i]!;
  const lo = fromFloat16Array(toFloat16Array(residual));
  for (let i = 0; i < x.length; i++) hi[i] = hi[i]! + lo[i]!;
  return hi;
}

/** The bytes themselves when they start at an even address, else an aligned copy (for Uint16Array views). */
function alignedForHalves(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
}

/** Whether an ArrayBuffer has been detached (Node 20 lacks ArrayBuffer.prototype.detached). */
function isDetached(buffer: ArrayBuffer): boolean {
  const detached = (buffer as ArrayBuffer & { detached?: boolean }).detached;
  if (typeof detached === "boolean") return detached;
  if (buffer.byteLength > 0) return false;
  try {
    new Uint8Array(buffer); // throws on a detached buffer
    return false;
  } catch {
    return true;
  }
}

/** Detaches a buffer (byteLength 0 afterwards). Node 20 has no ArrayBuffer.prototype.transfer. */
function detach(buffer: ArrayBuffer): void {
  const transfer = (buffer as ArrayBuffer & { transfer?: () => ArrayBuffer }).transfer;
  if (typeof transfer === "function") transfer.call(buffer);
  else structuredClone(buffer, { transfer: [buffer] });
}

/**
 * One row of spw_quantize4: tensor-codec's encode (bit-exact with quantize4bit), except that a group
 * holding NaN or a value beyond fp16's range, where the CPU throws, is written as codes 0xFF and scale
 * and minimum NaN (0x7E00), as kernels.h specifies; the other groups are unaffected.
 */
function quantizeRow(values: Float32Array, out: Uint8Array, groups: number): void {
  let bad: number[] | null = null;
  for (let g = 0; g < groups; g++) {
    const end = Math.min((g + 1) * COMPRESSION_GROUP_SIZE, values.length);
    for (let i = g * COMPRESSION_GROUP_SIZE; i < end; i++) {
      const v = values[i]!;
      if (!(v >= -HALF_MAX && v <= HALF_MAX)) {
        (bad ??= []).push(g);
        break;
      }
    }
  }
  if (!bad) {
    encode(values, "q4", out);
    return;
  }
  const cleaned = values.slice();
  for (const g of bad)
    cleaned.fill(0, g * COMPRESSION_GROUP_SIZE, Math.min((g + 1) * COMPRESSION_GROUP_SIZE, values.length));
  encode(cleaned, "q4", out);
  const halves = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const scalesAt = groups * Q4_CODE_BYTES_PER_GROUP;
  for (const g of bad) {
    out.fill(0xff, g * Q4_CODE_BYTES_PER_GROUP, (g + 1) * Q4_CODE_BYTES_PER_GROUP);
    halves.setUint16(scalesAt + 2 * g, HALF_NAN_BITS, true);
    halves.setUint16(scalesAt + 2 * groups + 2 * g, HALF_NAN_BITS, true);
  }
}
