/**
 * vLLM for a pipeline plan: `vllm serve` with --pipeline-parallel-size (the stages),
 * --tensor-parallel-size (the plan's GPUs per stage, 1 unless it shards layers), --cpu-offload-gb (per
 * GPU: the largest stage's off-GPU weights, of its shard), and the plan's layer split through VLLM_PP_LAYER_PARTITION (vLLM's
 * vllm/distributed/utils.py get_pp_indices reads it). Across nodes vLLM runs on a Ray cluster: `ray
 * start --head` on the first node, `ray start --address` on the others, then `vllm serve` on the head
 * with --distributed-executor-backend ray (vLLM's distributed serving guide).
 */

import type { PipelinePlan } from "../core/pipeline-plan.js";
import type { Plan } from "../core/plan.js";
import { shardModel } from "../planner/pipeline/tensor-parallel.js";
import type { ExportResult } from "./export-result.js";
import type { ExportOptions } from "./export-source.js";
import { commonHeader, exportText, gibUp, hfModelId, planWeightBytes } from "./export-source.js";

export function exportVllmPipeline(plan: Plan, pipeline: PipelinePlan, options: ExportOptions = {}): ExportResult {
  const { modelSpec: model, workload } = plan;
  const S = pipeline.stages.length;
  const T = pipeline.tensorParallelSize ?? 1;
  const warnings: string[] = [];
  const counts = pipeline.stages.map((s) => s.layers.to - s.layers.from);
  // Each stage's off-GPU weight bytes per GPU (its layers' share of the model, or its 1/T shard, under its own policy).
  const offGpu = pipeline.stages.map((s, i) => {
    const w = planWeightBytes(shardModel({ ...model, numLayers: counts[i]! }, T), s.policy);
    return w.total.cpu + w.total.disk;
  });
  const offloadGiB = gibUp(Math.max(...offGpu));
  const nodes = [...new Set(pipeline.stages.map((s) => s.gpu.node))];
  const block =
    pipeline.stages[0]!.policy.gpuBatchSize * pipeline.stages[0]!.policy.numGpuBatches * pipeline.microBatches;
  const serve = [
    `VLLM_PP_LAYER_PARTITION=${counts.join(",")} vllm serve`,
    hfModelId(model),
    "--dtype float16",
    `--pipeline-parallel-size ${S}`,
    `--tensor-parallel-size ${T}`,
    `--max-model-len ${workload.promptLen + workload.genLen}`,
    `--max-num-seqs ${block}`,
  ];
  if (offloadGiB > 0) serve.push(`--cpu-offload-gb ${offloadGiB}`);
  if (nodes.length > 1) serve.push("--distributed-executor-backend ray");
  if (pipeline.stages.some((s) => s.policy.cache.gpu < 1))
    warnings.push("the plan keeps KV cache off the GPU; vLLM keeps running sequences' KV on the GPU");
  if (pipeline.stages.some((s) => s.policy.weights.disk > 0))
    warnings.push("the plan keeps weights on disk; vLLM has no disk tier: --cpu-offload-gb counts them as CPU memory");
  if (pipeline.stages.some((s) => s.policy.compressWeight || s.policy.compressCache))
    warnings.push(
      "the plan compresses weights or KV to 4 bits; serve a quantised checkpoint (GPTQ/AWQ) and fp8 KV for the nearest",
    );
  if (new Set(offGpu).size > 1)
    warnings.push(
      `--cpu-offload-gb is one figure for every GPU; the stages offload different amounts (${offGpu.map((b) => gibUp(b)).join(", ")} GiB): the largest is given`,
    );
  const lines: string[] = [];
  if (nodes.length > 1) {
    lines.push(`# node ${nodes[0]} (the head):`, "ray start --head --port=6379");
    for (const node of nodes.slice(1)) lines.push(`# node ${node}:`, "ray start --address=$HEAD_IP:6379");
    lines.push(`# then, on node ${nodes[0]}:`);
  }
  lines.push(serve.join(" \\\n  "));
  const header = [
    ...commonHeader(plan, "vLLM (vllm serve, pipeline parallel)", options),
    `pipeline: ${S} stages${T > 1 ? ` of ${T} GPUs each (--tensor-parallel-size ${T}: vLLM shards every layer over a stage's GPUs, Megatron-style, as the plan does)` : ""} on ${nodes.length} node${nodes.length > 1 ? "s" : ""}; layers ${counts.join(", ")} (VLLM_PP_LAYER_PARTITION)`,
    "vLLM schedules its own micro-batches and continuous batching; the plan's micro-batch count is not a vLLM setting",
  ];
  return { target: "vllm", text: exportText(header, warnings, lines.join("\n")), warnings };
}
