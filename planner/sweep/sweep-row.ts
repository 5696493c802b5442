/**
 * One row of a sweep: a profile, its GPUs, whether the model fits, the plan's policy in brief (GPU
 * batch size x GPU batches; stages, their GPUs each and micro-batches for a pipeline), its predicted throughput and,
 * given a price per GPU-hour, its cost per million generated tokens.
 */
import { gpuCount } from "../../core/cluster-profile.js";
import { dollarsPerGpuHourOf, dollarsPerMillionTokens, type GpuHourPrices } from "./gpu-hour-prices.js";
import { isCluster, type PlanOutcome, type SweepHardware } from "./plan-on-target.js";

export interface SweepRow {
  /** The profile's name. */
  readonly profile: string;
  readonly kind: "gpu" | "cluster";
  /** The GPU's name (every GPU of a cluster is alike). */
  readonly gpu: string;
  readonly nodes: number;
  readonly gpusPerNode: number;
  /** GPUs of the profile: nodes x GPUs per node. */
  readonly gpus: number;
  /** Whether a plan was made and fits. */
  readonly fits: boolean;
  /** Why not, when it does not fit. */
  readonly reason?: string;
  /** The plan's GPU batch size and GPU batches per block (a pipeline: every micro-batch in flight); absent when no plan was made. */
  readonly gpuBatchSize?: number;
  readonly numGpuBatches?: number;
  /** Pipeline stages (1: one GPU) and micro-batches in flight (1: no pipeline). */
  readonly stages?: number;
  readonly microBatches?: number;
  /** GPUs per stage (tensor parallelism within a node; 1: one GPU per stage). */
  readonly tensorParallelSize?: number;
  /** Predicted generated tokens per second over the whole run (prefill included). */
  readonly throughputTokensPerSecond?: number;
  readonly bottleneck?: string;
  readonly dollarsPerGpuHour?: number;
  /** GPUs x dollars per GPU-hour / 3600 / (token/s) x 1e6; only for a plan that fits and a price given. */
  readonly dollarsPerMillionTokens?: number;
}

export function sweepRow(hardware: SweepHardware, outcome: PlanOutcome, prices?: GpuHourPrices): SweepRow {
  const cluster = isCluster(hardware);
  const nodes = cluster ? hardware.nodes : 1;
  const gpusPerNode = cluster ? hardware.gpusPerNode : 1;
  const gpus = cluster ? gpuCount(hardware) : 1;
  const head = {
    profile: hardware.name,
    kind: cluster ? ("cluster" as const) : ("gpu" as const),
    gpu: (cluster ? hardware.perGpu : hardware).gpu.name,
    nodes,
    gpusPerNode,
    gpus,
  };
  const price = dollarsPerGpuHourOf(prices, hardware.name);
  const priced = price !== undefined ? { dollarsPerGpuHour: price } : {};
  if ("planError" in outcome) return { ...head, fits: false, reason: outcome.planError, ...priced };
  const { policy, predicted, pipeline } = outcome.plan;
  const fits = predicted.feasible;
  const throughput = predicted.throughputTokensPerSecond;
  return {
    ...head,
    fits,
    ...(fits ? {} : { reason: `the policy does not fit: ${predicted.infeasibleReasons.join("; ")}` }),
    gpuBatchSize: policy.gpuBatchSize,
    numGpuBatches: policy.numGpuBatches,
    stages: pipeline ? pipeline.stages.length : 1,
    microBatches: pipeline ? pipeline.microBatches : 1,
    tensorParallelSize: pipeline?.tensorParallelSize ?? 1,
    throughputTokensPerSecond: throughput,
    bottleneck: predicted.bottleneck,
    ...priced,
    ...(fits && price !== undefined && throughput > 0
      ? { dollarsPerMillionTokens: dollarsPerMillionTokens(gpus, price, throughput) }
      : {}),
  };
}
