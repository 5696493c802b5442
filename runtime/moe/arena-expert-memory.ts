/**
 * ExpertStore's memory on the CPU backend: blocks of the device arena, copies on the TransferEngine's
 * h2d stream (worker threads or inline), experts computed by the main thread from arena views.
 */
import type { DeviceArena, DeviceBlock } from "../device-arena.js";
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

  copyIn(layer: number, expert: number, block: DeviceBlock, kind: ExpertTransferKind): TransferId {
    const src = this.host[layer]![expert]!;
    const dst = this.arena.uint8(block, src.byteLength);
    return this.transfers.submit(
      "h2d",
      [{ type: "copy", src: new Uint8Array(src.buffer, src.byteOffset, src.byteLength), dst }],
      [],
      { kind, layer, expert },
    );
  }

  await(copy: TransferId): void {
    this.transfers.wait(copy);
  }

  computeFrom(_layer: number, expert: number, block: DeviceBlock, work: ExpertWork): void {
    work.compute(expert, this.arena.uint16(block, this.expertBytes / 2));
  }
}
