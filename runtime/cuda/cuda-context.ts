/**
 * What every part of a CUDA run shares: the device, the run's shapes, where memory comes from, the
 * streams and the timeline. cuda-run.ts builds it; the parts (placement, buffers, weights, KV, hidden
 * states, layer compute, LM head) take it.
 */
import type { ModelSpec } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import type { Tier } from "../../core/tiers.js";
import type { PolicyCostContext } from "../../planner/spillway/evaluate-policy.js";
import type { DiskStore } from "../disk-store.js";
import type { OptWeights } from "../opt-checkpoint.js";
import type { HostLedger } from "../opt-runner.js";
import type { Encoding } from "../tensor-codec.js";
import type { DevicePointer } from "./device-pool.js";
import type { DeviceTimeline } from "./device-timeline.js";
import type { CudaNative } from "./native-api.js";

/** Device buffers and the tensors packed into them are aligned to this many bytes. */
export const ALIGN = 256;
export const align = (bytes: number) => Math.ceil(bytes / ALIGN) * ALIGN;

/** A tensor as placed: its encoding, size and tier, and where its bytes are. */
export interface Stored {
  readonly name: string;
  readonly values: number;
  readonly encoding: Encoding;
  readonly bytes: number;
  readonly tier: Tier;
  readonly vector: boolean;
  readonly device?: DevicePointer;
  readonly host?: Uint8Array;
  readonly diskKey?: string;
}

export function isVector(name: string): boolean {
  return name.endsWith(".bias") || name.includes("layer_norm");
}

export function isMatrix(name: string): boolean {
  return name.endsWith(".weight") && !name.includes("norm");
}

export interface CudaRunContext {
  readonly native: CudaNative;
  readonly model: ModelSpec;
  readonly policy: Policy;
  readonly context: PolicyCostContext;
  readonly disk: DiskStore;
  readonly weights: OptWeights;
  /** Prompt length and generated tokens per sequence. */
  readonly s: number;
  readonly n: number;
  /** Hidden size, FFN size, heads, head dimension, layers, vocabulary, token-embedding width. */
  readonly h: number;
  readonly f: number;
  readonly nh: number;
  readonly hd: number;
  readonly L: number;
  readonly vocab: number;
  readonly d: number;
  /** GPU batch size and GPU batches per block. */
  readonly gbs: number;
  readonly nb: number;
  readonly maxContext: number;
  readonly kvEncoding: Encoding;
  readonly rowBytes: number;
  /** Sequences of a GPU batch by where their KV lives (the CPU runner's split): GPU, CPU, then disk. */
  readonly gpuSeqs: number;
  readonly offSeqs: number;
  readonly cpuSeqs: number;
  readonly diskSeqs: number;
  /** Where hidden states live between layers. */
  readonly tier: Tier;
  readonly host: HostLedger;
  /** Page-locked host memory, counted on the host ledger and freed when the run ends. */
  pinned(bytes: number): Uint8Array;
  /** Device memory from the run's pool (the plan's GPU capacity). */
  alloc(bytes: number, what: string): DevicePointer;
  readonly timeline: DeviceTimeline;
  /** Host work that runs beside the schedule, awaited before the run ends or frees its buffers. */
  track<T>(work: Promise<T>): Promise<T>;
  /** Resolves once the device has passed `event`, polling without blocking the host. */
  whenDone(event: number | undefined): Promise<void>;
  /** Streams: compute, weights (h2d), KV load (h2d), KV store (d2h), activations; one stream without overlap. */
  readonly compute: number;
  readonly weightsStream: number;
  readonly kvLoad: number;
  readonly kvStore: number;
  readonly activations: number;
  /** The largest single copy of a layer's weights (the schedule's weightCopyChunkBytes; undefined: one copy per tensor). */
  readonly weightCopyChunkBytes?: number;
}
