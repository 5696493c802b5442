/**
 * Placement chart: where weights, KV cache and activations live (GPU, CPU, disk), as stacked bars of
 * bytes per tier, one bar per kind of data. Reads the plan's realized placement fractions and sizes.
 * A Mixture-of-Experts plan draws its routed experts as their own bar, at their stored precision: the
 * GPU cache and the rest at home on the CPU or disk (policy.experts); the other weights at attentionBits.
 */
import type { TopLevelSpec } from "vega-lite";
import { COMPRESSED_FRACTION_OF_FP16 } from "../core/compression.js";
import { kvDim, type ModelSpec, totalWeightBytes } from "../core/model-spec.js";
import { moeWeightBytes } from "../core/moe-weight-bytes.js";
import type { Policy } from "../core/policy.js";
import { TIERS, type Tier } from "../core/tiers.js";
import { TIER_COLOURS } from "./tier-colours.js";

export interface PlacementInput {
  readonly modelSpec: ModelSpec;
  readonly policy: Policy;
  readonly workload: { readonly promptLen: number; readonly genLen: number };
}

type PlacementRow = { data: string; tier: string; gib: number };

const GIB = 2 ** 30;

export function placementRows(plan: PlacementInput): PlacementRow[] {
  const { modelSpec: m, policy: p, workload: w } = plan;
  const sequences = p.gpuBatchSize * p.numGpuBatches;
  const kvBytes =
    2 *
    m.numLayers *
    kvDim(m) *
    2 *
    sequences *
    (w.promptLen + w.genLen) *
    (p.compressCache ? COMPRESSED_FRACTION_OF_FP16 : 1);
  const activationBytes = sequences * w.promptLen * m.hiddenSize * 2;
  const rows: PlacementRow[] = [];
  const add = (data: string, totalBytes: number, fractions: Readonly<Record<Tier, number>>) => {
    for (const tier of TIERS) rows.push({ data, tier, gib: (totalBytes * fractions[tier]) / GIB });
  };
  if (p.experts && m.moe) {
    const b = moeWeightBytes(m, p.experts);
    add("weights", b.nonExpertBytes, { gpu: 1, cpu: 0, disk: 0 });
    const expertBytes = b.cachedExpertBytes + b.offloadedExpertBytes;
    const home = b.offloadedExpertBytes / expertBytes;
    add("experts", expertBytes, {
      gpu: b.cachedExpertBytes / expertBytes,
      cpu: b.offloadTier === "cpu" ? home : 0,
      disk: b.offloadTier === "disk" ? home : 0,
    });
  } else {
    add("weights", totalWeightBytes(m) * (p.compressWeight ? COMPRESSED_FRACTION_OF_FP16 : 1), p.weights);
  }
  add("KV cache", kvBytes, p.cache);
  add("activations", activationBytes, p.activations);
  return rows;
}

function precisionNote(policy: Policy, model: ModelSpec): string {
  const e = policy.experts;
  if (e && model.moe)
    return `; experts ${e.bits}-bit, ${e.cacheSize} of ${model.moe.numExperts} per layer cached on the GPU; other weights ${e.attentionBits}-bit`;
  if (!policy.compressWeight && !policy.compressCache) return "";
  return `; 4-bit ${[policy.compressWeight ? "weights" : "", policy.compressCache ? "KV cache" : ""].filter(Boolean).join(" and ")}`;
}

export function placementChart(plan: PlacementInput): TopLevelSpec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: `Where ${plan.modelSpec.name} lives`,
      subtitle:
        `${plan.policy.gpuBatchSize} x ${plan.policy.numGpuBatches} sequences, prompt ${plan.workload.promptLen}, ${plan.workload.genLen} generated` +
        precisionNote(plan.policy, plan.modelSpec),
    },
    width: 420,
    height: 150,
    data: { values: placementRows(plan) },
    mark: { type: "bar" },
    encoding: {
      y: { field: "data", type: "nominal", title: null, sort: ["weights", "experts", "KV cache", "activations"] },
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
