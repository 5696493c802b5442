/**
 * Peak memory of mixtral-offloading per tier. GPU: everything but the experts (attention in HQQ at
 * attentionBits, the router gate, norms, embeddings and LM head in fp16: src/build_model.py
 * `replace_attn_layers` and `build_model`), `cacheSize` expert storages per layer plus the shared device
 * buffers (`ExpertCache.main_modules`, `device_expert_buffers`), the fp16 KV cache (transformers'
 * DynamicCache) and the largest working set of a forward. Host: one pinned storage per offloaded expert
 * plus the pinned buffers (`offloaded_storages`, `offloaded_storage_buffers`). Nothing on disk.
 */
import { type ExpertPolicy, storedBytes } from "../../core/expert-policy.js";
import { embeddingParams, kvDim, type ModelSpec, qDim } from "../../core/model-spec.js";
import type { Tier } from "../../core/tiers.js";
import type { Workload } from "../../core/workload.js";
import { routedExpertParams } from "../../planner/moe/evaluate-moe-policy.js";
import { HQQ_LAYOUTS, type HqqBits } from "./hqq.js";

/** `buffer_size=4` in the notebook's OffloadConfig: device expert buffers and pinned host buffers, shared by all layers. */
export const EXPERT_BUFFERS = 4;

export function mixtralOffloadingPeaks(
  model: ModelSpec,
  experts: ExpertPolicy,
  batch: number,
  workload: Workload,
): Record<Tier, number> {
  const moe = model.moe!;
  const L = model.numLayers;
  const h = model.hiddenSize;
  const q = qDim(model);
  const kv = kvDim(model);
  const heads = model.numHeads;
  const V = model.vocabSize;
  const { promptLen: s, genLen: n } = workload;
  const expertBytes = storedBytes(routedExpertParams(model), experts.bits);
  const attentionParams = h * (q + 2 * kv) + q * h;
  const residentPerLayer = storedBytes(attentionParams, experts.attentionBits) + (h * moe.numExperts + 2 * h) * 2;
  const resident = L * residentPerLayer + embeddingParams(model) * 2;
  const expertSlots = (L * experts.cacheSize + EXPERT_BUFFERS) * expertBytes;
  const kvBytes = L * batch * (s + n) * 2 * kv * 2;
  // Prefill: fp16 and fp32 logits of every position, one layer's scores (fp16, fp32 softmax, fp16 cast), repeat_kv copies.
  const prefillWorking = batch * s * V * (2 + 4) + batch * heads * s * s * (2 + 4 + 2) + 2 * batch * s * q * 2;
  // Decode: repeat_kv copies and the torch.cat copy of one layer's cache, and the largest HQQ call's fp16 scales and zeros.
  const ctx = s + n;
  const bits = experts.bits as HqqBits;
  const largestDequantized = ((2 * (h * moe.expertFfnSize)) / HQQ_LAYOUTS[bits].groupSize) * 2;
  const decodeWorking = 2 * batch * ctx * q * 2 + 2 * batch * ctx * kv * 2 + largestDequantized;
  const gpu = resident + expertSlots + kvBytes + Math.max(prefillWorking, decodeWorking);
  const cpu = (L * (moe.numExperts - experts.cacheSize) + EXPERT_BUFFERS) * expertBytes;
  return { gpu, cpu, disk: 0 };
}
