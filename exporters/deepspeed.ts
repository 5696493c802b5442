/**
 * DeepSpeed ZeRO-Inference export: a ZeRO stage-3 config whose parameters live in CPU memory or on NVMe
 * (`offload_param`) and stream to the GPU layer by layer. It cannot keep part of the weights resident on
 * the GPU (beyond parameters under stage3_param_persistence_threshold) nor place KV cache by config.
 */
import { layerParams, layerWeightTensors, type ModelSpec } from "../core/model-spec.js";
import type { Plan } from "../core/plan.js";
import type { Policy } from "../core/policy.js";
import { activationTierOf, embeddingTensors } from "../core/realize-placement.js";
import type { ExportResult } from "./export-result.js";
import type { ExportOptions } from "./export-source.js";
import { blockSize, commonHeader, describeTiers, hfModelId, planWeightBytes } from "./export-source.js";

/** The ZeRO-Inference settings for parameters offloaded to `device` ("none": every parameter stays sharded over the GPUs). */
export function zeroInferenceConfig(
  model: ModelSpec,
  settings: {
    device: "none" | "cpu" | "nvme";
    pinMemory: boolean;
    overlap: boolean;
    /** Parameter elements NVMe offload keeps in CPU memory (per rank). */
    maxInCpu: number;
    quantBits: 4 | 8 | undefined;
  },
): { bufferSize: number; config: Record<string, unknown> } {
  const largestTensor = Math.max(
    ...layerWeightTensors(model).map((t) => t.params),
    ...embeddingTensors(model).map((t) => t.params),
  );
  const bufferSize = Math.max(layerParams(model), largestTensor);
  const { device, quantBits } = settings;
  const offloadParam: Record<string, unknown> = { device, pin_memory: settings.pinMemory };
  // Elements, not bytes: each buffer must hold the largest tensor; the CPU keeps maxInCpu of them.
  if (device === "nvme")
    Object.assign(offloadParam, {
      nvme_path: "/local_nvme",
      buffer_count: 5,
      buffer_size: bufferSize,
      max_in_cpu: settings.maxInCpu,
    });
  else Object.assign(offloadParam, { buffer_count: 5, buffer_size: bufferSize });
  const config = {
    fp16: { enabled: true },
    zero_optimization: {
      stage: 3,
      stage3_prefetch_bucket_size: settings.overlap ? layerParams(model) : 0,
      stage3_param_persistence_threshold: model.hiddenSize,
      stage3_max_live_parameters: 2 * layerParams(model),
      ...(device === "none" ? {} : { offload_param: offloadParam }),
    },
    ...(device === "nvme"
      ? { aio: { block_size: 1048576, queue_depth: 8, thread_count: 1, single_submit: false, overlap_events: true } }
      : {}),
    ...(quantBits
      ? {
          weight_quantization: {
            quantized_initialization: { num_bits: quantBits, group_size: 64, group_dim: 1, symmetric: false },
          },
        }
      : {}),
  };
  return { bufferSize, config };
}

/** What ZeRO-Inference cannot express of a policy's KV cache, compute and quantisation, and the weight bits it uses. */
export function zeroPolicyWarnings(policy: Policy): { warnings: string[]; quantBits: 4 | 8 | undefined } {
  const warnings: string[] = [];
  if (policy.cache.gpu < 1 - 1e-9)
    warnings.push(
      "the plan offloads KV cache; ZeRO-Inference's KV offload is a switch of its example script (--kv-offload), not a config key, and moves all of it to the CPU",
    );
  if (policy.compressCache)
    warnings.push("the plan compresses the KV cache to 4 bits; DeepSpeed has no KV quantisation in ZeRO-Inference");
  if (policy.cpuAttention)
    warnings.push("the plan computes decode attention on the CPU; ZeRO-Inference computes on the GPU");
  if (activationTierOf(policy.activations) !== "gpu")
    warnings.push("the plan keeps activations off the GPU; ZeRO-Inference keeps them on the GPU");
  if (policy.layerGroups?.some((g) => g.compute === "cpu"))
    warnings.push("the plan computes some layers on the CPU; ZeRO-Inference computes every layer on the GPU");
  const bits = policy.experts ? policy.experts.bits : policy.compressWeight ? 4 : 16;
  if (policy.experts)
    warnings.push("the plan caches MoE experts on the GPU; ZeRO-Inference streams whole layers, every expert included");
  if (bits !== 16 && bits !== 8 && bits !== 4)
    warnings.push(`the plan stores weights at ${bits} bits; ZeRO-Inference quantises to 4 or 8 bits only (4 used)`);
  return { warnings, quantBits: bits === 16 ? undefined : bits === 8 ? 8 : 4 };
}

export function exportDeepspeed(plan: Plan, options: ExportOptions = {}): ExportResult {
  const { modelSpec: model, policy } = plan;
  const warnings: string[] = [];
  const w = planWeightBytes(model, policy);
  const total = w.total.gpu + w.total.cpu + w.total.disk;
  const device = w.total.disk > 0 ? "nvme" : "cpu";
  const maxInCpu = Math.floor(w.total.cpu / model.bytesPerParam);
  if (w.total.gpu >= total - 1e-6)
    warnings.push(
      "the plan keeps every weight on the GPU; ZeRO-Inference still streams parameters from offload_param (drop offload_param to keep them resident)",
    );
  else if (w.total.gpu > w.embeddings.gpu + 1e-6)
    warnings.push(
      `the plan keeps ${describeTiers(w.total)} of weights; ZeRO-Inference streams every layer from ${device === "nvme" ? "NVMe" : "CPU memory"} and cannot keep a share of each layer resident on the GPU`,
    );
  if (w.total.disk > 0 && w.total.cpu > 0)
    warnings.push(
      `the plan splits offloaded weights between CPU and disk; max_in_cpu keeps ${maxInCpu} parameters in CPU memory, the rest on NVMe`,
    );
  const policyWarnings = zeroPolicyWarnings(policy);
  warnings.push(...policyWarnings.warnings);
  const { quantBits } = policyWarnings;
  const { bufferSize, config: zero } = zeroInferenceConfig(model, {
    device,
    pinMemory: policy.pinWeight,
    overlap: policy.overlap,
    maxInCpu,
    quantBits,
  });
  const block = blockSize(policy);
  const config = {
    _spillway: {
      comment: [
        ...commonHeader(plan, "DeepSpeed ZeRO-Inference (ZeRO stage 3 with parameter offload)", options),
        `usage: deepspeed.initialize(model=AutoModelForCausalLM.from_pretrained("${hfModelId(model)}", torch_dtype=torch.float16), config=cfg)[0].module, inside HfDeepSpeedConfig(cfg)`,
        `plan weights (as stored): ${describeTiers(w.total)}`,
        `offload_param: ${device}${device === "nvme" ? " (nvme_path is a placeholder: your NVMe mount)" : ""}; buffer_size ${bufferSize} parameters holds the largest layer and tensor`,
        `batch: a block of ${block} sequences goes through each layer per fetch, as ZeRO-Inference batches`,
        ...(quantBits
          ? [`weight_quantization: ${quantBits}-bit group-wise (group 64, asymmetric), ZeRO-Inference's own format`]
          : []),
      ],
      model: hfModelId(model),
      hardware: plan.hardware,
      warnings,
    },
    ...zero,
    train_micro_batch_size_per_gpu: block,
    train_batch_size: block,
    steps_per_print: 2000,
    wall_clock_breakdown: false,
  };
  return { target: "deepspeed", text: JSON.stringify(config, null, 2) + "\n", warnings };
}
