/**
 * How Accelerate big-model inference realizes a policy: a device_map of whole modules.
 * accelerate utils/modeling.py infer_auto_device_map walks the modules in order and fills GPU 0, then
 * the CPU, then the disk, never splitting a decoder layer (`_no_split_modules`); big_modeling.py
 * dispatch_model executes every module on the GPU (CPU- and disk-mapped modules included) and keeps
 * the KV cache and activations there. So a policy's weight fractions become numbers of whole layers
 * (never more on a tier than the policy gives it: floor), ordered GPU, CPU, disk; the embeddings and the
 * LM head go whole to the tier the policy's embedding placement picks by the midpoint rule (GPU when it
 * gives none: they are the first modules infer_auto_device_map places, and the tied LM head follows
 * the token table). Everything the engine cannot express is listed in `notes`.
 */
import { layerParams, type ModelSpec } from "../core/model-spec.js";
import { type LayerGroup, layerGroupsOf, PLACEMENT_TOLERANCE, type Placement, type Policy } from "../core/policy.js";
import { embeddingTensors, placeTensors } from "../core/realize-placement.js";
import type { Tier } from "../core/tiers.js";
import { generateInexpressibleNotes } from "./hf/policy-notes.js";

const ON: Readonly<Record<Tier, Placement>> = {
  gpu: { gpu: 1, cpu: 0, disk: 0 },
  cpu: { gpu: 0, cpu: 1, disk: 0 },
  disk: { gpu: 0, cpu: 0, disk: 1 },
};

export interface AccelerateDeviceMap {
  /** Decoder layers mapped to each tier (GPU ones first, then CPU, then disk). */
  readonly layers: Readonly<Record<Tier, number>>;
  /** Tier of the token table (and of a tied LM head). */
  readonly embedTokens: Tier;
  /** Tier of the learned positions (OPT) and the final norm. */
  readonly positionsAndNorms: Tier;
  /** Tier of the LM head. */
  readonly lmHead: Tier;
  /** Sequences in the one batch generate() runs. */
  readonly batch: number;
  readonly realizedPolicy: Policy;
  /** What the policy asked for that Accelerate cannot express, and what it does instead. */
  readonly notes: readonly string[];
}

function wholeLayers(group: LayerGroup): Record<Tier, number> {
  const gpu = Math.floor(group.layers * group.weights.gpu + PLACEMENT_TOLERANCE);
  const upToCpu = Math.floor(group.layers * (group.weights.gpu + group.weights.cpu) + PLACEMENT_TOLERANCE);
  return { gpu, cpu: upToCpu - gpu, disk: group.layers - upToCpu };
}

export function accelerateDeviceMap(model: ModelSpec, policy: Policy): AccelerateDeviceMap {
  const notes: string[] = [];
  const layers = { gpu: 0, cpu: 0, disk: 0 };
  const groups = layerGroupsOf(policy, model.numLayers);
  for (const group of groups) {
    const n = wholeLayers(group);
    layers.gpu += n.gpu;
    layers.cpu += n.cpu;
    layers.disk += n.disk;
  }
  if (layers.gpu + layers.cpu + layers.disk !== model.numLayers)
    throw new Error(
      `policy layerGroups cover ${layers.gpu + layers.cpu + layers.disk} layers; ${model.name} has ${model.numLayers}`,
    );
  if (groups.some((g) => g.compute === "cpu"))
    notes.push(
      "layers the policy computes on the CPU run on the GPU: dispatch_model executes CPU- and disk-mapped modules on the main device",
    );
  const tensorTiers = new Map(
    placeTensors(embeddingTensors(model), policy.embeddings ?? ON.gpu).map(({ tensor, tier }) => [tensor.name, tier]),
  );
  const embedTokens = tensorTiers.get("embed_tokens") ?? "gpu";
  const positionsAndNorms = tensorTiers.get("positions_and_norms") ?? embedTokens;
  const lmHead = model.tiedEmbeddings ? embedTokens : (tensorTiers.get("lm_head") ?? embedTokens);
  const batch = policy.gpuBatchSize * policy.numGpuBatches;
  notes.push(...generateInexpressibleNotes(policy, batch));
  if (policy.pinWeight && layers.cpu > 0)
    notes.push(
      "pinned CPU weights cannot be expressed: offloaded weights stay in the pageable state dict (OffloadedWeightsLoader) and are copied synchronously",
    );
  if (policy.overlap && layers.gpu < model.numLayers)
    notes.push("no prefetch: an offloaded module's weights are copied when it runs (AlignDevicesHook.pre_forward)");
  const layerGroups = (["gpu", "cpu", "disk"] as const)
    .filter((t) => layers[t] > 0)
    .map((t) => ({ layers: layers[t], weights: ON[t], compute: "gpu" as const }));
  const perLayer = layerParams(model);
  const total = perLayer * model.numLayers;
  const weights = {
    gpu: (layers.gpu * perLayer) / total,
    cpu: (layers.cpu * perLayer) / total,
    disk: (layers.disk * perLayer) / total,
  };
  const { experts: _experts, ...rest } = policy;
  const realizedPolicy: Policy = {
    ...rest,
    gpuBatchSize: batch,
    numGpuBatches: 1,
    weights,
    cache: ON.gpu,
    activations: ON.gpu,
    compressWeight: false,
    compressCache: false,
    cpuAttention: false,
    overlap: false,
    pinWeight: false,
    layerGroups,
    embeddings: ON[embedTokens],
  };
  return { layers, embedTokens, positionsAndNorms, lmHead, batch, realizedPolicy, notes };
}
