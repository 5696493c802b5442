/** The human-readable plan summary `spillway plan` prints. */

import { LINKS } from "../core/links.js";
import type { Plan } from "../core/plan.js";
import { counted } from "../core/plural.js";
import type { Placement } from "../core/policy.js";
import { RESOURCE_SHORT_NAMES } from "../core/resources.js";
import { TIERS } from "../core/tiers.js";
import { formatBytes, formatSeconds, formatSignificant } from "../core/units.js";
import { REALIZED_DIFFERS } from "../planner/plan.js";
import { formatPipeline } from "./format-pipeline.js";

const pct = (x: number) => `${(x * 100).toFixed(x > 0 && x < 0.01 ? 2 : 1)}%`;
const placement = (p: Placement) =>
  `GPU ${pct(p.gpu).padStart(6)}  CPU ${pct(p.cpu).padStart(6)}  disk ${pct(p.disk).padStart(6)}`;

/** What an engine model adds: its own realization of the policy, the terms that cost time, its rates' provenance. */
function engineLines(plan: Plan, e: NonNullable<Plan["enginePrediction"]>): string[] {
  const lines: string[] = [];
  const r = e.realizedPolicy;
  const differs = (["weights", "cache", "activations"] as const).filter((k) =>
    TIERS.some((t) => Math.abs(r[k][t] - plan.policy[k][t]) > 1e-9),
  );
  for (const k of differs)
    lines.push(
      `  ${e.engine} puts ${k.padEnd(12)}${placement(r[k])}  (asked for ${placement(plan.policy[k]).replace(/ +/g, " ")})`,
    );
  const total = e.totalSeconds;
  const terms = Object.entries(e.termSeconds)
    .filter(([, s]) => s > 0)
    .sort((a, b) => b[1] - a[1]);
  const shown = terms.slice(0, 6).map(([t, s]) => `${t} ${total > 0 ? ((100 * s) / total).toFixed(0) : "0"}%`);
  if (terms.length > 6) shown.push(`${terms.length - 6} more`);
  lines.push(`  time spent   ${shown.join(", ")}`);
  if (e.protocol) lines.push(`  protocol     ${e.protocol}`);
  const kinds = ["measured", "fitted", "datasheet", "derived"] as const;
  const count = kinds
    .map((k) => [k, e.rates.filter((x) => x.kind === k)] as const)
    .filter(([, list]) => list.length > 0);
  lines.push(`  rates        ${count.map(([k, list]) => `${list.length} ${k}`).join(", ")}`);
  const bounds = e.rates.filter((x) => x.kind === "datasheet" || x.kind === "derived");
  if (bounds.length)
    lines.push(
      `               not measured on this hardware (datasheet bounds or derived): ${bounds.map((x) => x.name).join(", ")}`,
    );
  return lines;
}

export function formatPlan(plan: Plan): string {
  const p = plan.policy;
  const d = plan.predicted;
  const lines: string[] = [];
  lines.push(
    `Plan for ${plan.model} on ${plan.hardware} (prompt ${plan.workload.promptLen}, generate ${plan.workload.genLen}), ${plan.engine && plan.engine !== "spillway" ? `predicted for ${plan.engine} by its engine model` : `${plan.costModel} cost model${plan.costModel === "spillway" ? `, ${plan.schedule} schedule` : ""}`}`,
  );
  lines.push("");
  lines.push("Policy");
  const x = p.experts;
  if (x) {
    const moe = plan.modelSpec.moe!;
    const prefetch = x.pregated
      ? "pre-gated (next layer's exact experts)"
      : x.prefetchExperts > 0
        ? `speculative, ${x.prefetchExperts} experts ${x.prefetchLayers} layer${x.prefetchLayers > 1 ? "s" : ""} ahead`
        : "none";
    const compute =
      x.compute === "auto"
        ? `auto (CPU when at most ${x.cpuThresholdTokens} tokens route to it)`
        : x.compute.toUpperCase();
    lines.push(`  batch        ${p.gpuBatchSize} sequence${p.gpuBatchSize === 1 ? "" : "s"}`);
    lines.push(
      `  experts      ${x.cacheSize} of ${moe.numExperts} per layer cached on the GPU (${x.eviction}), home copies in ${x.offloadTier === "cpu" ? "host memory" : "disk"}; ${x.bits}-bit`,
    );
    lines.push(`  misses       computed on ${compute}; prefetch ${prefetch}`);
    lines.push(`  resident     attention, routers, embeddings at ${x.attentionBits} bits on the GPU`);
    lines.push(`  KV cache     ${placement(p.cache)}${p.cpuAttention ? "  (attention on the CPU)" : ""}`);
    lines.push(`  weights      ${placement(p.weights)}  (all stored bytes)`);
    const ll = plan.llamaCpp;
    if (ll) {
      lines.push(
        ll.nCpuMoe === undefined
          ? `  llama.cpp    ${ll.reason}`
          : `  llama.cpp    -ngl ${ll.nGpuLayers} --n-cpu-moe ${ll.nCpuMoe} fits (${ll.ggufType ?? "Q4-class"} GGUF): about ${formatSignificant(ll.decodeTokensPerSecond!, 3)} token/s decoding one sequence`,
      );
    }
  } else {
    lines.push(
      `  GPU batch size ${p.gpuBatchSize} x ${counted(p.numGpuBatches, "GPU batch", "GPU batches")} = block of ${counted(p.gpuBatchSize * p.numGpuBatches, "sequence")}`,
    );
    lines.push(`  weights      ${placement(p.weights)}${p.compressWeight ? "  (4-bit)" : ""}`);
    lines.push(`  KV cache     ${placement(p.cache)}${p.compressCache ? "  (4-bit)" : ""}`);
    lines.push(`  activations  ${placement(p.activations)}`);
    lines.push(
      `  attention over off-GPU KV on the ${p.cpuAttention ? "CPU" : "GPU"}; overlap ${p.overlap ? "on" : "off"}; pinned weights ${p.pinWeight ? "on" : "off"}`,
    );
    lines.push(
      plan.modelSpec.family === "opt"
        ? `  FlexGen flags: ${plan.flexgenArgs}`
        : `  FlexGen flags: none (FlexGen runs OPT models only; spillway export lists the engines that run ${plan.modelSpec.family})`,
    );
  }
  if (plan.pipeline) lines.push("", ...formatPipeline(plan.pipeline));
  lines.push("");
  const e = plan.enginePrediction;
  lines.push(`Prediction${e ? ` on ${e.engine} (its engine model)` : ""}${d.feasible ? "" : "  (DOES NOT FIT)"}`);
  lines.push(`  throughput   ${formatSignificant(d.throughputTokensPerSecond)} token/s`);
  lines.push(
    `  prefill      ${formatSeconds(d.prefillSeconds)}    decode ${formatSeconds(d.decodeSeconds)}    total ${formatSeconds(d.prefillSeconds + d.decodeSeconds)}`,
  );
  lines.push(`  bottleneck   ${d.bottleneck}`);
  if (d.experts && d.decodeSecondsPerToken !== undefined) {
    const e = d.experts;
    const n = (v: number) => v.toFixed(2);
    lines.push(
      d.decodeSecondsPerToken > 0
        ? `  decode step  ${formatSeconds(d.decodeSecondsPerToken)} (${formatSignificant(p.gpuBatchSize / d.decodeSecondsPerToken)} token/s while decoding)`
        : "  decode step  none (the one generated token comes from the prefill)",
    );
    lines.push(
      `  experts      hit rate ${(e.expectedHitRate * 100).toFixed(0)}%; per layer and step: ${n(e.touchedPerLayer)} touched, ${n(e.demandFetchesPerLayer)} fetched on demand, ${n(e.prefetchedPerLayer)} prefetched, ${n(e.cpuComputedPerLayer)} on the CPU, ${n(e.wastedPrefetchesPerLayer)} wasted; stall ${formatSeconds(e.stallSecondsPerToken)} per step`,
    );
  }
  lines.push(
    "  peak memory  " +
      TIERS.map((t) => `${t.toUpperCase()} ${formatBytes(d.peakBytes[t])} / ${formatBytes(d.capacityBytes[t])}`).join(
        "   ",
      ),
  );
  lines.push(`  traffic      ${LINKS.map((l) => `${RESOURCE_SHORT_NAMES[l]} ${formatBytes(d.bytes[l])}`).join("  ")}`);
  for (const reason of d.infeasibleReasons) lines.push(`  does not fit: ${reason}`);
  if (e) lines.push(...engineLines(plan, e));
  lines.push("");
  lines.push(
    plan.search.scored
      ? `Scored the given policy in ${plan.search.elapsedMs.toFixed(1)} ms`
      : `Searched ${plan.search.lpSolves} LPs${plan.search.exactEvaluations ? ` and ${plan.search.exactEvaluations} exact evaluations` : ""} in ${plan.search.elapsedMs.toFixed(0)} ms`,
  );
  for (const note of plan.notes) lines.push(`${note.startsWith(REALIZED_DIFFERS) ? "Warning" : "Note"}: ${note}`);
  return lines.join("\n");
}
