/** What `spillway simulate` prints for a pipeline plan: the pipeline's figures, each stage and link against the plan, the timeline. */
import { LINKS } from "../core/links.js";
import { RESOURCE_SHORT_NAMES } from "../core/resources.js";
import { TIERS } from "../core/tiers.js";
import { formatBytes, formatSeconds, formatSignificant } from "../core/units.js";
import type { PipelineSimulation } from "../simulator/simulate-pipeline.js";

const signed = (e: number) => `${e >= 0 ? "+" : ""}${(100 * e).toFixed(1)}%`;

export function formatPipelineSimulation(r: PipelineSimulation): string {
  const lines = [
    `Simulated a pipeline of ${r.stages.length} stages (${r.stages.reduce((a, s) => a + s.events, 0)} stage tasks)`,
    `  throughput   ${formatSignificant(r.throughputTokensPerSecond)} token/s   planned ${formatSignificant(r.planned.throughputTokensPerSecond)} (${signed(r.relativeError)})`,
    `  prefill      ${formatSeconds(r.prefillSeconds)}    decode ${formatSeconds(r.decodeSeconds)}    total ${formatSeconds(r.makespanSeconds)}`,
  ];
  r.stages.forEach((s, i) => {
    lines.push(
      `  stage ${i}      idle ${(100 * s.idleFraction).toFixed(0)}%   peak ${TIERS.map((t) => `${t.toUpperCase()} ${formatBytes(s.peakBytes[t])} / ${formatBytes(s.capacityBytes[t])}`).join("  ")}${s.overflow ? "  OVERFLOWS" : ""}`,
    );
    lines.push(
      `               traffic ${LINKS.map((l) => `${RESOURCE_SHORT_NAMES[l]} ${formatBytes(s.bytes[l])}`).join("  ")}`,
    );
    if (s.allReduceBytesPerGpu !== undefined)
      lines.push(
        `               all-reduce ${formatBytes(s.allReduceBytesPerGpu)} per GPU (planned ${formatBytes(s.plannedAllReduceBytesPerGpu ?? 0)}) in ${formatSeconds(s.allReduceSeconds ?? 0)}`,
      );
  });
  for (const l of r.links)
    lines.push(
      `  link ${l.from}->${l.to}    ${formatBytes(l.bytes)} (planned ${formatBytes(l.plannedBytes)}), busy ${formatSeconds(l.busySeconds)}`,
    );
  for (const d of r.disagreements) lines.push(`  ! ${d}`);
  if (r.timeline) lines.push("", r.timeline);
  return lines.join("\n");
}
