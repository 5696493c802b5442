/** The stage layout `spillway plan` prints for a pipeline plan: one line per stage, per tensor-parallel group's all-reduces and per link. */
import type { PipelinePlan } from "../core/pipeline-plan.js";
import type { Placement } from "../core/policy.js";
import { formatBytes, formatSeconds } from "../core/units.js";

const split = (p: Placement) => [p.gpu, p.cpu, p.disk].map((x) => `${(100 * x).toFixed(0)}`).join("/");

/** A stage's GPUs: `node.index`, or `node.first-last` for a tensor-parallel group. */
function stageGpusText(s: PipelinePlan["stages"][number]): string {
  const gpus = s.gpus ?? [s.gpu];
  const last = gpus.at(-1)!;
  return gpus.length > 1 ? `${s.gpu.node}.${s.gpu.index}-${last.index}` : `${s.gpu.node}.${s.gpu.index}`;
}

export function formatPipeline(pipeline: PipelinePlan): string[] {
  const T = pipeline.tensorParallelSize ?? 1;
  const lines = [
    `Pipeline  ${pipeline.stages.length} stages${T > 1 ? ` of ${T} GPUs (tensor parallel)` : ""} on ${pipeline.cluster.name} (${pipeline.cluster.nodes} x ${pipeline.cluster.gpusPerNode} GPUs), ${pipeline.microBatches} micro-batches in flight`,
    "  stage  GPU (node.index)  layers       batch        weights/KV/act % GPU/CPU/disk     step prefill / decode     peak GPU / CPU / disk            idle",
  ];
  pipeline.stages.forEach((s, i) => {
    const p = s.policy;
    const d = s.predicted;
    lines.push(
      `  ${String(i).padEnd(6)} ${stageGpusText(s).padEnd(17)} ${`[${s.layers.from}, ${s.layers.to})`.padEnd(12)} ${`${p.gpuBatchSize} x ${p.numGpuBatches}`.padEnd(12)} ${`${split(p.weights)} ${split(p.cache)} ${split(p.activations)}${p.compressWeight ? " 4-bit" : ""}`.padEnd(33)} ${`${formatSeconds(d.prefillSecondsPerMicroBatch)} / ${formatSeconds(d.decodeSecondsPerMicroBatch)}`.padEnd(25)} ${`${formatBytes(d.peakBytes.gpu)} / ${formatBytes(d.peakBytes.cpu)} / ${formatBytes(d.peakBytes.disk)}`.padEnd(32)} ${(100 * pipeline.stageIdleFraction[i]!).toFixed(0)}%${d.feasible ? "" : "  DOES NOT FIT"}`,
    );
  });
  pipeline.stages.forEach((s, i) => {
    const a = s.predicted.allReduce;
    if (a)
      lines.push(
        `  stage ${i} all-reduce  ${a.name}: ${formatBytes(a.bytesPerGpu)} per GPU in ${formatSeconds(a.busySeconds)} busy`,
      );
  });
  for (const l of pipeline.links)
    lines.push(`  link ${l.from}->${l.to}  ${l.name}: ${formatBytes(l.bytes)} in ${formatSeconds(l.busySeconds)} busy`);
  return lines;
}
