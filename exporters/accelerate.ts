/**
 * Hugging Face Accelerate export: `max_memory` and a `device_map` over the model's real module names
 * (pass both to `from_pretrained(..., device_map=..., max_memory=..., offload_folder=...)`). Accelerate
 * places whole modules: decoder layers go to the GPU while they fit in the plan's GPU weight bytes,
 * then to the CPU within its CPU bytes, then to disk.
 */
import type { ModelSpec } from "../core/model-spec.js";
import type { Plan } from "../core/plan.js";
import { isUniform, type Policy } from "../core/policy.js";
import { activationTierOf } from "../core/realize-placement.js";
import type { Tier } from "../core/tiers.js";
import { formatBytes } from "../core/units.js";
import type { ExportResult } from "./export-result.js";
import type { ExportOptions } from "./export-source.js";
import {
  commonHeader,
  describeTiers,
  gibUp,
  hfModelId,
  layerBytesFp16,
  type PlanWeightBytes,
  planWeightBytes,
} from "./export-source.js";

/** A CUDA device index, the CPU, or disk (offload_folder). */
export type AccelerateDevice = number | "cpu" | "disk";

export interface AccelerateModule {
  readonly name: string;
  /** Uncompressed bytes of its parameters (0 for tied or parameter-free modules). */
  readonly bytes: number;
  /** Which of Spillway's embedding tensors it belongs to, or the decoder layer index. */
  readonly role:
    | { kind: "embedding"; tensor: "embed_tokens" | "positions_and_norms" | "lm_head" }
    | { kind: "layer"; index: number }
    | { kind: "buffers" };
}

/** Every top-level module of the Hugging Face model that holds weights, in model order. */
export function accelerateModules(model: ModelSpec): AccelerateModule[] {
  const h = model.hiddenSize;
  const b = model.bytesPerParam;
  const layer = layerBytesFp16(model);
  const layers = (prefix: string): AccelerateModule[] =>
    Array.from({ length: model.numLayers }, (_, i) => ({
      name: `${prefix}.layers.${i}`,
      bytes: layer,
      role: { kind: "layer", index: i },
    }));
  const head: AccelerateModule = {
    name: "lm_head",
    bytes: model.tiedEmbeddings ? 0 : model.vocabSize * h * b,
    role: { kind: "embedding", tensor: model.tiedEmbeddings ? "embed_tokens" : "lm_head" },
  };
  if (model.family === "opt") {
    const projected = model.wordEmbedDim !== h;
    return [
      {
        name: "model.decoder.embed_tokens",
        bytes: model.vocabSize * model.wordEmbedDim * b,
        role: { kind: "embedding", tensor: "embed_tokens" },
      },
      {
        name: "model.decoder.embed_positions",
        bytes: (model.maxPositions + 2) * h * b,
        role: { kind: "embedding", tensor: "positions_and_norms" },
      },
      ...(projected
        ? [
            {
              name: "model.decoder.project_out",
              bytes: model.wordEmbedDim * h * b,
              role: { kind: "embedding", tensor: "positions_and_norms" },
            } as const,
            {
              name: "model.decoder.project_in",
              bytes: model.wordEmbedDim * h * b,
              role: { kind: "embedding", tensor: "positions_and_norms" },
            } as const,
          ]
        : []),
      ...(projected
        ? []
        : [
            {
              name: "model.decoder.final_layer_norm",
              bytes: 2 * h * b,
              role: { kind: "embedding", tensor: "positions_and_norms" },
            } as const,
          ]),
      ...layers("model.decoder"),
      head,
    ];
  }
  return [
    { name: "model.embed_tokens", bytes: model.vocabSize * h * b, role: { kind: "embedding", tensor: "embed_tokens" } },
    ...layers("model"),
    { name: "model.norm", bytes: h * b, role: { kind: "embedding", tensor: "positions_and_norms" } },
    { name: "model.rotary_emb", bytes: 0, role: { kind: "buffers" } },
    head,
  ];
}

export interface AccelerateMap {
  readonly deviceMap: Record<string, AccelerateDevice>;
  /** Uncompressed bytes Accelerate puts on each device. */
  readonly bytes: { gpu: number; cpu: number; disk: number };
  readonly layersOn: { gpu: number; cpu: number; disk: number };
}

export function accelerateDeviceMap(plan: Plan): AccelerateMap {
  const { modelSpec: model, policy } = plan;
  const modules = accelerateModules(model);
  const map = placeModules(modules, planWeightBytes(model, policy), plan.predicted.capacityBytes.cpu, 0);
  // Keep the map in model order.
  const ordered: Record<string, AccelerateDevice> = {};
  for (const m of modules) ordered[m.name] = map.deviceMap[m.name]!;
  return { ...map, deviceMap: ordered };
}

/**
 * Accelerate's placement of `modules` on GPU `gpu`, the CPU and disk: embeddings where `weights` puts
 * them, then whole layers in order on the GPU while they fit its weight bytes, then on the CPU within its
 * bytes, then on disk.
 */
export function placeModules(
  modules: readonly AccelerateModule[],
  weights: PlanWeightBytes,
  cpuCapacityBytes: number,
  gpu: number,
): AccelerateMap {
  const device = (tier: Tier): AccelerateDevice => (tier === "gpu" ? gpu : tier);
  const deviceMap: Record<string, AccelerateDevice> = {};
  const bytes = { gpu: 0, cpu: 0, disk: 0 };
  const layersOn = { gpu: 0, cpu: 0, disk: 0 };
  // Embeddings first, where the plan puts them; the layers then fill what is left of each tier's bytes.
  for (const m of modules) {
    if (m.role.kind !== "embedding") continue;
    const tier = weights.embeddingTiers[m.role.tensor] ?? "gpu";
    deviceMap[m.name] = device(tier);
    bytes[tier] += m.bytes;
  }
  // Stored bytes below fp16 (compressed or quantised experts): fp16 layers need more room than the plan's
  // CPU bytes, so the CPU takes up to 80% of its capacity before spilling to disk.
  const fp16Total = modules.reduce((s, m) => s + m.bytes, 0);
  const compressed = weights.total.gpu + weights.total.cpu + weights.total.disk < fp16Total - 1;
  const cpuCapacity = 0.8 * cpuCapacityBytes;
  const budget = {
    gpu: weights.total.gpu,
    cpu: compressed ? Math.max(weights.total.cpu, cpuCapacity) : weights.total.cpu,
  };
  const noDisk = compressed ? !Number.isFinite(cpuCapacity) : weights.total.disk <= 0;
  for (const m of modules) {
    if (m.role.kind !== "layer") continue;
    let tier: Tier;
    if (layersOn.cpu === 0 && layersOn.disk === 0 && bytes.gpu + m.bytes <= budget.gpu + 1e-6) tier = "gpu";
    else if (noDisk || (layersOn.disk === 0 && bytes.cpu + m.bytes <= budget.cpu + 1e-6)) tier = "cpu";
    else tier = "disk";
    deviceMap[m.name] = device(tier);
    bytes[tier] += m.bytes;
    layersOn[tier] += 1;
  }
  for (const m of modules)
    if (m.role.kind === "buffers") deviceMap[m.name] = layersOn.gpu > 0 || bytes.gpu > 0 ? gpu : "cpu";
  return { deviceMap, bytes, layersOn };
}

/** What Accelerate cannot express of a policy's experts, compute, KV cache and activations. */
export function acceleratePolicyWarnings(policy: Policy): string[] {
  const warnings: string[] = [];
  if (policy.experts)
    warnings.push(
      "the plan caches MoE experts on the GPU and stores them quantised; Accelerate places whole fp16 layers and has no expert cache",
    );
  if (policy.layerGroups?.some((g) => g.compute === "cpu"))
    warnings.push(
      "Accelerate moves CPU- and disk-mapped layers to the GPU to compute them (hooks); the plan's CPU-computed layers run on the GPU",
    );
  if (policy.cache.gpu < 1 - 1e-9)
    warnings.push(
      "the plan keeps KV cache off the GPU; transformers keeps the KV cache with each layer's compute (the GPU)",
    );
  if (policy.cpuAttention)
    warnings.push("the plan computes decode attention on the CPU; Accelerate computes every layer on the GPU");
  if (activationTierOf(policy.activations) !== "gpu")
    warnings.push("the plan keeps activations off the GPU; Accelerate does not offload activations");
  return warnings;
}

export function exportAccelerate(plan: Plan, options: ExportOptions = {}): ExportResult {
  const { modelSpec: model, policy } = plan;
  const warnings: string[] = [];
  const weights = planWeightBytes(model, policy);
  const map = accelerateDeviceMap(plan);
  const splits = weights.layers.some((l) => [l.gpu, l.cpu, l.disk].filter((x) => x > 0).length > 1);
  if (splits)
    warnings.push(
      "the plan splits layers across tiers; Accelerate places whole modules, so whole layers go to the GPU while they fit the plan's GPU weight bytes",
    );
  if (policy.compressWeight)
    warnings.push(
      `the plan stores 4-bit group-wise weights; Accelerate loads fp16 (${formatBytes(map.bytes.gpu)} on the GPU within the plan's ${formatBytes(weights.total.gpu)}), so fewer layers fit than in the plan (bitsandbytes' load_in_4bit is a different format)`,
    );
  if (map.bytes.disk > 0 || weights.total.disk > 0)
    warnings.push(
      "disk-mapped modules are written to offload_folder as fp16 .dat files and loaded back each forward pass",
    );
  warnings.push(...acceleratePolicyWarnings(policy));
  if (!isUniform(policy) && !splits) {
    /* per-layer plans of whole layers map directly */
  }

  const cap = plan.predicted.capacityBytes;
  const doc = {
    _spillway: {
      comment: [
        ...commonHeader(plan, "Hugging Face Accelerate (transformers from_pretrained)", options),
        `usage: AutoModelForCausalLM.from_pretrained("${hfModelId(model)}", torch_dtype=torch.float16, device_map=cfg["device_map"], max_memory=cfg["max_memory"], offload_folder=cfg["offload_folder"])`,
        `plan weights (as stored): ${describeTiers(weights.total)}; this map (fp16): ${describeTiers(map.bytes)}`,
        `layers: ${map.layersOn.gpu} on GPU 0, ${map.layersOn.cpu} on the CPU, ${map.layersOn.disk} on disk`,
        'max_memory: the weights this map puts on each device (for device_map="auto" add room for the KV cache)',
      ],
      model: hfModelId(model),
      hardware: plan.hardware,
      ...(cap ? { capacityBytes: cap } : {}),
      warnings,
    },
    torch_dtype: "float16",
    max_memory: { "0": `${gibUp(map.bytes.gpu)}GiB`, cpu: `${gibUp(map.bytes.cpu)}GiB` },
    device_map: map.deviceMap,
    offload_folder: "offload",
  };
  return {
    target: "accelerate",
    text: JSON.stringify(doc, null, 2) + "\n",
    warnings,
    enginePolicy: mapPolicy(plan, map),
  };
}

/**
 * This device_map as a policy the Accelerate engine model realizes into the very same map: whole fp16 layers,
 * GPU ones first, then CPU, then disk (its rule, engines/accelerate-device-map.ts), and the token table where
 * the map puts it. The export's prediction and its batch fit are for the map written, not for the plan's
 * policy, whose 4-bit or disk bytes Accelerate would realize otherwise.
 */
function mapPolicy(plan: Plan, map: AccelerateMap): Policy {
  const L = plan.modelSpec.numLayers;
  const on = (tier: Tier) => ({ gpu: 0, cpu: 0, disk: 0, [tier]: 1 });
  const embed = map.deviceMap[accelerateModules(plan.modelSpec).find((m) => m.role.kind === "embedding")!.name]!;
  return {
    ...plan.policy,
    weights: { gpu: map.layersOn.gpu / L, cpu: map.layersOn.cpu / L, disk: map.layersOn.disk / L },
    compressWeight: false,
    layerGroups: (["gpu", "cpu", "disk"] as const)
      .filter((tier) => map.layersOn[tier] > 0)
      .map((tier) => ({ layers: map.layersOn[tier], weights: on(tier), compute: "gpu" as const })),
    embeddings: on(typeof embed === "number" ? "gpu" : embed),
  };
}
