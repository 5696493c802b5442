/**
 * The CPU backend's hidden states between layers when they do not stay on the device: a device
 * staging buffer per step, loaded from the host array or offload file of its GPU batch and stored back
 * after the compute. A staging buffer is released once the store out of it is done; at most two are
 * live (the step computing and the next one loading).
 */

import type { Tier } from "../core/tiers.js";
import type { DeviceArena, DeviceBlock } from "./device-arena.js";
import type { DiskStore } from "./disk-store.js";
import type { HostLedger, TransferMeta, Transfers, Where } from "./opt-runner.js";
import type { TransferAction } from "./transfer-action.js";
import { sharedBytes, type TransferId } from "./transfer-engine.js";

export interface HiddenIn {
  readonly view: Uint16Array;
  readonly block?: DeviceBlock;
  readonly arrived: TransferId;
  readonly hostStaging?: Uint8Array;
}

export class HiddenStaging {
  /** Hidden states of each GPU batch off the device: host arrays (cpu), or offload files (disk). */
  private readonly hostHidden: Uint8Array[];
  /** The transfer that last stored each batch's hidden state. */
  private readonly hiddenStored: TransferId[];
  private readonly stagingInFlight: { block: DeviceBlock; until: TransferId }[] = [];
  private stagingLive = 0;
  private readonly hostHiddenBytes: number;

  constructor(
    private readonly engine: Transfers,
    private readonly arena: DeviceArena,
    private readonly host: HostLedger,
    private readonly disk: DiskStore,
    private readonly tier: Tier,
    numGpuBatches: number,
    /** Values of one batch's largest hidden state (the prompt's). */
    maxHiddenValues: number,
  ) {
    this.hostHidden =
      tier === "cpu" ? Array.from({ length: numGpuBatches }, () => sharedBytes(maxHiddenValues * 2)) : [];
    this.hostHiddenBytes = tier === "cpu" ? numGpuBatches * maxHiddenValues * 2 : 0;
    if (tier === "cpu") host.add(this.hostHiddenBytes);
    this.hiddenStored = new Array<TransferId>(numGpuBatches).fill(0);
  }

  /** The transfer that last stored batch k's hidden state (0: none). */
  stored(k: number): TransferId {
    return this.hiddenStored[k]!;
  }

  private submit(
    stream: "h2d" | "d2h" | "diskRead" | "diskWrite",
    kind: TransferMeta["kind"],
    where: Where,
    actions: TransferAction[],
    deps: TransferId[],
  ): TransferId {
    return this.engine.submit(stream, actions, deps, { kind, where });
  }

  private diskKey(k: number): string {
    return `hidden-${k}`;
  }

  /** Releases staging buffers whose stores are done, and (waiting) the oldest while more than `atMost` are live. */
  reap(atMost: number): void {
    while (
      this.stagingLive > atMost ||
      (this.stagingInFlight.length > 0 && this.engine.isDone(this.stagingInFlight[0]!.until))
    ) {
      const oldest = this.stagingInFlight.shift();
      if (!oldest) break;
      this.engine.wait(oldest.until);
      this.arena.release(oldest.block);
      this.stagingLive--;
    }
  }

  allocate(layer: number, k: number, hiddenValues: number): { block: DeviceBlock; view: Uint16Array } {
    this.reap(1);
    const block = this.arena.allocate(hiddenValues * 2, `hidden state in (layer ${layer}, batch ${k})`);
    this.stagingLive++;
    return { block, view: this.arena.uint16(block, hiddenValues) };
  }

  /** Starts loading batch k's hidden state into a staging buffer (after its last store). */
  issue(token: number, layer: number, k: number, hiddenValues: number): HiddenIn {
    const where = { token, layer, batch: k };
    const { block, view } = this.allocate(layer, k, hiddenValues);
    const target = new Uint8Array(view.buffer, view.byteOffset, hiddenValues * 2);
    if (this.tier === "cpu") {
      const arrived = this.submit(
        "h2d",
        "load-hidden",
        where,
        [{ type: "copy", src: this.hostHidden[k]!.subarray(0, hiddenValues * 2), dst: target }],
        [this.hiddenStored[k]!],
      );
      return { view, block, arrived };
    }
    const hostStaging = sharedBytes(hiddenValues * 2);
    this.host.add(hiddenValues * 2);
    const read = this.submit(
      "diskRead",
      "read-hidden",
      where,
      [{ type: "read", ...this.disk.readSource(this.diskKey(k)), dst: hostStaging }],
      [this.hiddenStored[k]!],
    );
    const arrived = this.submit("h2d", "load-hidden", where, [{ type: "copy", src: hostStaging, dst: target }], [read]);
    return { view, block, arrived, hostStaging };
  }

  /** Stores a step's output (in `hidden`'s staging buffer) to the batch's tier; the buffer is released after. */
  store(token: number, layer: number, k: number, hidden: HiddenIn, hiddenValues: number): void {
    const where = { token, layer, batch: k };
    const src = new Uint8Array(hidden.view.buffer, hidden.view.byteOffset, hiddenValues * 2);
    if (hidden.hostStaging) this.host.remove(hidden.hostStaging.byteLength);
    if (this.tier === "cpu")
      this.hiddenStored[k] = this.submit(
        "d2h",
        "store-hidden",
        where,
        [{ type: "copy", src, dst: this.hostHidden[k]!.subarray(0, hiddenValues * 2) }],
        [],
      );
    else {
      const copy = sharedBytes(hiddenValues * 2);
      const down = this.submit("d2h", "store-hidden", where, [{ type: "copy", src, dst: copy }], []);
      this.hiddenStored[k] = this.submit(
        "diskWrite",
        "write-hidden",
        where,
        [{ type: "write", ...this.disk.writeTarget(this.diskKey(k), hiddenValues * 2), src: copy }],
        [down],
      );
    }
    this.stagingInFlight.push({ block: hidden.block!, until: this.hiddenStored[k]! });
  }

  /** Gives back a step's staging without storing it (the last layer's output, read by the LM head). */
  release(hidden: HiddenIn): void {
    if (hidden.hostStaging) this.host.remove(hidden.hostStaging.byteLength);
    this.stagingInFlight.push({ block: hidden.block!, until: 0 });
  }

  /** After the run: every staging buffer released (the transfers drained first). */
  releaseAll(): void {
    this.reap(0);
  }

  /** After the run: the host arrays are no longer counted. */
  close(): void {
    if (this.tier === "cpu") this.host.remove(this.hostHiddenBytes);
  }
}
