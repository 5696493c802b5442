/**
 * A lower bound on the exact total seconds (evaluate-policy.ts predictTime) of every placement of one
 * (gbs, nb) and set of discrete choices: what the search's exact scoring could give at that point
 * whatever the LP chose and however the repair moved it, so that a point whose bound cannot beat the
 * best policy already scored needs neither its exact LP solve nor its evaluation (spillway-search.ts).
 *
 * The argument: predictTime's total is the fill, plus at the prefill and at each decode step i (context
 * s + i) the layers' wall time and the head's serial seconds (plus the hidden state's device crossings,
 * none for a uniform policy). A layer's wall time is the largest of its layerTimeBounds (layer-time.ts),
 * affine expressions in the realized placement fractions (wg, wc, wd) and (cg, cc, cd), each a point of
 * a simplex (the fractions of whole tensors by parameters, of whole sequences of a batch). The least an
 * affine c0 + a·w + b·k takes over the two simplices is c0 + min(a) + min(b), so the largest of those
 * minima is at most the layer's time at any placement. The head's seconds are least with every
 * embedding on the GPU (its off-GPU bytes only add transfer and disk time), and the fill is at least 0.
 * Moving activations off the GPU (the repair's third move) only adds time to the layer's expressions
 * (the hidden state's loads and stores), so the bound computed at the activation tier a point starts
 * from holds after the repair too. Time the cost model adds elsewhere only raises the total.
 *
 * It reads: StepCostModel.layer and head (step-costs.ts), layerTimeBounds (layer-time.ts) and how
 * predictTime adds them up.
 */
import type { ModelSpec } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import { realizePlacement } from "../../core/realize-placement.js";
import { RESOURCES } from "../../core/resources.js";
import type { Workload } from "../../core/workload.js";
import type { Affine } from "../lp/affine.js";
import { costConstants } from "./cost-constants.js";
import { realizedTerms } from "./evaluate-policy.js";
import type { HardwareRates } from "./hardware-rates.js";
import type { LayerCostCache } from "./layer-cost-cache.js";
import { type CostSettings, StepCostModel } from "./step-costs.js";

/** Relative slack for the order in which the exact evaluation adds the same figures up. */
const ROUNDING_SLACK = 1e-9;

/** A policy with these settings and every weight on the GPU (only its weights are realized). */
function allOnGpu(settings: CostSettings): Policy {
  const onGpu = { gpu: 1, cpu: 0, disk: 0 };
  return {
    gpuBatchSize: settings.gbs,
    numGpuBatches: settings.nb,
    weights: onGpu,
    cache: onGpu,
    activations: onGpu,
    compressWeight: settings.compressWeight,
    compressCache: settings.compressCache,
    cpuAttention: settings.cpuAttention,
    overlap: settings.overlap,
    pinWeight: settings.pinWeight,
  };
}

/** The least `e` takes with (wg, wc, wd) and (cg, cc, cd) each on its simplex. */
function leastOverPlacements(e: Affine): number {
  const c = e.coefficients;
  return e.constant + Math.min(c[0]!, c[1]!, c[2]!) + Math.min(c[3]!, c[4]!, c[5]!);
}

/** The least layer time any placement can have: the largest of the bounds' least values. */
function layerFloor(bounds: readonly Affine[]): number {
  let floor = 0;
  for (const bound of bounds) floor = Math.max(floor, leastOverPlacements(bound));
  return floor;
}

/**
 * Seconds that no placement with these settings undercuts in the exact evaluation (the argument above).
 * `layerCosts` is the search's memo of layer costs, shared with its exact evaluations.
 */
export function placementFreeSecondsFloor(
  model: ModelSpec,
  rates: HardwareRates,
  workload: Workload,
  settings: CostSettings,
  layerCosts: LayerCostCache,
): number {
  const constants = costConstants(model, settings.compressWeight);
  // Every weight, and so every embedding, on the GPU: the head's least time; StepCostModel.layer reads
  // only the fractions' terms, the same for every realized placement.
  const { terms } = realizedTerms(realizePlacement(model, allOnGpu(settings)));
  const costModel = new StepCostModel(model, rates, workload, settings, constants, terms.wg.space);
  const memo = layerCosts.forCostModel(costModel, terms);
  const head = costModel.head(terms);
  let headSeconds = 0;
  for (const r of RESOURCES) headSeconds += leastOverPlacements(head.seconds[r]);
  const { promptLen: s, genLen: n } = workload;
  const L = model.numLayers;
  let seconds = L * layerFloor(memo.layerTimeBounds("prefill", s)) + headSeconds;
  for (let i = 1; i < n; i++) seconds += L * layerFloor(memo.layerTimeBounds("decode", s + i)) + headSeconds;
  return seconds * (1 - ROUNDING_SLACK);
}
