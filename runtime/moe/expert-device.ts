/**
 * Where the MoE runner's pass under test keeps and computes its routed experts (moe-runner.ts): the CPU
 * backend's device arena with the TransferEngine (`arenaExpertDevice`, the default: experts share the
 * arena with the resident weights and KV cache), or another backend's device (the CUDA backend's pool,
 * copy stream and kernels: ../cuda/cuda-expert-device.ts).
 */
import type { ExpertPolicy } from "../../core/expert-policy.js";
import type { ModelSpec } from "../../core/model-spec.js";
import type { DeviceArena } from "../device-arena.js";
import { type FinishedTransfer, TransferEngine } from "../transfer-engine.js";
import { ArenaExpertMemory } from "./arena-expert-memory.js";
import type { ExpertMemory, ExpertTransferMeta } from "./expert-memory.js";
import type { MoeDecoder, MoeDecoderSetup } from "./moe-decoder.js";
import { expertStoredBytes } from "./quantized-weights.js";

export interface ExpertPassSetup {
  readonly model: ModelSpec;
  readonly policy: ExpertPolicy;
  /** The pass's arena, already holding the resident weights and the KV cache. */
  readonly arena: DeviceArena;
  /** The pass's device memory: the arena's capacity. */
  readonly capacityBytes: number;
  /** The most token rows a step runs (batch x prompt length: the prefill). */
  readonly rowsPerStep: number;
  /** Every expert's stored home copy, [layer][expert], over shared memory. */
  readonly host: readonly (readonly Uint16Array[])[];
  /** Copies on worker threads (CPU backend). */
  readonly threads: boolean;
  /** Each finished expert copy, once, with its start and end in epoch milliseconds. */
  readonly onCopy: (done: FinishedTransfer<ExpertTransferMeta>) => void;
  /** An expert the device computed (a device that computes experts itself), in epoch milliseconds. */
  readonly onExpert: (layer: number, startMs: number, endMs: number) => void;
  /** The device decoder's own work (a device with a `decoder`), timed by its events, in epoch milliseconds; layer -1: the step's. */
  readonly onCompute: (layer: number, startMs: number, endMs: number) => void;
}

export interface OpenExpertDevice {
  readonly memory: ExpertMemory<unknown, unknown>;
  /** The home copies the store computes CPU misses from and copies from (the setup's, or the device's pinned ones). */
  readonly host: readonly (readonly Uint16Array[])[];
  /** What the device name says it is, for the run's report ("cpu", "cuda"). */
  readonly backend: string;
  /** Peak device bytes of the pass: the arena's, or the device's own memory where it has some. */
  peakBytes(): number;
  /**
   * A device that runs the non-expert work itself (the CUDA backend: weights and KV cache in its own
   * memory); absent, the runner steps the CPU backend's MixtralModel over the arena and its KV cache.
   */
  decoder?(setup: MoeDecoderSetup): MoeDecoder;
  /** Every copy has finished and been reported through onCopy. */
  drain(): void;
  close(): Promise<void>;
}

export interface ExpertDevice {
  open(setup: ExpertPassSetup): Promise<OpenExpertDevice>;
}

/** The CPU backend: expert blocks in the pass's arena, copies on the TransferEngine's h2d stream. */
export const arenaExpertDevice: ExpertDevice = {
  async open(setup) {
    const transfers = await TransferEngine.start<ExpertTransferMeta>(setup.threads, setup.onCopy);
    const bytes = expertStoredBytes(setup.model, setup.policy.bits);
    return {
      memory: new ArenaExpertMemory(setup.arena, setup.host, transfers, bytes),
      host: setup.host,
      backend: "cpu",
      peakBytes: () => setup.arena.peakBytes,
      drain: () => transfers.drain(),
      close: () => transfers.close(),
    };
  },
};
