/**
 * Runs an OPT model for real under a plan on the CPU backend: every weight tensor, KV sequence and
 * hidden state lives on the tier the plan's realized placement says (device arena, host memory, or
 * offload files), moves between tiers with real copies and real file I/O, and the zig-zag schedule
 * (token → layer → GPU batch) computes real tokens. Every step is timed and recorded as the same tasks
 * the simulator uses, so predicted and measured schedules compare directly.
 *
 * Numerics do not depend on placement: weights are fp16 or 4-bit wherever they live, hidden states are
 * fp16 between layers, KV rows fp16 or 4-bit, and each layer computes in fp32 over the same sequence
 * chunks, so any placement of a policy yields exactly the tokens of its all-on-device reference.
 */

import { KERNEL_TILE_ROWS, layerWorkingValues } from "../core/layer-working-set.js";
import type { Link } from "../core/links.js";
import { layerWeightTensors, type ModelSpec } from "../core/model-spec.js";
import type { Policy } from "../core/policy.js";
import { embeddingTensors, HEAD_CHUNK_BYTES, placeTensors } from "../core/realize-placement.js";
import type { Resource } from "../core/resources.js";
import type { Tier } from "../core/tiers.js";
import type { Workload } from "../core/workload.js";
import type { PolicyCostContext } from "../planner/spillway/evaluate-policy.js";
import type { TaskKind } from "../simulator/task.js";
import { chunkSequences } from "./chunk-sequences.js";
import { type CpuBufferTypes, CpuDeviceOps } from "./cpu-device-ops.js";
import type { DeviceArena, DeviceBlock } from "./device-arena.js";
import type { DiskStore } from "./disk-store.js";
import { fromFloat16Array } from "./fp16.js";
import { attentionScratchLength } from "./kernels/attention.js";
import { OPT_POSITION_OFFSET } from "./kernels/embedding.js";
import { LINEAR_TILE_ROWS } from "./kernels/linear-f16.js";
import type { OptWeights } from "./opt-checkpoint.js";
import {
  attendOverStoredRows,
  embedSequence,
  encodeNewRows,
  headFeatures,
  layerChunk,
  layerWeightsOf,
  type OptLayerShape,
  scoreHeadChunk,
} from "./opt-forward.js";
import { encodeQuantized, type ParallelEncoder } from "./parallel-encoder.js";
import { elementCount } from "./safetensors.js";
import { decodeRange, type Encoding, encodedByteLength, rowChunkBytes } from "./tensor-codec.js";
import type { TransferAction } from "./transfer-action.js";
import { sharedBytes, type TransferEngine, type TransferId } from "./transfer-engine.js";

/** Host memory in use (bytes), with its peak. */
export class HostLedger {
  inUseBytes = 0;
  peakBytes = 0;
  add(bytes: number): void {
    this.inUseBytes += bytes;
    this.peakBytes = Math.max(this.peakBytes, this.inUseBytes);
  }
  remove(bytes: number): void {
    this.inUseBytes -= bytes;
  }
}

export interface Where {
  readonly token: number;
  readonly layer: number;
  readonly batch: number;
}

export interface StepRecorder {
  record<T>(kind: TaskKind, resource: Resource, bytes: number, where: Where, work: () => T): T;
}

/** What a transfer was for, as the trace names it. */
export interface TransferMeta {
  readonly kind: TaskKind;
  readonly where: Where;
}

export type Transfers = TransferEngine<TransferMeta>;

interface StoredTensor {
  readonly name: string;
  readonly values: number;
  readonly encoding: Encoding;
  readonly bytes: number;
  readonly tier: Tier;
  /** Host tier: the bytes. */
  readonly host?: Uint8Array;
  /** Device tier: the resident block. */
  readonly device?: DeviceBlock;
  /** Disk tier: the offload file key. */
  readonly diskKey?: string;
}

/** A layer's weights on their way to the device: the buffer is allocated, the transfers submitted. */
export interface PendingLayer {
  readonly tensors: readonly StoredTensor[];
  readonly where: Where;
  readonly blocks: DeviceBlock[];
  readonly onDevice: Map<string, Uint8Array>;
  /** Finishes when every off-device tensor is in the device buffer. */
  readonly arrived: TransferId;
  readonly staging?: Uint8Array;
}

/** A step's off-GPU KV on its way: host staging read from disk, and (GPU attention) the device copy. */
export interface PendingCache {
  readonly hostStaging?: Uint8Array;
  readonly staged?: DeviceBlock;
  readonly arrived: TransferId;
}

/** A layer's weights as the compute sees them: fp16 matrices and fp32 vectors, wherever they came from. */
export interface ReadyLayer {
  readonly matrices: Map<string, Uint16Array>;
  readonly vectors: Map<string, Float32Array>;
  readonly blocks: DeviceBlock[];
}

const MATRIX_TILE_ROWS = LINEAR_TILE_ROWS;
if (KERNEL_TILE_ROWS !== LINEAR_TILE_ROWS)
  throw new Error("the planner's kernel tile rows differ from the linear kernel's");

export class OptRunner {
  private readonly model: ModelSpec;
  private readonly layers: StoredTensor[][] = [];
  private embedding: StoredTensor[] = [];
  private readonly h: number;
  private readonly kvRowBytes: number;
  private readonly kvEncoding: Encoding;
  private readonly seqs: Readonly<Record<Tier, number>>;
  private readonly maxContext: number;
  /** Device KV blocks [layer][batch] for GPU sequences; host KV arrays for CPU sequences. */
  private readonly deviceCache: DeviceBlock[][] = [];
  private readonly hostCache: Uint8Array[][] = [];
  /** [layer][batch]: the last transfer that stored new KV rows there (the next token's loads wait for it). */
  private readonly cacheStored: TransferId[][] = [];

  constructor(
    private readonly weights: OptWeights,
    private readonly policy: Policy,
    private readonly workload: Workload,
    private readonly context: PolicyCostContext,
    private readonly arena: DeviceArena,
    private readonly host: HostLedger,
    private readonly disk: DiskStore,
    private readonly recorder: StepRecorder,
    private readonly transfers: Transfers,
  ) {
    this.model = weights.model;
    this.h = this.model.hiddenSize;
    this.kvEncoding = policy.compressCache ? "q4" : "f16";
    this.kvRowBytes = encodedByteLength(this.h, this.kvEncoding);
    this.seqs = context.realized.cacheSequences;
    this.maxContext = workload.promptLen + workload.genLen;
  }

  // ---------------------------------------------------------------------------------------------
  // Placement

  /**
   * Reads tensor `name` from the checkpoint straight into its encoded place on `tier`, or places its
   * bytes `encoded` already (on a shared array: the host tier keeps that array).
   */
  private store(name: string, encoding: Encoding, tier: Tier, encoded?: Uint8Array): StoredTensor {
    const values = elementCount(this.weights.info(name).shape);
    const bytes = encodedByteLength(values, encoding);
    const base = { name, values, encoding, bytes, tier };
    const read = (out?: Uint8Array) => {
      if (!encoded) return this.weights.encoded(name, encoding, out);
      out?.set(encoded);
      return out ?? encoded;
    };
    if (tier === "gpu") {
      const block = this.arena.allocate(bytes, `resident ${name}`);
      read(this.arena.uint8(block, bytes));
      return { ...base, device: block };
    }
    if (tier === "cpu") {
      this.host.add(bytes);
      return { ...base, host: encoded ?? read(sharedBytes(bytes)) };
    }
    this.disk.write(name, read());
    return { ...base, diskKey: name };
  }

  private encodingOf(matrix: boolean): Encoding {
    return matrix && this.policy.compressWeight ? "q4" : "f16";
  }

  /** Puts every tensor, KV block and buffer where the plan says. */
  async place(encoder?: ParallelEncoder): Promise<void> {
    const specs = layerWeightTensors(this.model);
    const isMatrix = (name: string) => name.endsWith(".weight") && !name.includes("norm");
    // Layer by layer: its 4-bit tensors quantised on the encoder's threads, then each stored.
    const placeAll = async (tensors: { name: string; encoding: Encoding; tier: Tier }[]) => {
      const encoded = await encodeQuantized(encoder, this.weights, tensors);
      return tensors.map((t) => this.store(t.name, t.encoding, t.tier, encoded.get(t.name)));
    };
    for (let layer = 0; layer < this.model.numLayers; layer++) {
      const names = this.weights.layerTensorNames(layer);
      const tensors = placeTensors(specs, this.policy.weights).map(({ tensor, tier }, i) => ({
        name: names[i]!,
        encoding: this.encodingOf(isMatrix(tensor.name)),
        tier,
      }));
      this.layers.push(await placeAll(tensors));
    }
    // Embeddings in the planner's groups: the token table, then positions, norms and projections together.
    const groups = embeddingTensors(this.model);
    const groupTiers = placeTensors(groups, this.context.realized.weights);
    this.embedding = await placeAll(
      this.weights.embeddingTensorNames().map((name) => {
        const tokenTable = name.endsWith("embed_tokens.weight");
        return {
          name,
          encoding: this.encodingOf(tokenTable),
          tier: groupTiers[tokenTable ? 0 : 1]?.tier ?? groupTiers[0]!.tier,
        };
      }),
    );
    // KV cache, allocated for the whole prompt and generation as the planner counts it.
    for (let layer = 0; layer < this.model.numLayers; layer++) {
      this.deviceCache.push([]);
      this.hostCache.push([]);
      this.cacheStored.push(new Array<TransferId>(this.policy.numGpuBatches).fill(0));
      for (let batch = 0; batch < this.policy.numGpuBatches; batch++) {
        const gpuBytes = this.seqs.gpu * 2 * this.maxContext * this.kvRowBytes;
        this.deviceCache[layer]!.push(
          this.arena.allocate(gpuBytes, `KV cache of GPU sequences (layer ${layer}, batch ${batch})`),
        );
        const cpuBytes = this.seqs.cpu * 2 * this.maxContext * this.kvRowBytes;
        this.hostCache[layer]!.push(sharedBytes(cpuBytes));
        this.host.add(cpuBytes);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Moving weights

  private submit(
    stream: Link,
    kind: TaskKind,
    where: Where,
    actions: TransferAction[],
    deps: (TransferId | undefined)[] = [],
  ): TransferId {
    return this.transfers.submit(stream, actions, deps, { kind, where });
  }

  /**
   * Starts bringing a group of tensors to the device: disk files are read into a host staging buffer,
   * then host and staged bytes are copied into one device buffer. Returns at once; readyLayer() waits.
   */
  issueTensors(tensors: readonly StoredTensor[], where: Where): PendingLayer {
    const blocks: DeviceBlock[] = [];
    const onDevice = new Map<string, Uint8Array>();
    const offDevice = tensors.filter((t) => t.tier !== "gpu");
    for (const t of tensors) if (t.tier === "gpu") onDevice.set(t.name, this.arena.uint8(t.device!, t.bytes));
    const fromDisk = offDevice.filter((t) => t.tier === "disk");
    const diskBytes = fromDisk.reduce((s, t) => s + t.bytes, 0);
    let staging: Uint8Array | undefined;
    let read: TransferId = 0;
    const stagedAt = new Map<StoredTensor, Uint8Array>();
    if (diskBytes > 0) {
      staging = sharedBytes(diskBytes);
      this.host.add(diskBytes);
      let offset = 0;
      const actions: TransferAction[] = [];
      for (const t of fromDisk) {
        const dst = staging.subarray(offset, (offset += t.bytes));
        stagedAt.set(t, dst);
        actions.push({ type: "read", ...this.disk.readSource(t.diskKey!), dst });
      }
      read = this.submit("diskRead", "read-weights", where, actions);
    }
    const upBytes = offDevice.reduce((s, t) => s + t.bytes, 0);
    let arrived = read;
    if (upBytes > 0) {
      const block = this.arena.allocate(upBytes, `layer ${where.layer} weight buffer`);
      blocks.push(block);
      const target = this.arena.uint8(block, upBytes);
      let offset = 0;
      const actions: TransferAction[] = [];
      for (const t of offDevice) {
        const dst = target.subarray(offset, (offset += t.bytes));
        actions.push({ type: "copy", src: t.tier === "cpu" ? t.host! : stagedAt.get(t)!, dst });
        onDevice.set(t.name, dst);
      }
      arrived = this.submit("h2d", "load-weights", where, actions, [read]);
    }
    return { tensors, where, blocks, onDevice, arrived, ...(staging ? { staging } : {}) };
  }

  /** Waits for a pending group of tensors, dequantises 4-bit matrices into one fp16 buffer, and hands out views. */
  readyLayer(pending: PendingLayer): ReadyLayer {
    const { tensors, where, blocks, onDevice } = pending;
    this.transfers.wait(pending.arrived);
    if (pending.staging) this.host.remove(pending.staging.byteLength);
    const matrices = new Map<string, Uint16Array>();
    const vectors = new Map<string, Float32Array>();
    const quantized = tensors.filter((t) => t.encoding === "q4");
    if (quantized.length > 0) {
      const values = quantized.reduce((s, t) => s + t.values, 0);
      const block = this.arena.allocate(values * 2, `layer ${where.layer} dequantised weights`);
      blocks.push(block);
      const all = this.arena.uint16(block, values);
      this.recorder.record("dequantize-weights", "gpu", 0, where, () => {
        let offset = 0;
        const ops = new CpuDeviceOps({ dequantize: new Float32Array(4096) });
        for (const t of quantized) {
          const out = all.subarray(offset, offset + t.values);
          ops.dequantizeF16(onDevice.get(t.name)!, t.values, out);
          matrices.set(t.name, out);
          offset += t.values;
        }
      });
    }
    for (const t of tensors) {
      if (t.encoding === "q4") continue;
      const bytes = onDevice.get(t.name)!;
      const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, t.values);
      if (isVector(t.name)) vectors.set(t.name, fromFloat16Array(bits));
      else matrices.set(t.name, bits);
    }
    return { matrices, vectors, blocks };
  }

  private release(ready: ReadyLayer): void {
    for (const block of ready.blocks) this.arena.release(block);
  }

  // ---------------------------------------------------------------------------------------------
  // One GPU batch through one layer

  private kvKey(layer: number, batch: number, seq: number, which: "k" | "v"): string {
    return `kv-${layer}-${batch}-${seq}-${which}`;
  }

  /** The shape of step (layer, batch, token) as far as its KV is concerned. */
  private stepShape(token: number) {
    const gbs = this.policy.gpuBatchSize;
    const prefill = token === 0;
    const t = prefill ? this.workload.promptLen : 1;
    const past = prefill ? 0 : this.workload.promptLen + token - 1;
    const gpuSeqs = this.seqs.gpu;
    const cpuSeqs = this.seqs.cpu;
    const offSeqs = gbs - gpuSeqs;
    const diskSeqs = offSeqs - cpuSeqs;
    const cpuAttention = this.policy.cpuAttention && !prefill && offSeqs > 0;
    return {
      gbs,
      prefill,
      t,
      past,
      gpuSeqs,
      cpuSeqs,
      offSeqs,
      diskSeqs,
      cpuAttention,
      pastBytes: past * this.kvRowBytes,
    };
  }

  /** Host bytes of a CPU sequence's past K (0) or V (1) rows. */
  private hostPast(layer: number, batch: number, local: number, which: 0 | 1, pastBytes: number): Uint8Array {
    const base = (local * 2 + which) * this.maxContext * this.kvRowBytes;
    return this.hostCache[layer]![batch]!.subarray(base, base + pastBytes);
  }

  /**
   * Starts bringing step (layer, batch, token)'s off-GPU KV where attention will read it: disk
   * sequences are read into host staging, and (GPU attention) every off-GPU sequence is copied up
   * into a device buffer. The transfers wait for the previous token's stores of the same KV.
   */
  issueCache(layer: number, batch: number, token: number): PendingCache {
    const where = { token, layer, batch };
    const { prefill, gpuSeqs, cpuSeqs, offSeqs, diskSeqs, cpuAttention, pastBytes } = this.stepShape(token);
    if (prefill || offSeqs === 0 || pastBytes === 0) return { arrived: 0 };
    const stored = this.cacheStored[layer]![batch]!;
    let hostStaging: Uint8Array | undefined;
    let read: TransferId = 0;
    if (diskSeqs > 0) {
      hostStaging = sharedBytes(diskSeqs * 2 * pastBytes);
      this.host.add(hostStaging.byteLength);
      const actions: TransferAction[] = [];
      for (let s = 0; s < diskSeqs; s++) {
        for (const which of [0, 1] as const) {
          const dst = hostStaging.subarray((2 * s + which) * pastBytes, (2 * s + which + 1) * pastBytes);
          actions.push({
            type: "read",
            ...this.disk.readSource(this.kvKey(layer, batch, gpuSeqs + cpuSeqs + s, which ? "v" : "k"), pastBytes),
            dst,
          });
        }
      }
      read = this.submit("diskRead", "read-cache", where, actions, [stored]);
    }
    if (cpuAttention) return { ...(hostStaging ? { hostStaging } : {}), arrived: read || stored };
    const bytes = offSeqs * 2 * pastBytes;
    const staged = this.arena.allocate(bytes, `KV of off-GPU sequences (layer ${layer}, batch ${batch})`);
    const target = this.arena.uint8(staged, bytes);
    const actions: TransferAction[] = [];
    for (let s = 0; s < offSeqs; s++) {
      for (const which of [0, 1] as const) {
        const src =
          s < cpuSeqs
            ? this.hostPast(layer, batch, s, which, pastBytes)
            : hostStaging!.subarray(
                (2 * (s - cpuSeqs) + which) * pastBytes,
                (2 * (s - cpuSeqs) + which + 1) * pastBytes,
              );
        actions.push({
          type: "copy",
          src,
          dst: target.subarray((2 * s + which) * pastBytes, (2 * s + which + 1) * pastBytes),
        });
      }
    }
    const arrived = this.submit("h2d", "load-cache", where, actions, [read, stored]);
    return { ...(hostStaging ? { hostStaging } : {}), staged, arrived };
  }

  /**
   * Computes batch `batch` of layer `layer` at step `token`: hidden is the batch's fp16 [gbs, t, h],
   * updated in place. Off-GPU KV comes from `cache` (issueCache) — on the device for GPU attention,
   * on the host for CPU attention; new KV rows are stored to each sequence's tier by transfers
   * submitted afterwards, which the next token's loads of the same KV wait for.
   */
  computeLayer(
    ready: ReadyLayer,
    hidden: Uint16Array,
    layer: number,
    batch: number,
    token: number,
    pending: PendingCache,
  ): void {
    const where = { token, layer, batch };
    const { h } = this;
    const f = this.model.ffnSize;
    const nh = this.model.numHeads;
    const hd = h / nh;
    const { gbs, t, past, gpuSeqs, cpuSeqs, offSeqs, cpuAttention, pastBytes } = this.stepShape(token);
    const ctx = past + t;
    const rowBytes = this.kvRowBytes;

    this.transfers.wait(pending.arrived);
    const { hostStaging, staged } = pending;
    const pastRows = (seq: number, which: 0 | 1): Uint8Array => {
      if (past === 0) return new Uint8Array(0);
      if (seq < gpuSeqs) {
        const base = (seq * 2 + which) * this.maxContext * rowBytes;
        return this.arena
          .uint8(this.deviceCache[layer]![batch]!, gpuSeqs * 2 * this.maxContext * rowBytes)
          .subarray(base, base + pastBytes);
      }
      const s = seq - gpuSeqs;
      if (staged)
        return this.arena
          .uint8(staged, offSeqs * 2 * pastBytes)
          .subarray((2 * s + which) * pastBytes, (2 * s + which + 1) * pastBytes);
      if (s < cpuSeqs) return this.hostPast(layer, batch, s, which, pastBytes);
      const d = s - cpuSeqs;
      return hostStaging!.subarray((2 * d + which) * pastBytes, (2 * d + which + 1) * pastBytes);
    };

    // Working space, bounded like the planner's: sequences are processed in chunks.
    const chunk = chunkSequences(this.model, this.context, gbs, t, ctx);
    const rows = chunk * t;
    const tileRows = MATRIX_TILE_ROWS;
    const scratchValues = tileRows * Math.max(h, f);
    const attnScratch = attentionScratchLength(t, past, nh, hd);
    // q, k, v and the attention output are dead once the output projection has run, so the FFN's
    // intermediate reuses their space.
    const shared = Math.max(4 * h, f);
    const workingValues = layerWorkingValues(this.model, chunk, t, ctx);
    if (rows * (2 * h + shared + tileRows) + scratchValues + 2 * ctx * h + attnScratch > workingValues)
      throw new Error("working set larger than layerWorkingValues() counts");
    const working = this.arena.allocate(workingValues * 4, `working space (layer ${layer}, batch ${batch})`);
    const all = this.arena.float32(working, workingValues);
    let at = 0;
    const take = (n: number) => all.subarray(at, (at += n));
    const x = take(rows * h),
      y = take(rows * h);
    const sharedSpace = take(rows * shared);
    const q = sharedSpace.subarray(0, rows * h),
      k = sharedSpace.subarray(rows * h, 2 * rows * h),
      vv = sharedSpace.subarray(2 * rows * h, 3 * rows * h),
      o = sharedSpace.subarray(3 * rows * h, 4 * rows * h);
    const ffn = sharedSpace.subarray(0, rows * f),
      tileOut = take(rows * tileRows),
      scratch = take(scratchValues);
    const kAll = take(ctx * h),
      vAll = take(ctx * h),
      attnWork = take(attnScratch);
    const newRows: { seq: number; k: Uint8Array; v: Uint8Array }[] = [];

    const ops = new CpuDeviceOps({ linearTile: scratch, linearTileOut: tileOut, attention: attnWork });
    const weights = layerWeightsOf<CpuBufferTypes>(ready.matrices, ready.vectors, layer);
    const shape: OptLayerShape = { h, f, heads: nh, headDim: hd };
    const buffers = { x, y, q, k, v: vv, o, ffn };
    const computeChunk = (first: number, count: number) =>
      layerChunk(ops, weights, shape, hidden.subarray(first * t * h), count, t, buffers, (c) => {
        const seq = first + c;
        // The new rows, encoded as they will be stored (then decoded by the attention: it sees exactly what the cache holds).
        const kNew = seq < gpuSeqs ? new Uint8Array(t * rowBytes) : sharedBytes(t * rowBytes);
        const vNew = seq < gpuSeqs ? new Uint8Array(t * rowBytes) : sharedBytes(t * rowBytes);
        const kRows = { past: pastRows(seq, 0), fresh: kNew };
        const vRows = { past: pastRows(seq, 1), fresh: vNew };
        encodeNewRows(ops, shape, this.kvEncoding, buffers, c, t, kRows, vRows);
        const attend = () =>
          attendOverStoredRows(
            ops,
            shape,
            this.kvEncoding,
            q.subarray(c * t * h),
            kRows,
            vRows,
            o.subarray(c * t * h),
            t,
            past,
            { kAll, vAll },
          );
        if (cpuAttention && seq >= gpuSeqs) {
          // q, k, v go down to the host, attention runs over the host's KV, its output comes back up.
          this.recorder.record("send-qkv", "d2h", 3 * t * h * 2, where, () => undefined);
          this.recorder.record("cpu-attention", "cpu", 0, where, attend);
          this.recorder.record("return-attention", "h2d", t * h * 2, where, () => undefined);
        } else attend();
        if (seq < gpuSeqs) {
          const base = this.arena.uint8(this.deviceCache[layer]![batch]!, gpuSeqs * 2 * this.maxContext * rowBytes);
          base.set(kNew, seq * 2 * this.maxContext * rowBytes + past * rowBytes);
          base.set(vNew, (seq * 2 + 1) * this.maxContext * rowBytes + past * rowBytes);
        } else newRows.push({ seq, k: kNew, v: vNew });
      });
    this.recorder.record("compute", "gpu", 0, where, () => {
      for (let first = 0; first < gbs; first += chunk) computeChunk(first, Math.min(chunk, gbs - first));
    });
    this.arena.release(working);
    if (staged) this.arena.release(staged);
    if (hostStaging) this.host.remove(hostStaging.byteLength);

    // New KV rows of off-GPU sequences: down to the host (unless the host attention wrote them there),
    // disk sequences' rows through a host copy on to their files.
    const appended = t * rowBytes;
    const rowAt = (local: number, which: 0 | 1) => (local * 2 + which) * this.maxContext * rowBytes + past * rowBytes;
    const cache = this.hostCache[layer]![batch]!;
    const toHost = newRows.filter((r) => r.seq < gpuSeqs + cpuSeqs);
    const toDisk = newRows.filter((r) => r.seq >= gpuSeqs + cpuSeqs);
    const diskCopies = toDisk.map((r) => ({
      seq: r.seq,
      k: cpuAttention ? r.k : sharedBytes(appended),
      v: cpuAttention ? r.v : sharedBytes(appended),
      from: r,
    }));
    let stored: TransferId = 0;
    if (cpuAttention) {
      for (const r of toHost) {
        cache.set(r.k, rowAt(r.seq - gpuSeqs, 0));
        cache.set(r.v, rowAt(r.seq - gpuSeqs, 1));
      }
    } else if (newRows.length > 0) {
      const actions: TransferAction[] = [];
      for (const r of toHost) {
        actions.push({
          type: "copy",
          src: r.k,
          dst: cache.subarray(rowAt(r.seq - gpuSeqs, 0), rowAt(r.seq - gpuSeqs, 0) + appended),
        });
        actions.push({
          type: "copy",
          src: r.v,
          dst: cache.subarray(rowAt(r.seq - gpuSeqs, 1), rowAt(r.seq - gpuSeqs, 1) + appended),
        });
      }
      for (const c of diskCopies)
        actions.push({ type: "copy", src: c.from.k, dst: c.k }, { type: "copy", src: c.from.v, dst: c.v });
      stored = this.submit("d2h", "store-cache", where, actions);
    }
    if (diskCopies.length > 0) {
      const actions: TransferAction[] = [];
      for (const c of diskCopies) {
        actions.push({
          type: "write",
          ...this.disk.appendTarget(this.kvKey(layer, batch, c.seq, "k"), appended),
          src: c.k,
        });
        actions.push({
          type: "write",
          ...this.disk.appendTarget(this.kvKey(layer, batch, c.seq, "v"), appended),
          src: c.v,
        });
      }
      stored = this.submit("diskWrite", "write-cache", where, actions, [stored]);
    }
    if (stored) this.cacheStored[layer]![batch] = stored;
  }

  // ---------------------------------------------------------------------------------------------
  // Embeddings and the LM head

  /**
   * Starts bringing the embeddings a token step needs: positions, norms and projections to the device;
   * the token table either resident, or left on its tier (read from disk into host staging first, by
   * readyEmbeddings()) to be gathered from for the input and streamed through the device in chunks for
   * the LM head.
   */
  issueEmbeddings(token: number): PendingLayer {
    const where = { token, layer: this.model.numLayers, batch: -1 };
    const table = this.tokenTable();
    return this.issueTensors(
      this.embedding.filter((t) => t !== table || t.tier === "gpu"),
      where,
    );
  }

  /** Waits for issueEmbeddings()'s tensors, and brings an off-device token table within reach (see issueEmbeddings()). */
  readyEmbeddings(pending: PendingLayer, token: number): ReadyLayer {
    const where = { token, layer: this.model.numLayers, batch: -1 };
    const table = this.tokenTable();
    const ready = this.readyLayer(pending);
    this.streamedTable = undefined;
    if (table.tier !== "gpu") {
      let bytes = table.host;
      if (!bytes) {
        bytes = sharedBytes(table.bytes);
        this.host.add(table.bytes);
        this.transfers.wait(
          this.submit("diskRead", "read-head", where, [
            { type: "read", ...this.disk.readSource(table.diskKey!), dst: bytes },
          ]),
        );
      }
      this.streamedTable = { tensor: table, bytes, staged: !table.host };
    }
    return ready;
  }

  private tokenTable(): StoredTensor {
    return this.embedding.find((t) => t.name.endsWith("embed_tokens.weight"))!;
  }

  /** The off-device token table of the current token step (host bytes, or a host staging copy of the disk file). */
  private streamedTable: { tensor: StoredTensor; bytes: Uint8Array; staged: boolean } | undefined;
  /** LM-head features of each batch of the current token step, waiting for the table pass. */
  private pendingFeatures: Float32Array[] = [];

  releaseLayer(ready: ReadyLayer): void {
    this.release(ready);
  }

  releaseEmbeddings(ready: ReadyLayer): void {
    this.release(ready);
    if (this.streamedTable?.staged) this.host.remove(this.streamedTable.bytes.byteLength);
    this.streamedTable = undefined;
  }

  /** Starts bringing a layer's weights to the device (readyLayer() waits for them). */
  issueLayer(layer: number, token: number): PendingLayer {
    return this.issueTensors(this.layers[layer]!, { token, layer, batch: -1 });
  }

  /** One token-table row in fp32, from the device or from the table's own tier (the lookup happens where the table is). */
  private tableRow(ready: ReadyLayer, id: number, out: Float32Array): void {
    const d = this.model.wordEmbedDim;
    const resident = ready.matrices.get("model.decoder.embed_tokens.weight");
    if (resident) {
      fromFloat16Array(resident.subarray(id * d, (id + 1) * d), out);
      return;
    }
    const { tensor, bytes } = this.streamedTable!;
    decodeRange(bytes, tensor.encoding, tensor.values, id * d, d, out);
  }

  /** fp16 hidden states [gbs, t, h] of the batch's input tokens (token embedding + positions). */
  embed(ready: ReadyLayer, ids: Int32Array, token: number, out: Uint16Array): void {
    const { h } = this;
    const d = this.model.wordEmbedDim;
    const gbs = this.policy.gpuBatchSize;
    const t = token === 0 ? this.workload.promptLen : 1;
    const start = token === 0 ? 0 : this.workload.promptLen + token - 1;
    const positions = ready.matrices.get("model.decoder.embed_positions.weight")!;
    const rowsTokens = new Float32Array(t * d);
    const x = new Float32Array(t * h);
    // OPT's learned positions start at row 2 (OPT_POSITION_OFFSET): rows for positions start .. start + t - 1.
    const first = start + OPT_POSITION_OFFSET;
    const project = ready.matrices.get("model.decoder.project_in.weight");
    const ops = new CpuDeviceOps({
      linearTile: new Float32Array(MATRIX_TILE_ROWS * Math.max(d, h)),
      linearTileOut: new Float32Array(t * MATRIX_TILE_ROWS),
    });
    const positionRows = new Float32Array(t * h);
    ops.f16ToF32(positions.subarray(first * h), positionRows, t * h);
    for (let s = 0; s < gbs; s++) {
      for (let i = 0; i < t; i++) this.tableRow(ready, ids[s * t + i]!, rowsTokens.subarray(i * d, (i + 1) * d));
      embedSequence(ops, rowsTokens, positionRows, project, t, d, h, x, out.subarray(s * t * h));
    }
  }

  /** The LM head's input for one batch: the final LayerNorm (and projection) of each sequence's last position. */
  lmHead(ready: ReadyLayer, hidden: Uint16Array, token: number, batch: number): void {
    const where = { token, layer: this.model.numLayers, batch };
    const { h } = this;
    const d = this.model.wordEmbedDim;
    const gbs = this.policy.gpuBatchSize;
    const t = token === 0 ? this.workload.promptLen : 1;
    this.pendingFeatures[batch] = this.recorder.record("lm-head", "gpu", 0, where, () => {
      const projectOut = ready.matrices.get("model.decoder.project_out.weight");
      const ops = new CpuDeviceOps(
        projectOut
          ? {
              linearTile: new Float32Array(MATRIX_TILE_ROWS * Math.max(d, h)),
              linearTileOut: new Float32Array(gbs * MATRIX_TILE_ROWS),
            }
          : {},
      );
      const gamma = ready.vectors.get("model.decoder.final_layer_norm.weight")!;
      const beta = ready.vectors.get("model.decoder.final_layer_norm.bias")!;
      return headFeatures(
        ops,
        hidden,
        gbs,
        t,
        h,
        d,
        gamma,
        beta,
        projectOut,
        new Float32Array(gbs * h),
        new Float32Array(gbs * h),
        new Float32Array(projectOut ? gbs * d : 0),
      );
    });
  }

  /**
   * Logits and greedy tokens of every batch of the token step: against the resident token table, or
   * streaming an off-device table through the device once, HEAD_CHUNK_BYTES at a time, for all batches.
   */
  finishHeads(ready: ReadyLayer, token: number): Int32Array[] {
    const d = this.model.wordEmbedDim;
    const vocab = this.model.vocabSize;
    const gbs = this.policy.gpuBatchSize;
    const nb = this.policy.numGpuBatches;
    const features = this.pendingFeatures;
    this.pendingFeatures = [];
    const best = Array.from({ length: nb }, () => new Float32Array(gbs).fill(-Infinity));
    const next = Array.from({ length: nb }, () => new Int32Array(gbs));
    const ops = new CpuDeviceOps({
      linearTile: new Float32Array(MATRIX_TILE_ROWS * d),
      linearTileOut: new Float32Array(gbs * MATRIX_TILE_ROWS),
      dequantize: new Float32Array(4096),
    });
    const score = (weights: Uint16Array, firstRow: number, rows: number) => {
      const logitsBlock = this.arena.allocate(gbs * rows * 4, "logits");
      const logits = this.arena.float32(logitsBlock, gbs * rows);
      for (let k = 0; k < nb; k++) {
        this.recorder.record("lm-head", "gpu", 0, { token, layer: this.model.numLayers, batch: k }, () =>
          scoreHeadChunk(ops, features[k]!, gbs, d, weights, firstRow, rows, logits, best[k]!, next[k]!),
        );
      }
      this.arena.release(logitsBlock);
    };
    const resident = ready.matrices.get("model.decoder.embed_tokens.weight");
    if (resident) score(resident, 0, vocab);
    else {
      // Two chunk buffers: the next chunk streams up while this one is scored.
      const { tensor, bytes } = this.streamedTable!;
      // Chunks of HEAD_CHUNK_BYTES in fp16: a 4-bit table's chunk is smaller as stored, and its
      // dequantised copy fits where the plan counts one dequantised layer.
      const rowsPerChunk = Math.max(1, Math.floor(HEAD_CHUNK_BYTES / (2 * d)));
      const where = { token, layer: this.model.numLayers, batch: -1 };
      const issueChunk = (firstRow: number) => {
        const rows = Math.min(rowsPerChunk, vocab - firstRow);
        const parts = rowChunkBytes(bytes, tensor.encoding, tensor.values, d, firstRow, rows);
        const chunkBytes = parts.reduce((sum, p) => sum + p.byteLength, 0);
        const block = this.arena.allocate(chunkBytes, "LM head weights");
        const onDevice = this.arena.uint8(block, chunkBytes);
        const actions: TransferAction[] = [];
        let offset = 0;
        for (const p of parts)
          actions.push({ type: "copy", src: p, dst: onDevice.subarray(offset, (offset += p.byteLength)) });
        return { firstRow, rows, block, onDevice, arrived: this.submit("h2d", "load-head", where, actions) };
      };
      type Chunk = ReturnType<typeof issueChunk>;
      let next: Chunk | undefined = issueChunk(0);
      while (next) {
        const chunk: Chunk = next;
        this.transfers.wait(chunk.arrived);
        next = chunk.firstRow + rowsPerChunk < vocab ? issueChunk(chunk.firstRow + rowsPerChunk) : undefined;
        let weights: Uint16Array;
        let dequantized: DeviceBlock | undefined;
        if (tensor.encoding === "q4") {
          dequantized = this.arena.allocate(chunk.rows * d * 2, "LM head weights, dequantised");
          weights = this.arena.uint16(dequantized, chunk.rows * d);
          ops.dequantizeF16(chunk.onDevice, chunk.rows * d, weights);
        } else weights = new Uint16Array(chunk.onDevice.buffer, chunk.onDevice.byteOffset, chunk.rows * d);
        score(weights, chunk.firstRow, chunk.rows);
        if (dequantized) this.arena.release(dequantized);
        this.arena.release(chunk.block);
      }
    }
    for (let k = 0; k < nb; k++)
      this.recorder.record(
        "store-tokens",
        "d2h",
        gbs * 4,
        { token, layer: this.model.numLayers, batch: k },
        () => undefined,
      );
    return next;
  }
}

function isVector(name: string): boolean {
  return name.endsWith(".bias") || name.includes("layer_norm");
}
