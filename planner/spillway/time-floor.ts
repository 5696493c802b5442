/**
 * A lower bound on the exact total seconds (evaluate-policy.ts predictTime) of every placement of one
 * (gbs, nb) and set of discrete choices: what the search's exact scoring could give at that point
 * whatever the LP chose and however the repair moved it, so that a point whose bound cannot beat the
 * best policy already scored needs neither its exact LP solve nor its evaluation (spillway-search.ts).
 *
 * The argument: predictTime's total is the fill, plus at the prefill and at each decode step i (context
 * s + i) the layers' wall time and the head's serial seconds (plus the hidden state's device crossings,
 * none for a uniform policy). A layer's wall time is the largest of its exactLayerTimeBounds (layer-time.ts:
 * layerTimeBounds plus, where it applies, the CPU-attention round trip),
 * affine expressions in the realized placement fractions (wg, wc, wd) and (cg, cc, cd), each a point of
 * a simplex (the fractions of whole tensors by parameters, of whole sequences of a batch). The least an
 * affine c0 + a·w + b·k takes over the two simplices is c0 + min(a) + min(b), so the largest of those
 * minima is at most the layer's time at any placement. The head's seconds are least with every
 * embedding on the GPU (its off-GPU bytes only add transfer and disk time), and the fill is at least 0.
 * Moving activations off the GPU (the repair's third move) only adds time to the layer's expressions
 * (the hidden state's loads and stores), so the bound computed at the activation tier a point starts
 * from holds after the repair too. Time the cost model adds elsewhere only raises the total.
 *
 * It reads: StepCostModel.layer and head (step-costs.ts), exactLayerTimeBounds (layer-time.ts) and how
 * predictTime adds them up.
 *
 * A GPU batch size's ceiling over every nb up to a limit (batchThroughputCeiling), so that a search can
 * skip a whole family whose every GPU batch size stays below the best (spillway-search.ts):
 * - Under every schedule a layer's wall time is at least w[r] + nb b[r] for each resource r (a bound of
 *   the Spillway schedule; FlexGen's has a lane's first step plus nb - 1 more, w[r] + b[r] + (nb - 1)
 *   b[r], and its compute lane's is at least that for r = gpu and r = cpu; without overlap every
 *   resource's time adds up, and each is at least 0).
 * - A fitting placement holds on the GPU at least L (layer bytes on the GPU) + L bls cg K (step-costs
 *   memory(): every other term is non-negative; K one sequence's stored KV of one layer), so cg <=
 *   capacity / (L gbs K) for every nb >= 1, and wg <= lambda capacity / (L W), lambda = (W / P) / (least
 *   stored bytes per parameter of any tensor): the weights' parameter fraction is at most their byte
 *   share scaled so. Over the simplices with those caps an affine expression's least value is a
 *   fractional knapsack: alpha_r = least of w[r], beta_r = least of b[r], both >= 0 (times).
 * - So the total is at least nb L sum over steps of max over r of (alpha_r / nb + beta_r): that sum
 *   does not rise with nb, and gbs nb n tokens over the total are at most gbs n over L times the sum at
 *   the largest nb, for every nb up to it. Moving activations off the GPU only adds time.
 */
import type { ModelSpec } from "../../core/model-spec.js";
import { layerWeightTensors } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";
import { realizePlacement, storedTensorBytes } from "../../core/realize-placement.js";
import { RESOURCES } from "../../core/resources.js";
import type { Workload } from "../../core/workload.js";
import { type Affine, VariableSpace } from "../lp/affine.js";
import { costConstants } from "./cost-constants.js";
import { PLACEMENT_VARIABLES, realizedTerms } from "./evaluate-policy.js";
import type { HardwareRates } from "./hardware-rates.js";
import type { LayerCostCache } from "./layer-cost-cache.js";
import { type CostSettings, StepCostModel } from "./step-costs.js";

const PLACEMENT_SPACE = new VariableSpace(PLACEMENT_VARIABLES);

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

/** The cost model of `settings` and the memo of its layer costs, with an all-GPU placement's terms. */
function floorContext(
  model: ModelSpec,
  rates: HardwareRates,
  workload: Workload,
  settings: CostSettings,
  layerCosts: LayerCostCache,
) {
  const constants = costConstants(model, settings.compressWeight);
  // Every weight, and so every embedding, on the GPU: the head's least time; StepCostModel.layer reads
  // only the fractions' terms, the same for every realized placement.
  const { terms } = realizedTerms(realizePlacement(model, allOnGpu(settings)));
  const costModel = new StepCostModel(model, rates, workload, settings, constants, terms.wg.space);
  return { costModel, terms, memo: layerCosts.forCostModel(costModel, terms) };
}

/** The least `e` takes with (wg, wc, wd) and (cg, cc, cd) each on its simplex and wg <= gpuWeights, cg <= gpuCache. */
function leastWithGpuCaps(e: Affine, gpuWeights: number, gpuCache: number): number {
  const c = e.coefficients;
  const capped = (onGpu: number, a: number, b: number, cap: number) => {
    const other = Math.min(a, b);
    return onGpu < other ? cap * onGpu + (1 - cap) * other : other;
  };
  return e.constant + capped(c[0]!, c[1]!, c[2]!, gpuWeights) + capped(c[3]!, c[4]!, c[5]!, gpuCache);
}

/** Stored bytes of one sequence's KV cache in one layer under `settings` (StepCostModel.kvBytesPerSequenceLayer). */
export function kvBytesPerSequenceLayer(
  model: ModelSpec,
  rates: HardwareRates,
  workload: Workload,
  settings: CostSettings,
): number {
  const constants = costConstants(model, settings.compressWeight);
  return new StepCostModel(model, rates, workload, settings, constants, PLACEMENT_SPACE).kvBytesPerSequenceLayer;
}

/**
 * Tokens per second that no fitting placement of this GPU batch size and these discrete choices reaches
 * at any nb from 1 to maxNb (settings.nb is not read): the argument above.
 */
export function batchThroughputCeiling(
  model: ModelSpec,
  rates: HardwareRates,
  workload: Workload,
  settings: CostSettings,
  maxNb: number,
  layerCosts: LayerCostCache,
): number {
  if (!(maxNb >= 1)) return 0;
  const { memo, costModel } = floorContext(model, rates, workload, settings, layerCosts);
  const constants = costModel.constants;
  const L = model.numLayers;
  const gpuBytes = rates.capacityBytes.gpu;
  let leastBytesPerParam = Infinity;
  for (const t of layerWeightTensors(model))
    for (const matrix of [false, true])
      leastBytesPerParam = Math.min(
        leastBytesPerParam,
        storedTensorBytes({ params: t.params, matrix }, model, settings.compressWeight) / t.params,
      );
  const lambda = constants.layerStoredBytes / constants.layerParams / leastBytesPerParam;
  const gpuWeights = Math.min(1, (lambda * gpuBytes) / (L * constants.layerStoredBytes));
  const K = costModel.kvBytesPerSequenceLayer;
  const gpuCache = Math.min(1, gpuBytes / (L * settings.gbs * K));
  const step = (phase: "prefill" | "decode", context: number) => {
    const { weights, batch } = memo.layer(phase, context);
    let worst = 0;
    for (const r of RESOURCES) {
      // Busy times are never negative, nor then their least; were one, its share would be least at nb = 1.
      const blockLeast = leastWithGpuCaps(weights.seconds[r], gpuWeights, gpuCache);
      const batchLeast = leastWithGpuCaps(batch.seconds[r], gpuWeights, gpuCache);
      worst = Math.max(worst, (blockLeast >= 0 ? blockLeast / maxNb : blockLeast) + batchLeast);
    }
    return worst;
  };
  const { promptLen: s, genLen: n } = workload;
  let perBatch = step("prefill", s);
  for (let i = 1; i < n; i++) perBatch += step("decode", s + i);
  return ((settings.gbs * n) / (L * perBatch)) * (1 + ROUNDING_SLACK);
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
  const { costModel, terms, memo } = floorContext(model, rates, workload, settings, layerCosts);
  const head = costModel.head(terms);
  let headSeconds = 0;
  for (const r of RESOURCES) headSeconds += leastOverPlacements(head.seconds[r]);
  const { promptLen: s, genLen: n } = workload;
  const L = model.numLayers;
  let seconds = L * layerFloor(memo.exactLayerTimeBounds("prefill", s)) + headSeconds;
  for (let i = 1; i < n; i++) seconds += L * layerFloor(memo.exactLayerTimeBounds("decode", s + i)) + headSeconds;
  return seconds * (1 - ROUNDING_SLACK);
}
