/** `spillway plan --compare`: the baselines beside Spillway's plan, scored by the same cost model. */

import type { Plan } from "../core/plan.js";
import { isUniform } from "../core/policy.js";
import { TIER_NAMES, TIERS, type Tier } from "../core/tiers.js";
import type { Baseline } from "../planner/baselines.js";

export function baselineJson(b: Baseline) {
  return {
    name: b.name,
    description: b.description,
    ...(b.plan ? { policy: b.plan.policy, predicted: b.plan.predicted } : {}),
    ...(b.reason ? { reason: b.reason } : {}),
  };
}

/** Where the weights are: the split, or for per-layer placement the layers per tier (and where they run). */
export function describePlacement(policy: Plan["policy"]): string {
  const pct = (x: number) => `${Math.round(x * 100)}`;
  const { weights: w, cache: c } = policy;
  const bits = policy.compressWeight ? " 4-bit" : "";
  if (policy.layerGroups && !isUniform(policy)) {
    const groups = policy.layerGroups.map((g) => {
      const tier = TIERS.reduce((a, t) => (g.weights[t] > g.weights[a] ? t : a), "gpu" as Tier);
      return `${g.layers} ${g.compute === "cpu" ? "CPU-run" : TIER_NAMES[tier]}`;
    });
    return `layers ${groups.join(" + ")}${bits}`;
  }
  return `weights ${pct(w.gpu)}/${pct(w.cpu)}/${pct(w.disk)}${bits}  KV ${pct(c.gpu)}/${pct(c.cpu)}/${pct(c.disk)}`;
}

export function formatBaselines(spillway: Plan, list: readonly Baseline[]): string {
  const own = spillway.predicted.throughputTokensPerSecond;
  const lines = [
    "Baselines, scored by the same cost model (placement % GPU/CPU/disk, or layers per tier; CPU-run: computed on the CPU):",
  ];
  lines.push(
    `  ${"policy".padEnd(16)}${"batch".padStart(10)}${"token/s".padStart(11)}${"vs plan".padStart(9)}  ${"placement".padEnd(38)}bottleneck`,
  );
  const row = (name: string, p: Plan) => {
    const rate = p.predicted.throughputTokensPerSecond;
    const ratio = own > 0 ? `${(rate / own).toFixed(2)}x` : "-";
    return `  ${name.padEnd(16)}${`${p.policy.gpuBatchSize}x${p.policy.numGpuBatches}`.padStart(10)}${rate.toPrecision(4).padStart(11)}${ratio.padStart(9)}  ${describePlacement(p.policy).padEnd(38)}${p.predicted.bottleneck}`;
  };
  lines.push(row("spillway", spillway));
  for (const b of list) lines.push(b.plan ? row(b.name, b.plan) : `  ${b.name.padEnd(16)}cannot run: ${b.reason}`);
  return lines.join("\n");
}
