/**
 * The stage layout of a pipeline-parallel plan (a plan's optional `pipeline` field): contiguous layer
 * stages, each on one GPU of a cluster (or T GPUs of a node, tensor-parallel) with its own offloading policy, the micro-batches flowing through
 * them, and the links hidden states cross between stages.
 */
import type { ClusterProfile, GpuAddress, InterconnectKind } from "./cluster-profile.js";
import type { Link } from "./links.js";
import type { Policy } from "./policy.js";
import type { Resource } from "./resources.js";
import type { Tier } from "./tiers.js";

export const STAGE_ROLES = ["only", "first", "middle", "last"] as const;
export type StageRole = (typeof STAGE_ROLES)[number];

/** What the cost model predicts for one stage over the whole run (every micro-batch). */
export interface StagePrediction {
  /** One micro-batch's prompt step through the stage's layers. */
  readonly prefillSecondsPerMicroBatch: number;
  /** One micro-batch's decode steps through the stage's layers, all of them together. */
  readonly decodeSecondsPerMicroBatch: number;
  readonly busySeconds: Readonly<Record<Resource, number>>;
  readonly bytes: Readonly<Record<Link, number>>;
  /** The most allocated on each of this GPU's tiers with every micro-batch in flight. */
  readonly peakBytes: Readonly<Record<Tier, number>>;
  readonly capacityBytes: Readonly<Record<Tier, number>>;
  readonly feasible: boolean;
  readonly infeasibleReasons: readonly string[];
  /** The resource that bounds the stage, in words. */
  readonly bottleneck: string;
  /**
   * A stage of several GPUs (tensor parallelism): what each GPU sends in its layers' all-reduces over
   * the node's link, over the run, and the seconds they take (part of the GPU's busy time). Absent on one GPU.
   */
  readonly allReduce?: StageAllReduce;
}

/** A tensor-parallel stage's all-reduce traffic per GPU over the run. */
export interface StageAllReduce {
  readonly kind: InterconnectKind;
  readonly name: string;
  readonly bytesPerSecond: number;
  readonly latencySeconds: number;
  /** Bytes each GPU of the stage sends (ring all-reduce: 2(T - 1)/T of each reduced buffer). */
  readonly bytesPerGpu: number;
  readonly busySeconds: number;
}

export interface PipelineStage {
  /** The stage's GPU; with tensor parallelism, the first of its GPUs. */
  readonly gpu: GpuAddress;
  /** With tensor parallelism (T > 1): the stage's T GPUs of one node, `gpu` first. Absent: `gpu` alone. */
  readonly gpus?: readonly GpuAddress[];
  /** Decoder layers [from, to). */
  readonly layers: { readonly from: number; readonly to: number };
  /** first holds the input embedding, last the LM head, middle neither, only (one stage) both. */
  readonly role: StageRole;
  /** The stage's offloading policy (each GPU's, for its 1/T shard); numGpuBatches is the GPU batches of one micro-batch. */
  readonly policy: Policy;
  readonly predicted: StagePrediction;
}

/** A link between stages: stage `from`'s hidden states to stage `to` (the last link returns token ids to stage 0). */
export interface PipelineLink {
  readonly from: number;
  readonly to: number;
  readonly kind: InterconnectKind;
  readonly name: string;
  readonly bytesPerSecond: number;
  readonly latencySeconds: number;
  /** Bytes over the run, and seconds the link is busy. */
  readonly bytes: number;
  readonly busySeconds: number;
}

export interface PipelinePlan {
  /** The cluster profile the plan is for, so a plan file stands alone. */
  readonly cluster: ClusterProfile;
  /** Micro-batches in flight (FlexGen's --num-inner-iterations), each gbs x numGpuBatches sequences. */
  readonly microBatches: number;
  /** GPUs per stage (tensor parallelism within a node; every stage alike). Absent: 1, one GPU per stage. */
  readonly tensorParallelSize?: number;
  readonly stages: readonly PipelineStage[];
  readonly links: readonly PipelineLink[];
  /** Per stage, the share of the run it waits (pipeline fill, drain and bubbles). */
  readonly stageIdleFraction: readonly number[];
}
