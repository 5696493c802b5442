/**
 * Every expert's home copy at each precision a run's passes use, made once per run. The copies are only
 * read (copied to the device, or computed from on the CPU), so runMoe's passes (the fp16 reference, a
 * quantised policy's own reference, the configuration under test, the quantisation check) share them
 * instead of each reading, packing and quantising every expert of the checkpoint again.
 */
import type { ExpertBits } from "../../core/expert-policy.js";
import type { MoeCheckpoint } from "./moe-checkpoint.js";
import { expertHomeCopies } from "./resident-weights.js";

export class HomeCopies {
  private readonly made = new Map<ExpertBits, Uint16Array[][]>();

  constructor(private readonly checkpoint: MoeCheckpoint) {}

  /** Every expert's stored copy at `bits`, [layer][expert] (resident-weights.ts's expertHomeCopies), made on first use. */
  at(bits: ExpertBits): Uint16Array[][] {
    let copies = this.made.get(bits);
    if (!copies) {
      copies = expertHomeCopies(this.checkpoint, bits);
      this.made.set(bits, copies);
    }
    return copies;
  }
}
