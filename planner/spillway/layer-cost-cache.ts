/**
 * A search's memo of layer costs for its exact evaluations. StepCostModel.layer reads the placement
 * only through its variable terms (the same for every realized placement) and the settings only through
 * the GPU batch size, compression, CPU attention, activation tier, pinned weights and compute device,
 * so two policies that share those share every layer's costs at every context; exactLayerTimeBounds adds
 * nb, overlap and the schedule. The memo hands back the very objects computed the first time, so an
 * evaluation with it gives, to the last bit, what it gives without it. Scoped to one search (one
 * model, hardware and workload).
 */
import type { Affine } from "../lp/affine.js";
import { exactLayerTimeBounds } from "./layer-time.js";
import type { LayerCosts, Phase, PlacementTerms, StepCostModel } from "./step-costs.js";

/** The key of a phase and context within one settings' memo: decode steps by context, prefill apart. */
function stepKey(phase: Phase, context: number): number {
  return phase === "prefill" ? -1 : context;
}

/** One cost model's layer costs and time bounds by phase and context (LayerCostCache.forCostModel). */
export class LayerCostsBySettings {
  constructor(
    private readonly costModel: StepCostModel,
    private readonly terms: PlacementTerms,
    private readonly layers: Map<number, LayerCosts>,
    private readonly bounds: Map<number, Affine[]>,
  ) {}

  /** costModel.layer(phase, context, terms). */
  layer(phase: Phase, context: number): LayerCosts {
    const key = stepKey(phase, context);
    let costs = this.layers.get(key);
    if (!costs) {
      costs = this.costModel.layer(phase, context, this.terms);
      this.layers.set(key, costs);
    }
    return costs;
  }

  /** exactLayerTimeBounds of those costs under the cost model's settings. */
  exactLayerTimeBounds(phase: Phase, context: number): Affine[] {
    const key = stepKey(phase, context);
    let bounds = this.bounds.get(key);
    if (!bounds) {
      bounds = exactLayerTimeBounds(this.layer(phase, context), this.costModel.settings);
      this.bounds.set(key, bounds);
    }
    return bounds;
  }
}

export class LayerCostCache {
  private readonly layers = new Map<string, Map<number, LayerCosts>>();
  private readonly bounds = new Map<string, Map<number, Affine[]>>();

  /** The memo for `costModel`'s settings, whose layers it costs with `terms` (a realized placement's). */
  forCostModel(costModel: StepCostModel, terms: PlacementTerms): LayerCostsBySettings {
    const s = costModel.settings;
    const layerKey = `${s.gbs}|${s.compressWeight}|${s.compressCache}|${s.cpuAttention}|${s.activationTier}|${s.pinWeight}|${s.compute ?? "gpu"}`;
    const boundsKey = `${layerKey}|${s.nb}|${s.overlap}|${s.schedule}`;
    let layers = this.layers.get(layerKey);
    if (!layers) this.layers.set(layerKey, (layers = new Map()));
    let bounds = this.bounds.get(boundsKey);
    if (!bounds) this.bounds.set(boundsKey, (bounds = new Map()));
    return new LayerCostsBySettings(costModel, terms, layers, bounds);
  }
}
