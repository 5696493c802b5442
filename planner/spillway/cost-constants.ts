/**
 * Model-derived constants of the Spillway cost model (stored bytes and tensor counts of a layer, the
 * embeddings, the LM head's streaming buffers), computed once per (model, weight compression).
 */
import { layerParams, type ModelSpec } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import { realizePlacement } from "../../core/realize-placement.js";
import type { ModelCostConstants } from "./step-costs.js";

const constantsCache = new WeakMap<ModelSpec, Map<boolean, ModelCostConstants>>();

/** Model-derived constants, computed once per (model, compression): every exact evaluation needs them. */
export function costConstants(model: ModelSpec, compressWeight: boolean): ModelCostConstants {
  let perModel = constantsCache.get(model);
  if (!perModel) constantsCache.set(model, (perModel = new Map()));
  let constants = perModel.get(compressWeight);
  if (!constants) perModel.set(compressWeight, (constants = computeCostConstants(model, compressWeight)));
  return constants;
}

function computeCostConstants(model: ModelSpec, compressWeight: boolean): ModelCostConstants {
  const allGpu: Policy = {
    gpuBatchSize: 1,
    numGpuBatches: 1,
    weights: { gpu: 1, cpu: 0, disk: 0 },
    cache: { gpu: 1, cpu: 0, disk: 0 },
    activations: { gpu: 1, cpu: 0, disk: 0 },
    compressWeight,
    compressCache: false,
    cpuAttention: false,
    overlap: true,
    pinWeight: true,
  };
  const r = realizePlacement(model, allGpu);
  const allOff = realizePlacement(model, { ...allGpu, weights: { gpu: 0, cpu: 1, disk: 0 } });
  return {
    layerParams: layerParams(model),
    layerStoredBytes: r.layerWeightBytes.gpu,
    layerTensors: r.layerWeightTensors.gpu,
    embeddingStoredBytes: r.embeddingBytes.gpu,
    headBufferAllOffBytes: allOff.headBufferBytes,
  };
}
