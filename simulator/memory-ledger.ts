/**
 * Memory in use per tier over simulated time, against capacity. The first overflow is kept with when
 * it happened and what was being allocated, so a plan that does not fit fails with a precise reason.
 */
import type { Tier } from "../core/tiers.js";
import type { MemoryEffect } from "./task.js";

export interface Overflow {
  readonly tier: Tier;
  readonly seconds: number;
  readonly inUseBytes: number;
  readonly capacityBytes: number;
  readonly what: string;
}

export class MemoryLedger {
  readonly inUse: Record<Tier, number> = { gpu: 0, cpu: 0, disk: 0 };
  readonly peak: Record<Tier, number> = { gpu: 0, cpu: 0, disk: 0 };
  firstOverflow: Overflow | undefined;

  constructor(readonly capacity: Readonly<Record<Tier, number>>) {}

  allocate(effect: MemoryEffect, seconds: number): void {
    if (effect.bytes === 0) return;
    const t = effect.tier;
    this.inUse[t] += effect.bytes;
    if (this.inUse[t] > this.peak[t]) this.peak[t] = this.inUse[t];
    if (!this.firstOverflow && this.inUse[t] > this.capacity[t] * (1 + 1e-12)) {
      this.firstOverflow = {
        tier: t,
        seconds,
        inUseBytes: this.inUse[t],
        capacityBytes: this.capacity[t],
        what: effect.what,
      };
    }
  }

  free(effect: MemoryEffect): void {
    if (effect.bytes === 0) return;
    this.inUse[effect.tier] -= effect.bytes;
    if (this.inUse[effect.tier] < -1e-3 * Math.max(1, effect.bytes)) {
      throw new Error(`simulator bug: ${effect.tier} memory went negative freeing ${effect.what}`);
    }
  }
}
