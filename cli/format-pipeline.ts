/** The stage layout `spillway plan` prints for a pipeline plan: one line per stage and per link. */
import type { PipelinePlan } from "../core/pipeline-plan.js";
import type { Placement } from "../core/policy.js";
import { formatBytes, formatSeconds } from "../core/units.js";

const split = (p: Placement) => [p.gpu, p.cpu, p.disk].map((x) => `${(100 * x).toFixed(0)}`).join("/");

export function formatPipeline(pipeline: PipelinePlan): string[] {
  const lines = [
    `Pipeline  ${pipeline.stages.length} stages on ${pipeline.cluster.name} (${pipeline.cluster.nodes} x ${pipeline.cluster.gpusPerNode} GPUs), ${pipeline.microBatches} micro-batches in flight`,
    "  stage  GPU (node.index)  layers       batch        weights/KV/act % GPU/CPU/disk     step prefill / decode     peak GPU / CPU / disk            idle",
  ];
  pipeline.stages.forEach((s, i) => {
    const p = s.policy;
    const d = s.predicted;
    lines.push(
      `  ${String(i).padEnd(6)} ${`${s.gpu.node}.${s.gpu.index}`.padEnd(17)} ${`[${s.layers.from}, ${s.layers.to})`.padEnd(12)} ${`${p.gpuBatchSize} x ${p.numGpuBatches}`.padEnd(12)} ${`${split(p.weights)} ${split(p.cache)} ${split(p.activations)}${p.compressWeight ? " 4-bit" : ""}`.padEnd(33)} ${`${formatSeconds(d.prefillSecondsPerMicroBatch)} / ${formatSeconds(d.decodeSecondsPerMicroBatch)}`.padEnd(25)} ${`${formatBytes(d.peakBytes.gpu)} / ${formatBytes(d.peakBytes.cpu)} / ${formatBytes(d.peakBytes.disk)}`.padEnd(32)} ${(100 * pipeline.stageIdleFraction[i]!).toFixed(0)}%${d.feasible ? "" : "  DOES NOT FIT"}`,
    );
  });
  for (const l of pipeline.links)
    lines.push(`  link ${l.from}->${l.to}  ${l.name}: ${formatBytes(l.bytes)} in ${formatSeconds(l.busySeconds)} busy`);
  return lines;
}
