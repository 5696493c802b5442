/** The human-readable plan summary `spillway plan` prints. */
import { formatBytes, formatSeconds } from "../core/units.js";
import type { Placement } from "../core/policy.js";
import type { Plan } from "../planner/plan.js";

const pct = (x: number) => `${(x * 100).toFixed(x > 0 && x < 0.01 ? 2 : 1)}%`;
const placement = (p: Placement) => `GPU ${pct(p.gpu).padStart(6)}  CPU ${pct(p.cpu).padStart(6)}  disk ${pct(p.disk).padStart(6)}`;

export function formatPlan(plan: Plan): string {
  const p = plan.policy;
  const d = plan.predicted;
  const lines: string[] = [];
  lines.push(`Plan for ${plan.model} on ${plan.hardware} (prompt ${plan.workload.promptLen}, generate ${plan.workload.genLen}), ${plan.costModel} cost model${plan.costModel === "spillway" ? `, ${plan.schedule} schedule` : ""}`);
  lines.push("");
  lines.push("Policy");
  lines.push(`  GPU batch size ${p.gpuBatchSize} x ${p.numGpuBatches} GPU batches = block of ${p.gpuBatchSize * p.numGpuBatches} sequences`);
  lines.push(`  weights      ${placement(p.weights)}${p.compressWeight ? "  (4-bit)" : ""}`);
  lines.push(`  KV cache     ${placement(p.cache)}${p.compressCache ? "  (4-bit)" : ""}`);
  lines.push(`  activations  ${placement(p.activations)}`);
  lines.push(`  attention over off-GPU KV on the ${p.cpuAttention ? "CPU" : "GPU"}; overlap ${p.overlap ? "on" : "off"}; pinned weights ${p.pinWeight ? "on" : "off"}`);
  lines.push(`  FlexGen flags: ${plan.flexgenArgs}`);
  lines.push("");
  lines.push(`Prediction${d.feasible ? "" : "  (DOES NOT FIT)"}`);
  lines.push(`  throughput   ${d.throughputTokensPerSecond.toPrecision(4)} token/s`);
  lines.push(`  prefill      ${formatSeconds(d.prefillSeconds)}    decode ${formatSeconds(d.decodeSeconds)}    total ${formatSeconds(d.prefillSeconds + d.decodeSeconds)}`);
  lines.push(`  bottleneck   ${d.bottleneck}`);
  lines.push("  peak memory  " + (["gpu", "cpu", "disk"] as const).map((t) => `${t.toUpperCase()} ${formatBytes(d.peakBytes[t])} / ${formatBytes(d.capacityBytes[t])}`).join("   "));
  lines.push(`  traffic      host->GPU ${formatBytes(d.bytes.h2d)}  GPU->host ${formatBytes(d.bytes.d2h)}  disk read ${formatBytes(d.bytes.diskRead)}  disk write ${formatBytes(d.bytes.diskWrite)}`);
  for (const reason of d.infeasibleReasons) lines.push(`  does not fit: ${reason}`);
  lines.push("");
  lines.push(plan.search.scored
    ? `Scored the given policy in ${plan.search.elapsedMs.toFixed(1)} ms`
    : `Searched ${plan.search.lpSolves} LPs${plan.search.exactEvaluations ? ` and ${plan.search.exactEvaluations} exact evaluations` : ""} in ${plan.search.elapsedMs.toFixed(0)} ms`);
  for (const note of plan.notes) lines.push(`Note: ${note}`);
  return lines.join("\n");
}
