/**
 * A search's memo of layer costs for its exact evaluations. StepCostModel.layer reads the placement
 * only through its variable terms (the same for every realized placement) and the settings only through
 * the GPU batch size, compression, CPU attention, activation tier, pinned weights and compute device,
 * so two policies that share those share every layer's costs at every context; layerTimeBounds adds
 * nb, overlap and the schedule. The memo hands back the very objects computed the first time, so an
 * evaluation with it gives, to the last bit, what it gives without it. Scoped to one search (one
 * model, hardware and workload).
 */
import type { Affine } from "../lp/affine.js";
import { layerTimeBounds } from "./layer-time.js";
import type { CostSettings, LayerCosts, Phase, PlacementTerms, StepCostModel } from "./step-costs.js";

export class LayerCostCache {
  private readonly layers = new Map<string, LayerCosts>();
  private readonly bounds = new Map<string, Affine[]>();

  private static layerKey(settings: CostSettings, phase: Phase, context: number): string {
    const s = settings;
    return `${s.gbs}|${s.compressWeight}|${s.compressCache}|${s.cpuAttention}|${s.activationTier}|${s.pinWeight}|${s.compute ?? "gpu"}|${phase}|${context}`;
  }

  /** costModel.layer(phase, context, terms), computed once per key. */
  layer(costModel: StepCostModel, phase: Phase, context: number, terms: PlacementTerms): LayerCosts {
    const key = LayerCostCache.layerKey(costModel.settings, phase, context);
    let costs = this.layers.get(key);
    if (!costs) {
      costs = costModel.layer(phase, context, terms);
      this.layers.set(key, costs);
    }
    return costs;
  }

  /** layerTimeBounds of the layer's costs under `settings`, computed once per key. */
  layerTimeBounds(costModel: StepCostModel, phase: Phase, context: number, terms: PlacementTerms): Affine[] {
    const s = costModel.settings;
    const key = `${LayerCostCache.layerKey(s, phase, context)}|${s.nb}|${s.overlap}|${s.schedule}`;
    let bounds = this.bounds.get(key);
    if (!bounds) {
      bounds = layerTimeBounds(this.layer(costModel, phase, context, terms), s);
      this.bounds.set(key, bounds);
    }
    return bounds;
  }
}
