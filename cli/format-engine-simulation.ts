/** `spillway simulate` of an engine plan (simulator/simulate-engine.ts), as text. */
import { LINKS } from "../core/links.js";
import { RESOURCE_SHORT_NAMES } from "../core/resources.js";
import { TIERS } from "../core/tiers.js";
import { formatBytes, formatSeconds, formatSignificant } from "../core/units.js";
import { LANES } from "../engines/engine-model.js";
import type { EngineSimulation } from "../simulator/simulate-engine.js";

const MAX_STEPS_SHOWN = 8;
/** Lanes of a step's critical path printed before the rest is counted (`--json` keeps them all). */
const MAX_CRITICAL_LANES_SHOWN = 12;

/** A step's critical path as "cpu > h2d > gpu", cut after MAX_CRITICAL_LANES_SHOWN lanes. */
function formatCriticalLanes(lanes: readonly string[]): string {
  if (lanes.length <= MAX_CRITICAL_LANES_SHOWN) return lanes.join(" > ");
  const rest = lanes.length - MAX_CRITICAL_LANES_SHOWN;
  return `${lanes.slice(0, MAX_CRITICAL_LANES_SHOWN).join(" > ")} > ... ${rest} more`;
}

export function formatEngineSimulation(s: EngineSimulation): string {
  const signed = (x: number) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(2)}%`;
  const lines = [
    `Simulated ${s.model} on ${s.hardware} in ${s.engine}'s schedule (${s.stepsReplayed} distinct steps replayed event by event)${s.feasible ? "" : "  (DOES NOT FIT)"}`,
    "",
    `  throughput   ${formatSignificant(s.throughputTokensPerSecond)} token/s   (${s.predictedBy === "plan" ? "plan" : `${s.engine}'s model of the plan's policy`}: ${formatSignificant(s.predictedThroughputTokensPerSecond)}, ${signed(s.relativeError)})`,
    `  prefill      ${formatSeconds(s.prefillSeconds)}    decode ${formatSeconds(s.decodeSeconds)}    total ${formatSeconds(s.totalSeconds)}`,
    `  traffic      ${LINKS.map((l) => `${RESOURCE_SHORT_NAMES[l]} ${formatBytes(s.bytes[l])}${Math.abs(s.bytes[l] - s.predictedBytes[l]) > 1e-6 * Math.max(1, s.predictedBytes[l]) ? ` (plan ${formatBytes(s.predictedBytes[l])})` : ""}`).join("  ")}`,
    `  peak memory  ${TIERS.map((t) => `${t.toUpperCase()} ${formatBytes(s.peakBytes[t])} / ${formatBytes(s.capacityBytes[t])}`).join("   ")}`,
    `  busy         ${LANES.filter((l) => s.laneSeconds[l] > 0)
      .map((l) => `${l} ${formatSeconds(s.laneSeconds[l])}`)
      .join("  ")}`,
  ];
  for (const reason of s.infeasibleReasons) lines.push(`  does not fit: ${reason}`);
  lines.push("", "Steps, most time first (count x one replay; the lanes its critical path runs on):");
  for (const step of s.steps.slice(0, MAX_STEPS_SHOWN))
    lines.push(
      `  ${(Number.isInteger(step.count) ? String(step.count) : step.count.toFixed(1)).padStart(7)} x ${formatSeconds(step.seconds).padStart(10)}  ${step.phase.padEnd(8)}${step.label}  [${formatCriticalLanes(step.criticalLanes)}]`,
    );
  if (s.steps.length > MAX_STEPS_SHOWN) lines.push(`  ... ${s.steps.length - MAX_STEPS_SHOWN} more`);
  if (s.timeline) {
    lines.push("", `Timeline of one "${s.timeline.label}" step:`);
    for (const o of s.timeline.operations)
      lines.push(
        `  ${formatSeconds(o.startSeconds).padStart(10)} - ${formatSeconds(o.endSeconds).padEnd(10)} ${o.lane.padEnd(11)}${o.name}`,
      );
  }
  return lines.join("\n");
}
