/**
 * Tensor parallelism within a node (Megatron-LM's layout, as vLLM and DeepSpeed-Inference shard a
 * decoder): a stage spans T GPUs of one node; each holds 1/T of every layer (the attention heads and KV
 * heads split by head, the MLP's intermediate columns, the embedding table and LM head by vocabulary
 * rows; norms, the position table and the row-parallel biases whole), 1/T of the KV cache, and its
 * host share offloads its own 1/T. Each GPU's work is then the single-GPU cost model of its shard
 * (shardModel), plus two all-reduces of the hidden state per layer and batch over the node's link
 * (core/ring-all-reduce.ts), priced in the step cost model through HardwareRates.tensorParallel.
 * Not priced: the all-reduce of a vocabulary-parallel embedding lookup and the gather of the LM head's
 * logits (one each per token step, against two per layer).
 */
import { type ClusterProfile, linkBetween } from "../../core/cluster-profile.js";
import { headDim, type ModelSpec } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import {
  layerAllReduceBytesPerGpu,
  layerAllReduceSeconds,
  type TensorParallelLink,
} from "../../core/ring-all-reduce.js";
import type { Workload } from "../../core/workload.js";

/** The tensor-parallel sizes a stage of `model` may take on `cluster`: divisors of a node's GPUs that split the heads, KV heads and MLP evenly. */
export function tensorParallelSizes(model: ModelSpec, cluster: ClusterProfile): number[] {
  const out: number[] = [];
  for (let t = 1; t <= cluster.gpusPerNode; t++)
    if (
      cluster.gpusPerNode % t === 0 &&
      model.numHeads % t === 0 &&
      model.numKvHeads % t === 0 &&
      model.ffnSize % t === 0 &&
      (t === 1 || cluster.intraNode !== undefined)
    )
      out.push(t);
  return out;
}

/** What one GPU of a T-way group holds and computes, as a model the single-GPU cost model takes; T = 1 is the model itself. */
export function shardModel(model: ModelSpec, size: number): ModelSpec {
  if (size === 1) return model;
  return {
    ...model,
    numHeads: model.numHeads / size,
    numKvHeads: model.numKvHeads / size,
    headDim: headDim(model),
    ffnSize: model.ffnSize / size,
    vocabSize: Math.ceil(model.vocabSize / size),
  };
}

/** The link a T-way group of `cluster` all-reduces over (a node's GPU-to-GPU link); undefined for T = 1. */
export function tensorParallelLink(cluster: ClusterProfile, size: number): TensorParallelLink | undefined {
  if (size === 1) return undefined;
  const { bytesPerSecond, latencySeconds } = linkBetween(cluster, { node: 0, index: 0 }, { node: 0, index: 1 });
  return { size, bytesPerSecond, latencySeconds };
}

/**
 * What each GPU of a stage's T-way group sends in all-reduces over one micro-batch (its policy's GPU
 * batches), every token step, and the seconds they take: two per layer and GPU batch, of the batch's
 * hidden states (the prompt's tokens at step 0, one token at each of the genLen - 1 decode steps).
 */
export function allReducePerMicroBatch(
  layers: number,
  hiddenSize: number,
  workload: Workload,
  policy: Policy,
  link: TensorParallelLink,
): { readonly bytesPerGpu: number; readonly seconds: number } {
  const batches = layers * policy.numGpuBatches;
  const steps = workload.genLen - 1;
  const promptTokens = policy.gpuBatchSize * workload.promptLen;
  const decodeTokens = policy.gpuBatchSize;
  return {
    bytesPerGpu:
      batches *
      (layerAllReduceBytesPerGpu(promptTokens, hiddenSize, link.size) +
        steps * layerAllReduceBytesPerGpu(decodeTokens, hiddenSize, link.size)),
    seconds:
      batches *
      (layerAllReduceSeconds(promptTokens, hiddenSize, link) +
        steps * layerAllReduceSeconds(decodeTokens, hiddenSize, link)),
  };
}
