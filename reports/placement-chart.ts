/**
 * Placement chart: where weights, KV cache and activations live (GPU, CPU, disk), as stacked bars of
 * bytes per tier, one bar per kind of data. Reads the plan's realized placement fractions and sizes.
 */
import type { TopLevelSpec } from "vega-lite";
import { COMPRESSED_FRACTION_OF_FP16 } from "../core/compression.js";
import { kvDim, type ModelSpec, totalWeightBytes } from "../core/model-spec.js";
import type { Policy } from "../core/policy.js";
import { TIERS } from "../core/tiers.js";
import { TIER_COLOURS } from "./tier-colours.js";

export interface PlacementInput {
  readonly modelSpec: ModelSpec;
  readonly policy: Policy;
  readonly workload: { readonly promptLen: number; readonly genLen: number };
}

export function placementRows(plan: PlacementInput): { data: string; tier: string; gib: number }[] {
  const { modelSpec: m, policy: p, workload: w } = plan;
  const sequences = p.gpuBatchSize * p.numGpuBatches;
  const totals: Record<string, number> = {
    weights: totalWeightBytes(m) * (p.compressWeight ? COMPRESSED_FRACTION_OF_FP16 : 1),
    "KV cache":
      2 *
      m.numLayers *
      kvDim(m) *
      2 *
      sequences *
      (w.promptLen + w.genLen) *
      (p.compressCache ? COMPRESSED_FRACTION_OF_FP16 : 1),
    activations: sequences * w.promptLen * m.hiddenSize * 2,
  };
  const fractions = { weights: p.weights, "KV cache": p.cache, activations: p.activations } as const;
  const rows: { data: string; tier: string; gib: number }[] = [];
  for (const data of Object.keys(fractions) as (keyof typeof fractions)[]) {
    for (const tier of TIERS) rows.push({ data, tier, gib: (totals[data]! * fractions[data][tier]) / 2 ** 30 });
  }
  return rows;
}

export function placementChart(plan: PlacementInput): TopLevelSpec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: `Where ${plan.modelSpec.name} lives`,
      subtitle:
        `${plan.policy.gpuBatchSize} x ${plan.policy.numGpuBatches} sequences, prompt ${plan.workload.promptLen}, ${plan.workload.genLen} generated` +
        (plan.policy.compressWeight || plan.policy.compressCache
          ? `; 4-bit ${[plan.policy.compressWeight ? "weights" : "", plan.policy.compressCache ? "KV cache" : ""].filter(Boolean).join(" and ")}`
          : ""),
    },
    width: 420,
    height: 150,
    data: { values: placementRows(plan) },
    mark: { type: "bar" },
    encoding: {
      y: { field: "data", type: "nominal", title: null, sort: ["weights", "KV cache", "activations"] },
      x: { field: "gib", type: "quantitative", title: "GiB", stack: "zero" },
      color: {
        field: "tier",
        type: "nominal",
        title: "tier",
        scale: { domain: [...TIERS], range: TIERS.map((t) => TIER_COLOURS[t]) },
        legend: { labelExpr: "datum.label === 'disk' ? 'disk' : upper(datum.label)" },
      },
      tooltip: [{ field: "data" }, { field: "tier" }, { field: "gib", format: ".2f", title: "GiB" }],
    },
  } as TopLevelSpec;
}
