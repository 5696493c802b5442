/** The human summary `spillway simulate` prints. */

import { RESOURCE_SHORT_NAMES as NAMES, RESOURCES } from "../core/resources.js";
import { TIERS } from "../core/tiers.js";
import { formatBytes, formatSeconds, formatSignificant } from "../core/units.js";
import type { MoePlanRunResult } from "../runtime/moe/run-moe-plan.js";
import type { RunResult } from "../runtime/run.js";
import type { SimulationResult } from "../simulator/simulate.js";
import { expertSummaryRows } from "./format-expert-summary.js";

export function formatSimulation(r: SimulationResult): string {
  const lines: string[] = [];
  lines.push(`Simulated ${r.events} tasks, ${r.schedule} schedule`);
  const planned = r.planned
    ? `   planned ${formatSignificant(r.planned.throughputTokensPerSecond)} (${r.relativeError! >= 0 ? "+" : ""}${(r.relativeError! * 100).toFixed(1)}%)`
    : "";
  lines.push(`  throughput   ${formatSignificant(r.throughputTokensPerSecond)} token/s${planned}`);
  lines.push(
    `  prefill      ${formatSeconds(r.prefillSeconds)}    decode ${formatSeconds(r.decodeSeconds)}    total ${formatSeconds(r.makespanSeconds)}`,
  );
  lines.push(
    "  utilisation  " +
      RESOURCES.filter((x) => r.busySeconds[x] > 0)
        .map((x) => `${NAMES[x]} ${(r.utilisation[x] * 100).toFixed(0)}%`)
        .join("   "),
  );
  lines.push(`  critical     ${NAMES[r.criticalResource]}`);
  lines.push(
    "  peak memory  " +
      TIERS.map((t) => `${t.toUpperCase()} ${formatBytes(r.peakBytes[t])} / ${formatBytes(r.capacityBytes[t])}`).join(
        "   ",
      ),
  );
  lines.push(
    `  traffic      host->GPU ${formatBytes(r.bytes.h2d)}  GPU->host ${formatBytes(r.bytes.d2h)}  disk read ${formatBytes(r.bytes.diskRead)}  disk write ${formatBytes(r.bytes.diskWrite)}`,
  );
  if (r.disagreements.length === 0 && r.planned)
    lines.push("  The planner's prediction holds within 10% on every phase, and its traffic within 1%.");
  for (const d of r.disagreements) lines.push(`  ! ${d}`);
  return lines.join("\n");
}

/** The human summary `spillway run` prints: measured figures beside the plan's. */
export function formatRun(r: RunResult): string {
  const lines: string[] = [];
  const overlapText =
    r.backend === "cuda"
      ? "copies on their own CUDA streams beside the compute"
      : "transfers on worker threads beside the compute";
  lines.push(
    `Ran ${r.events} steps on the ${r.backend} backend${r.device ? ` (${r.device})` : ""}, ${r.schedule} schedule, ${r.overlap ? overlapText : "transfers in line with the compute (no overlap)"}`,
  );
  const planned = r.planned
    ? `   predicted ${formatSignificant(r.planned.throughputTokensPerSecond)} (measured ${r.relativeError! >= 0 ? "+" : ""}${(r.relativeError! * 100).toFixed(1)}%)`
    : "";
  lines.push(`  throughput   ${formatSignificant(r.throughputTokensPerSecond)} token/s${planned}`);
  lines.push(
    `  prefill      ${formatSeconds(r.prefillSeconds)}    decode ${formatSeconds(r.decodeSeconds)}    total ${formatSeconds(r.makespanSeconds)}`,
  );
  lines.push(
    "  busy         " +
      RESOURCES.filter((x) => r.busySeconds[x] > 0)
        .map((x) => `${NAMES[x]} ${formatSeconds(r.busySeconds[x])}`)
        .join("   "),
  );
  lines.push(
    "  peak memory  " +
      TIERS.map(
        (t) =>
          `${t.toUpperCase()} ${formatBytes(r.peakBytes[t])} / ${formatBytes(r.capacityBytes[t])}${r.planned ? ` (planned ${formatBytes(r.planned.peakBytes[t])})` : ""}`,
      ).join("   "),
  );
  lines.push(
    `  traffic      host->GPU ${formatBytes(r.bytes.h2d)}  GPU->host ${formatBytes(r.bytes.d2h)}  disk read ${formatBytes(r.bytes.diskRead)}  disk write ${formatBytes(r.bytes.diskWrite)}`,
  );
  if ("experts" in r) {
    const x = r as MoePlanRunResult;
    lines.push(
      `  decode experts${"predicted".padStart(17)}${"measured".padStart(12)}   (${x.experts.decodeSteps} steps)`,
    );
    lines.push(...expertSummaryRows([x.plannedExperts, x.experts], 21, 12).map((row) => `    ${row}`));
  }
  if (r.matchesReference !== undefined)
    lines.push(
      `  tokens       ${r.matchesReference ? "match" : "DIFFER FROM"} the all-on-device reference (${r.tokens.length} sequences x ${r.tokens[0]?.length ?? 0} tokens)`,
    );
  return lines.join("\n");
}
