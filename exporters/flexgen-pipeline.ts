/**
 * FlexGen's distributed runner for a pipeline plan: one `python -m flexgen.dist_flex_opt` process per
 * stage (rank), grouped by node, as FlexGen's own scripts launch it with mpirun
 * (benchmark/flexgen/bench_175b_4x1.sh); here each process gets its rank explicitly (--rank,
 * --local-rank, --world-size), so every node runs its own lines. FlexGen's runner splits the layers
 * evenly by count (dist_flex_opt.py: layers // stages, the remainder to the first stages) and sends
 * hidden states through host memory (--comm-device cpu) or between GPUs (gpu); each process reads its
 * own --percent (placement is local to a rank), while the batch flags must agree across ranks. It has
 * no tensor parallelism: a plan whose stages span several GPUs runs each on its first GPU, with a warning.
 */

import type { PipelinePlan } from "../core/pipeline-plan.js";
import type { Plan } from "../core/plan.js";
import type { ExportResult } from "./export-result.js";
import type { ExportOptions } from "./export-source.js";
import { commonHeader, exportText, hfModelId } from "./export-source.js";
import { flexgenPercent, flexgenPolicyFlags } from "./flexgen.js";
import { tensorParallelFallbackWarning } from "./tensor-parallel-fallback.js";

/** FlexGen's own split of `layers` into `stages` (flexgen/dist_flex_opt.py, pipeline_stage_sizes). */
export function flexgenStageSizes(layers: number, stages: number): number[] {
  return Array.from({ length: stages }, (_, i) => Math.floor(layers / stages) + (i < layers % stages ? 1 : 0));
}

export function exportFlexgenPipeline(plan: Plan, pipeline: PipelinePlan, options: ExportOptions = {}): ExportResult {
  const { modelSpec: model, workload } = plan;
  const S = pipeline.stages.length;
  const warnings: string[] = [];
  const tensorParallel = tensorParallelFallbackWarning(pipeline, "FlexGen's dist_flex_opt (one GPU per rank)");
  if (tensorParallel) warnings.push(tensorParallel);
  if (model.family !== "opt")
    warnings.push(`FlexGen's dist_flex_opt runs OPT models only; ${model.name} is a ${model.family} model`);
  const planned = pipeline.stages.map((s) => s.layers.to - s.layers.from);
  const flexgen = flexgenStageSizes(model.numLayers, S);
  if (planned.some((n, i) => n !== flexgen[i]))
    warnings.push(
      `FlexGen splits the layers evenly (${flexgen.join(", ")}); the plan balances them by cost (${planned.join(", ")}), which FlexGen cannot express: the stages it runs differ from the plan's`,
    );
  const commDevice = pipeline.links.some((l) => l.kind === "ethernet") ? "cpu" : "gpu";
  const first = pipeline.stages[0]!.policy;
  const lines: string[] = [];
  const byNode = new Map<number, number[]>();
  pipeline.stages.forEach((s, i) => byNode.set(s.gpu.node, [...(byNode.get(s.gpu.node) ?? []), i]));
  for (const [node, ranks] of byNode) {
    lines.push(
      `# node ${node}${node === pipeline.stages[0]!.gpu.node ? " (the head: HEAD_IP is this node's address)" : ""}`,
    );
    for (const rank of ranks) {
      const stage = pipeline.stages[rank]!;
      const p = stage.policy;
      const { percent } = flexgenPercent({ ...plan, policy: p });
      const args = [
        `CUDA_VISIBLE_DEVICES=${stage.gpu.index} python -m flexgen.dist_flex_opt`,
        "--head-ip $HEAD_IP",
        "--port 7777",
        `--rank ${rank}`,
        `--local-rank 0`,
        `--world-size ${S}`,
        `--comm-device ${commDevice}`,
        `--num-inner-iterations ${pipeline.microBatches}`,
        "--async-comm",
        `--model ${hfModelId(model)}`,
        `--prompt-len ${workload.promptLen}`,
        `--gen-len ${workload.genLen}`,
        `--gpu-batch-size ${p.gpuBatchSize}`,
        `--num-gpu-batches ${p.numGpuBatches}`,
        `--percent ${percent.join(" ")}`,
      ];
      args.push(...flexgenPolicyFlags(p, percent));
      if (p.gpuBatchSize !== first.gpuBatchSize || p.numGpuBatches !== first.numGpuBatches)
        warnings.push(`stage ${rank}'s batch differs from stage 0's; FlexGen's ranks must agree on it`);
      lines.push(`${args.join(" \\\n  ")} &`);
    }
    lines.push("");
  }
  const header = [
    ...commonHeader(plan, "FlexGen's distributed runner (python -m flexgen.dist_flex_opt)", options),
    `pipeline: ${S} stages, ${pipeline.microBatches} micro-batches (--num-inner-iterations) of ${first.gpuBatchSize} x ${first.numGpuBatches} sequences; layers ${planned.join(", ")}`,
    `run each node's lines on that node, with HEAD_IP set to node ${pipeline.stages[0]!.gpu.node}'s address; --local-rank 0 because CUDA_VISIBLE_DEVICES leaves each process one GPU`,
    `--comm-device ${commDevice}: ${commDevice === "cpu" ? "hidden states cross the network through host memory (gloo), as FlexGen's multi-node benchmark does" : "hidden states move between GPUs (NCCL)"}`,
    "FlexGen needs the number of prompts to be a multiple of gpu-batch-size x num-gpu-batches x num-inner-iterations",
  ];
  return { target: "flexgen", text: exportText(header, warnings, lines.join("\n")), warnings };
}
