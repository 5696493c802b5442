/** Weights on the CUDA backend: layers' and embeddings' off-device tensors on their way into their device slots. */
import type { Where } from "../opt-runner.js";
import { copyInPieces } from "./copy-in-pieces.js";
import type { CudaBuffers } from "./cuda-buffers.js";
import { align, type CudaRunContext, type Stored } from "./cuda-context.js";
import type { CudaPlacement } from "./cuda-placement.js";
import { readFiles } from "./offload-files.js";

export interface Arriving {
  readonly layer: number;
  readonly arrived?: number;
  readonly at: Map<string, number>;
}

/** Weights on their way to the device: a layer's off-device tensors into its slot (disk ones through pinned staging first), and the embeddings into theirs. */
export function createCudaWeights(ctx: CudaRunContext, placed: CudaPlacement, buffers: CudaBuffers) {
  const { native, disk, L, timeline, track, compute, weightsStream } = ctx;
  const { layers, table, embedRest, tableHostCopy } = placed;
  const {
    ops,
    weightSlots,
    diskStaging,
    dequantBuffer,
    vectorBuffer,
    restOff,
    embedSlot,
    embedDiskStaging,
    embedVectors,
    tableDiskStaging,
  } = buffers;
  // Weights: a layer's off-device tensors into its slot, disk ones through pinned staging first.
  const slotFree: (number | undefined)[] = [undefined, undefined];
  const stagingFree: (number | undefined)[] = [undefined, undefined];
  // Slots alternate along the whole stream of layers (across tokens too, so that an odd layer count
  // never hands the next token's layer 0 the slot the last layer is computing from).
  const slotOf = (token: number, layer: number) => (token * L + layer) % 2;
  /**
   * Reads the disk tensors among `tensors` into `staging`, packed at aligned offsets (libuv's thread
   * pool), after `beforeReuse` (the wait for the staging's previous copy up); returns where each landed.
   */
  const stageFromDisk = async (
    tensors: readonly Stored[],
    staging: Uint8Array | undefined,
    where: Where,
    beforeReuse: () => void,
  ): Promise<Map<Stored, Uint8Array>> => {
    const staged = new Map<Stored, Uint8Array>();
    const fromDisk = tensors.filter((t) => t.tier === "disk");
    if (fromDisk.length === 0) return staged;
    beforeReuse();
    let offset = 0;
    const reads = fromDisk.map((t) => {
      const dst = staging!.subarray(offset, offset + t.bytes);
      offset += align(t.bytes);
      staged.set(t, dst);
      return { ...disk.readSource(t.diskKey!), dst };
    });
    const startMs = performance.now();
    await readFiles(reads);
    timeline.host(
      "read-weights",
      "diskRead",
      reads.reduce((sum, r) => sum + r.bytes, 0),
      where,
      startMs,
      performance.now(),
    );
    return staged;
  };
  /**
   * Copies off-device `tensors` up into the device buffer at `base`, packed at aligned offsets, on the
   * weights stream (host ones from their pinned arrays, disk ones from `staged`), each in pieces of at
   * most the schedule's weightCopyChunkBytes; records each address in `at` and returns the event after
   * the copies.
   */
  const uploadPacked = (
    tensors: readonly Stored[],
    staged: Map<Stored, Uint8Array>,
    base: number,
    at: Map<string, number>,
    where: Where,
  ): number => {
    let offset = 0;
    return timeline.device(
      "load-weights",
      "h2d",
      weightsStream,
      tensors.reduce((sum, t) => sum + t.bytes, 0),
      where,
      () => {
        for (const t of tensors) {
          const dst = base + offset;
          const src = t.tier === "cpu" ? t.host! : staged.get(t)!;
          copyInPieces(native, dst, src, weightsStream, ctx.weightCopyChunkBytes);
          at.set(t.name, dst);
          offset += align(t.bytes);
        }
      },
    );
  };
  const issueLayer = (layer: number, token: number): Promise<Arriving> => track(issueLayerNow(layer, token));
  const issueLayerNow = async (layer: number, token: number): Promise<Arriving> => {
    const where = { token, layer, batch: -1 };
    const slot = slotOf(token, layer);
    const at = new Map<string, number>();
    for (const t of layers[layer]!) if (t.tier === "gpu") at.set(t.name, t.device!.pointer);
    const off = layers[layer]!.filter((t) => t.tier !== "gpu");
    if (off.length === 0) return { layer, at };
    const staged = await stageFromDisk(off, diskStaging[slot], where, () => {
      if (stagingFree[slot] !== undefined) native.eventSynchronize(stagingFree[slot]!);
    });
    if (slotFree[slot] !== undefined) native.streamWaitEvent(weightsStream, slotFree[slot]!);
    const arrived = uploadPacked(off, staged, weightSlots[slot]!.pointer, at, where);
    if (staged.size > 0) stagingFree[slot] = arrived;
    return { layer, arrived, at };
  };
  /** On the compute stream: waits for the weights, dequantises 4-bit matrices, converts vectors to fp32. */
  const readyLayer = (arriving: Arriving, where: Where) => {
    if (arriving.arrived !== undefined) native.streamWaitEvent(compute, arriving.arrived);
    const matrices = new Map<string, number>();
    const vectors = new Map<string, number>();
    let q4At = 0;
    let vectorAt = 0;
    const tensors = layers[arriving.layer]!;
    const quantized = tensors.filter((t) => t.encoding === "q4");
    if (quantized.length > 0) {
      timeline.device("dequantize-weights", "gpu", compute, 0, where, () => {
        for (const t of quantized) {
          const out = dequantBuffer!.pointer + q4At;
          ops.dequantizeF16(arriving.at.get(t.name)!, t.values, out);
          matrices.set(t.name, out);
          q4At += align(t.values * 2);
        }
      });
    }
    for (const t of tensors) {
      if (t.encoding === "q4") continue;
      if (t.vector) {
        const out = vectorBuffer.pointer + vectorAt;
        native.f16ToF32(arriving.at.get(t.name)!, out, t.values, compute);
        vectors.set(t.name, out);
        vectorAt += align(t.values * 4);
      } else matrices.set(t.name, arriving.at.get(t.name)!);
    }
    return { matrices, vectors };
  };

  // Embeddings: all but an off-device token table into their slot; the table within the host's reach.
  const readTable = async (token: number): Promise<Uint8Array | undefined> => {
    if (table.tier === "cpu") return table.host!;
    if (table.tier === "gpu") return tableHostCopy;
    const startMs = performance.now();
    await readFiles([{ ...disk.readSource(table.diskKey!), dst: tableDiskStaging! }]);
    timeline.host("read-head", "diskRead", table.bytes, { token, layer: L, batch: -1 }, startMs, performance.now());
    return tableDiskStaging!;
  };
  /** Starts the embeddings (all but an off-device token table) towards their device slot; resolves with their addresses. */
  const issueEmbeddings = async (token: number): Promise<Map<string, number>> => {
    const where = { token, layer: L, batch: -1 };
    const at = new Map<string, number>();
    for (const t of embedRest) if (t.tier === "gpu") at.set(t.name, t.device!.pointer);
    if (restOff.length > 0) {
      // the staging's previous copy is done before it is refilled
      const staged = await stageFromDisk(restOff, embedDiskStaging, where, () =>
        native.streamSynchronize(weightsStream),
      );
      // The previous token's LM head has finished with the slot: the host synchronised on it.
      native.streamWaitEvent(compute, uploadPacked(restOff, staged, embedSlot!.pointer, at, where));
    }
    return at;
  };
  /** The embeddings' vectors in fp32 on the compute stream, and the token table within the host's reach. */
  const readyEmbeddings = async (at: Map<string, number>, token: number) => {
    const vectors = new Map<string, number>();
    let vectorAt = 0;
    for (const t of embedRest.filter((e) => e.vector)) {
      const out = embedVectors.pointer + vectorAt;
      native.f16ToF32(at.get(t.name)!, out, t.values, compute);
      vectors.set(t.name, out);
      vectorAt += align(t.values * 4);
    }
    const hostTable = await readTable(token);
    return { at, vectors, hostTable };
  };
  return { slotFree, slotOf, issueLayer, readyLayer, issueEmbeddings, readyEmbeddings };
}

export type CudaWeights = ReturnType<typeof createCudaWeights>;
/** A layer's weights as its compute reads them: fp16 (dequantised) matrices and fp32 vectors by name. */
export type ReadyWeights = ReturnType<CudaWeights["readyLayer"]>;
export type Embeddings = Awaited<ReturnType<CudaWeights["readyEmbeddings"]>>;
