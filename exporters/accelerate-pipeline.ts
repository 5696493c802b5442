/**
 * Hugging Face Accelerate for a pipeline plan on one node: a multi-GPU `device_map` that puts each
 * stage's layers on its GPU (the device index) and, by Accelerate's whole-module rule within the stage's
 * own placement, its offloaded layers on "cpu" or "disk", with `max_memory` per device. The input
 * embeddings go with the first stage, the final norm and an untied LM head with the last; a tied LM head
 * (OPT) shares the token table's device, as Accelerate keeps tied weights together. Accelerate runs the
 * GPUs one after another (its hooks move the hidden states between them), so the plan's micro-batches
 * have no equivalent. A device_map names one machine's devices and whole modules: plans over several
 * nodes, and tensor-parallel plans (a stage's layers split over several GPUs), are refused.
 */

import { InputError } from "../core/input-error.js";
import type { PipelinePlan } from "../core/pipeline-plan.js";
import type { Plan } from "../core/plan.js";
import { stageModel } from "../planner/pipeline/stage-model.js";
import {
  type AccelerateDevice,
  type AccelerateModule,
  accelerateModules,
  acceleratePolicyWarnings,
  placeModules,
} from "./accelerate.js";
import type { ExportResult } from "./export-result.js";
import type { ExportOptions } from "./export-source.js";
import { commonHeader, describeTiers, gibUp, hfModelId, planWeightBytes } from "./export-source.js";

/** Modules computed after the decoder layers: they go with the last stage (a tied head goes with the table). */
const OUTPUT_SIDE = new Set(["model.decoder.final_layer_norm", "model.decoder.project_out", "model.norm", "lm_head"]);

/** The stage that holds module `m`: its layer's, the first (inputs), or the last (outputs). */
export function accelerateModuleStage(m: AccelerateModule, pipeline: PipelinePlan, tiedHead: boolean): number {
  const last = pipeline.stages.length - 1;
  if (m.role.kind === "layer") {
    const index = m.role.index;
    return pipeline.stages.findIndex((s) => index >= s.layers.from && index < s.layers.to);
  }
  if (m.name === "lm_head" && tiedHead) return 0;
  return OUTPUT_SIDE.has(m.name) ? last : 0;
}

export function exportAcceleratePipeline(
  plan: Plan,
  pipeline: PipelinePlan,
  options: ExportOptions = {},
): ExportResult {
  const { modelSpec: model } = plan;
  const stages = pipeline.stages;
  const S = stages.length;
  const nodes = new Set(stages.map((s) => s.gpu.node));
  if (nodes.size > 1)
    throw new InputError(
      "--to",
      undefined,
      `the pipeline plan spans ${nodes.size} nodes; Accelerate's device_map places modules on one machine's GPUs and cannot express several nodes (export it to flexgen, vllm, deepspeed or llama.cpp, or plan on one node)`,
    );
  const T = pipeline.tensorParallelSize ?? 1;
  if (T > 1)
    throw new InputError(
      "--to",
      undefined,
      `the pipeline plan splits each stage over ${T} GPUs (tensor parallelism); Accelerate's device_map puts whole modules on one device each and cannot express it (export it to vllm, deepspeed or llama.cpp, or plan with --tensor-parallel 1)`,
    );
  const warnings: string[] = [];
  const tiedHead = model.tiedEmbeddings;
  const modules = accelerateModules(model);
  const deviceMap: Record<string, AccelerateDevice> = {};
  const maxMemory: Record<string, string> = {};
  const placed = { gpu: 0, cpu: 0, disk: 0 };
  const stageLines: string[] = [];
  for (const [i, stage] of stages.entries()) {
    const count = stage.layers.to - stage.layers.from;
    const mine = modules.filter((m) => accelerateModuleStage(m, pipeline, tiedHead) === i);
    const weights = planWeightBytes(stageModel(model, count, stage.role), stage.policy);
    // The stage's embedding bytes the plan counts but Accelerate puts elsewhere (a tied head's table) leave its budget.
    const total = { ...weights.total };
    const names = new Set(mine.map((m) => m.name));
    for (const m of accelerateModules(stageModel(model, count, stage.role)))
      if (m.role.kind === "embedding" && !names.has(m.name))
        total[weights.embeddingTiers[m.role.tensor] ?? "gpu"] -= m.bytes;
    const map = placeModules(mine, { ...weights, total }, stage.predicted.capacityBytes.cpu, stage.gpu.index);
    Object.assign(deviceMap, map.deviceMap);
    maxMemory[String(stage.gpu.index)] = `${gibUp(map.bytes.gpu)}GiB`;
    placed.gpu += map.bytes.gpu;
    placed.cpu += map.bytes.cpu;
    placed.disk += map.bytes.disk;
    stageLines.push(
      `stage ${i} (GPU ${stage.gpu.index}): layers ${stage.layers.from}-${stage.layers.to - 1}, ${map.layersOn.gpu} on the GPU, ${map.layersOn.cpu} on the CPU, ${map.layersOn.disk} on disk (plan: ${describeTiers(weights.total)})`,
    );
    if (weights.layers.some((l) => [l.gpu, l.cpu, l.disk].filter((x) => x > 0).length > 1))
      warnings.push(
        `stage ${i} splits its layers across tiers; Accelerate places whole modules, so whole layers go to GPU ${stage.gpu.index} while they fit the stage's GPU weight bytes`,
      );
    if (stage.policy.compressWeight)
      warnings.push(
        `stage ${i} stores 4-bit group-wise weights; Accelerate loads fp16, so fewer layers fit on GPU ${stage.gpu.index} than in the plan`,
      );
  }
  maxMemory.cpu = `${gibUp(placed.cpu)}GiB`;
  const seen = new Set<string>();
  for (const s of stages) for (const w of acceleratePolicyWarnings(s.policy)) seen.add(w);
  warnings.push(...seen);
  if (placed.disk > 0)
    warnings.push(
      "disk-mapped modules are written to offload_folder as fp16 .dat files and loaded back each forward pass",
    );
  if (S > 1)
    warnings.push(
      `Accelerate runs the GPUs one after another (its hooks move the hidden states from GPU to GPU): one batch in flight, so the plan's ${pipeline.microBatches} micro-batches overlapping the ${S} stages have no equivalent; each GPU is busy about 1/${S} of the time`,
    );
  if (tiedHead && S > 1)
    warnings.push(
      "the LM head is tied to the token table: Accelerate keeps tied weights on one device, so the head runs on the first stage's GPU and the last stage's hidden states return there",
    );
  // Keep the map in model order.
  const ordered: Record<string, AccelerateDevice> = {};
  for (const m of modules) ordered[m.name] = deviceMap[m.name]!;
  // dispatch_model computes every CPU- or disk-mapped module on its main device: the first GPU in the map, else the CPU.
  const mainDevice = Object.values(ordered).find((d) => typeof d === "number");
  if (mainDevice === undefined)
    warnings.push(
      "no module fits on a GPU in fp16: Accelerate's main device is then the CPU (dispatch_model) and every layer computes there",
    );
  else {
    const elsewhere = stages
      .map((s, i) => ({ s, i }))
      .filter(
        ({ s }) =>
          s.gpu.index !== mainDevice &&
          modules.some(
            (m) =>
              m.role.kind === "layer" &&
              m.role.index >= s.layers.from &&
              m.role.index < s.layers.to &&
              typeof ordered[m.name] !== "number",
          ),
      );
    if (elsewhere.length > 0)
      warnings.push(
        `Accelerate computes CPU- and disk-mapped modules on its main device, GPU ${mainDevice} (dispatch_model's first GPU), not on their stage's GPU: the offloaded layers of stage${elsewhere.length > 1 ? "s" : ""} ${elsewhere.map((e) => e.i).join(", ")} run on GPU ${mainDevice}`,
      );
  }
  const doc = {
    _spillway: {
      comment: [
        ...commonHeader(
          plan,
          "Hugging Face Accelerate on several GPUs of one node (transformers from_pretrained)",
          options,
        ),
        `usage: AutoModelForCausalLM.from_pretrained("${hfModelId(model)}", torch_dtype=torch.float16, device_map=cfg["device_map"], max_memory={int(k) if k.isdigit() else k: v for k, v in cfg["max_memory"].items()}, offload_folder=cfg["offload_folder"])`,
        `pipeline: ${S} stages, one per GPU (device_map values are CUDA device indices)`,
        ...stageLines,
        `this map (fp16): ${describeTiers(placed)}`,
        'max_memory: the weights this map puts on each device (for device_map="auto" add room for the KV cache)',
      ],
      model: hfModelId(model),
      hardware: plan.hardware,
      warnings,
    },
    torch_dtype: "float16",
    max_memory: maxMemory,
    device_map: ordered,
    offload_folder: "offload",
  };
  return { target: "accelerate", text: JSON.stringify(doc, null, 2) + "\n", warnings };
}
