/**
 * Where ExpertStore (expert-store.ts) keeps its device blocks and how it fills and reads them, so the
 * one cache policy runs on every backend: the CPU backend's arena and TransferEngine
 * (arena-expert-memory.ts) and the CUDA backend's device pool, copy stream and events
 * (../cuda/cuda-expert-memory.ts).
 *
 * `Block` is one expert-sized block of device memory, `Copy` one host -> device copy in flight.
 */
import type { ExpertIo } from "./mixtral-model.js";

/**
 * Why an expert copy was made; "rows-in" / "rows-out": a device that computes experts itself (the CUDA
 * backend) sends an expert's token rows up and its outputs back down; "activations-in" /
 * "activations-out": a device that runs the decoder too reads each layer's router input and logits
 * back and takes the experts' outputs (and the step's tokens) up (`expert` -1).
 */
export type ExpertTransferKind =
  | "warm"
  | "prefill"
  | "demand"
  | "prefetch"
  | "rows-in"
  | "rows-out"
  | "activations-in"
  | "activations-out";

export interface ExpertTransferMeta {
  readonly kind: ExpertTransferKind;
  readonly layer: number;
  readonly expert: number;
}

/** A layer's expert work as the model hands it to the executor (mixtral-model.ts's runExperts). */
export interface ExpertWork {
  /** Runs the expert on the host from weights in host-addressable memory. */
  readonly compute: (expert: number, weights: Uint16Array) => void;
  readonly io?: ExpertIo;
}

export interface ExpertMemory<Block, Copy> {
  /** One block of `bytes` in device memory, named for out-of-memory errors. */
  allocate(bytes: number, what: string): Block;
  /** Starts copying layer `layer`'s expert's home copy into `block` (after every read of the block issued so far). */
  copyIn(layer: number, expert: number, block: Block, kind: ExpertTransferKind): Copy;
  /** Whatever the store does next with the copy's block (compute from it, refill it) comes after the copy. */
  await(copy: Copy): void;
  /**
   * Copies an expert the store needs at once (a demand fetch, prefill streaming, the warm-up) into
   * `block`, after every copy issued so far; whatever the store does next with the block comes after it.
   */
  copyNow(layer: number, expert: number, block: Block, kind: ExpertTransferKind): void;
  /** Runs the expert from its weights in `block`. */
  computeFrom(layer: number, expert: number, block: Block, work: ExpertWork): void;
  /** The layer's experts are issued: its outputs are in place (through `work.io`) when this returns. */
  endLayer?(layer: number, work: ExpertWork): void;
}
