/**
 * `spillway plan --compare`: the baselines beside Spillway's plan, scored by the same cost model and
 * each on the engine it stands for (engines/baseline-engines.ts).
 */

import type { Plan } from "../core/plan.js";
import { isUniform } from "../core/policy.js";
import { TIER_NAMES, TIERS, type Tier } from "../core/tiers.js";
import { formatSignificant } from "../core/units.js";
import type { BaselineOnEngine } from "../engines/baseline-engines.js";
import { type Baseline, type BaselineBatch, fixedSequences } from "../planner/baselines.js";

export interface ScoredBaseline {
  readonly baseline: Baseline;
  readonly onEngine: BaselineOnEngine;
}

export function baselineJson({ baseline: b, onEngine }: ScoredBaseline) {
  return {
    name: b.name,
    description: b.description,
    ...(b.plan ? { policy: b.plan.policy, predicted: b.plan.predicted } : {}),
    ...(b.reason ? { reason: b.reason } : {}),
    engine: onEngine.engine,
    ...(onEngine.prediction ? { enginePrediction: onEngine.prediction } : {}),
    ...(onEngine.reason && !b.reason ? { engineReason: onEngine.reason } : {}),
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

export function formatBaselines(spillway: Plan, list: readonly ScoredBaseline[], batch?: BaselineBatch): string {
  const own = spillway.predicted.throughputTokensPerSecond;
  const ownEngine = spillway.engine ?? "spillway";
  const sequences = fixedSequences(batch);
  const lines = [
    `Baselines: "model" is Spillway's cost model for every row; "engine" is each on the engine it stands for (${ownEngine} for the plan)`,
    ...(sequences !== undefined
      ? [`each serving the plan's fixed batch of ${sequences} sequence${sequences === 1 ? "" : "s"} at once`]
      : []),
    "(placement % GPU/CPU/disk, or layers per tier; CPU-run: computed on the CPU):",
  ];
  lines.push(
    `  ${"policy".padEnd(16)}${"batch".padStart(10)}${"model tok/s".padStart(13)}${"engine tok/s".padStart(14)}${"vs plan".padStart(9)}  ${"placement".padEnd(38)}engine bottleneck`,
  );
  const rate = (x: number) => formatSignificant(x);
  const row = (name: string, p: Plan, onEngine: number | undefined, bottleneck: string) => {
    const r = own > 0 && onEngine !== undefined ? onEngine / own : undefined;
    const ratio = r === undefined ? "-" : `${r > 0 && r < 0.1 ? r.toPrecision(2) : r.toFixed(2)}x`;
    return `  ${name.padEnd(16)}${`${p.policy.gpuBatchSize}x${p.policy.numGpuBatches}`.padStart(10)}${rate(p.predicted.throughputTokensPerSecond).padStart(13)}${(onEngine === undefined ? "-" : rate(onEngine)).padStart(14)}${ratio.padStart(9)}  ${describePlacement(p.policy).padEnd(38)}${bottleneck}`;
  };
  lines.push(row("spillway", spillway, own, spillway.predicted.bottleneck));
  const notes: string[] = [];
  for (const { baseline: b, onEngine } of list) {
    if (!b.plan) {
      lines.push(`  ${b.name.padEnd(16)}cannot run: ${b.reason}`);
      continue;
    }
    const e = onEngine.prediction;
    const fits = e ? (e.feasible ? "" : " (does not fit)") : "";
    lines.push(row(b.name, b.plan, e?.throughputTokensPerSecond, e ? e.bottleneck + fits : "-"));
    if (onEngine.reason) notes.push(`  ${b.name}: ${onEngine.reason}`);
  }
  return [...lines, ...notes].join("\n");
}
