/**
 * ExpertStore's memory on the CPU backend: blocks of the device arena, copies on the TransferEngine's
 * h2d stream (worker threads or inline), experts computed by the main thread from arena views.
 */
import type { DeviceArena, DeviceBlock } from "../device-arena.js";
import type { TransferAction } from "../transfer-action.js";
import type { TransferEngine, TransferId } from "../transfer-engine.js";
import type { ExpertMemory, ExpertTransferKind, ExpertTransferMeta, ExpertWork } from "./expert-memory.js";

export class ArenaExpertMemory implements ExpertMemory<DeviceBlock, TransferId> {
  /**
   * @param host every expert's stored home copy, [layer][expert] (shared memory, for worker copies).
   * @param expertBytes one expert's stored bytes (what a block holds and a copy moves).
   */
  constructor(
    private readonly arena: DeviceArena,
    private readonly host: readonly (readonly Uint16Array[])[],
    private readonly transfers: TransferEngine<ExpertTransferMeta>,
    private readonly expertBytes: number,
  ) {}

  allocate(bytes: number, what: string): DeviceBlock {
    return this.arena.allocate(bytes, what);
  }

  /** The copy of an expert's home copy into `block`. */
  private copyAction(layer: number, expert: number, block: DeviceBlock): TransferAction {
    const src = this.host[layer]![expert]!;
    const dst = this.arena.uint8(block, src.byteLength);
    return { type: "copy", src: new Uint8Array(src.buffer, src.byteOffset, src.byteLength), dst };
  }

  copyIn(layer: number, expert: number, block: DeviceBlock, kind: ExpertTransferKind): TransferId {
    return this.transfers.submit("h2d", [this.copyAction(layer, expert, block)], [], { kind, layer, expert });
  }

  /**
   * On this thread, after the h2d stream's earlier copies (TransferEngine.runNow): handing a copy the
   * caller waits for at once to a worker costs two thread wake-ups and overlaps nothing.
   */
  copyNow(layer: number, expert: number, block: DeviceBlock, kind: ExpertTransferKind): void {
    this.transfers.runNow("h2d", [this.copyAction(layer, expert, block)], { kind, layer, expert });
  }

  await(copy: TransferId): void {
    this.transfers.wait(copy);
  }

  computeFrom(_layer: number, expert: number, block: DeviceBlock, work: ExpertWork): void {
    work.compute(expert, this.arena.uint16(block, this.expertBytes / 2));
  }
}
