/** `spillway plan --compare`: the baselines beside Spillway's plan, scored by the same cost model. */
import type { Baseline } from "../planner/baselines.js";
import type { Plan } from "../planner/plan.js";

export function baselineJson(b: Baseline) {
  return {
    name: b.name,
    description: b.description,
    ...(b.plan ? { policy: b.plan.policy, predicted: b.plan.predicted } : {}),
    ...(b.reason ? { reason: b.reason } : {}),
  };
}

function placement(p: Plan): string {
  const pct = (x: number) => `${Math.round(x * 100)}`;
  const { weights: w, cache: c } = p.policy;
  return `weights ${pct(w.gpu)}/${pct(w.cpu)}/${pct(w.disk)}  KV ${pct(c.gpu)}/${pct(c.cpu)}/${pct(c.disk)}`;
}

export function formatBaselines(spillway: Plan, list: readonly Baseline[]): string {
  const own = spillway.predicted.throughputTokensPerSecond;
  const lines = ["Baselines, scored by the same cost model (placement % GPU/CPU/disk):"];
  lines.push(`  ${"policy".padEnd(16)}${"batch".padStart(10)}${"token/s".padStart(11)}${"vs plan".padStart(9)}  ${"placement".padEnd(34)}bottleneck`);
  const row = (name: string, p: Plan) => {
    const rate = p.predicted.throughputTokensPerSecond;
    const ratio = own > 0 ? `${(rate / own).toFixed(2)}x` : "-";
    return `  ${name.padEnd(16)}${`${p.policy.gpuBatchSize}x${p.policy.numGpuBatches}`.padStart(10)}${rate.toPrecision(4).padStart(11)}${ratio.padStart(9)}  ${placement(p).padEnd(34)}${p.predicted.bottleneck}`;
  };
  lines.push(row("spillway", spillway));
  for (const b of list) lines.push(b.plan ? row(b.name, b.plan) : `  ${b.name.padEnd(16)}cannot run: ${b.reason}`);
  return lines.join("\n");
}
