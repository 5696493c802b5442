/**
 * How a layer's per-resource busy times combine into its wall time under each schedule. Each schedule
 * is written as a list of affine lower bounds whose maximum is the layer time, so the LP (one row per
 * bound) and the exact evaluation (the numeric maximum) use the very same expressions.
 *
 * - spillway: only true dependencies. Over a block every resource must do its work for all nb batches
 *   plus the next layer's weights; pipeline fill and drain add one batch's load before the first
 *   compute and one batch's store or CPU work after the last. With CPU attention over compressed weights,
 *   the exact evaluation adds the chain from one layer's dequantisation to the next through the CPU round
 *   trip and the disk KV staging (exactLayerTimeBounds).
 * - flexgen: FlexGen's loop synchronises every stream after each (layer, batch) step, so each step
 *   lasts as long as its longest lane: a resource's busy time, or a chain that runs within the step (a
 *   disk read before its copy up, a copy down before its disk write, the CPU-attention round trip, its
 *   output behind the next layer's weights); the next layer's weights load only during step 0; CPU
 *   attention runs inside the compute step (stepLanes). With activations off the GPU and nb < 3 the
 *   exact evaluation adds the hidden state loaded in its own step before it computes (deferredHiddenLanes).
 * - no overlap: everything in sequence.
 */

import { LINKS } from "../../core/links.js";
import { RESOURCES, type Resource } from "../../core/resources.js";
import { scheduleStrategy } from "../../schedule/strategies.js";
import type { Affine } from "../lp/affine.js";
import type { CostSettings, LayerCosts } from "./step-costs.js";

export function layerTimeBounds(costs: LayerCosts, settings: CostSettings): Affine[] {
  const w = costs.weights.seconds;
  const b = costs.batch.seconds;
  const nb = settings.nb;
  if (!settings.overlap) {
    const all = RESOURCES.map((r) => w[r].plus(b[r].times(nb)));
    return [all[0]!.plus(...all.slice(1))];
  }
  // Pipeline drain holds under both schedules. (No fill chain: a layer's first batch's loads are issued
  // before the previous layer's last step computes, schedule/zigzag.ts, so they overlap it; a per-layer
  // "loads before any compute" bound made the planner 4% pessimistic where per-sequence copy pieces
  // lengthen a step's loads, flexgen-schedule-agreement.test.ts.)
  // The layer's weights are dequantised (w.gpu, zero when uncompressed) before its first batch computes.
  const chains = [
    w.gpu.plus(b.gpu.times(nb), b.d2h), // last batch's stores after all compute
    w.gpu.plus(b.gpu.times(nb), b.cpu), // CPU attention of the last batch after its projections
    w.gpu.plus(b.gpu, b.cpu.times(nb)), // first batch's projections before any CPU attention, last batch's rest after
  ];
  if (scheduleStrategy(settings.schedule).barrierAfterEachStep) {
    const lanes = stepLanes(costs);
    return [...chains, ...laneBounds(lanes, lanes, nb)];
  }
  return [...RESOURCES.map((r: Resource) => w[r].plus(b[r].times(nb))), ...chains];
}

/**
 * What a step waits for under a schedule that synchronises after every step (FlexGen's loop): a step
 * lasts as long as its longest lane, a lane being what runs one after another within the step; the
 * layer's first step (its index 0) also loads the next layer's weights and dequantises this layer's.
 * Lanes, as [first step, every other step]:
 * - compute: GPU work and CPU attention, with the CPU-attention round trip's q, k, v down and output up
 *   between them (compute-pre, send-qkv, cpu-attention, return-attention, compute-post);
 * - each link's busy time (weights first, in the first step);
 * - the step's transfer chains (step-costs.ts StepTransferChains): the next step's KV read from disk and
 *   then copied up (after the weights' disk read in the first step: it is issued after it), its hidden
 *   state read and copied up, the previous step's KV and hidden state copied down and written to disk.
 */
function stepLanes(costs: LayerCosts): StepLane[] {
  const w = costs.weights.seconds;
  const b = costs.batch.seconds;
  const roundTrip = costs.cpuAttentionChain;
  const compute = roundTrip
    ? b.gpu.plus(b.cpu, roundTrip.qkvDownSeconds, roundTrip.outputUpSeconds)
    : b.gpu.plus(b.cpu);
  const lanes: StepLane[] = [
    { first: compute.plus(w.gpu, w.cpu), rest: compute },
    ...LINKS.map((r) => ({ first: w[r].plus(b[r]), rest: b[r] })),
  ];
  const t = costs.stepTransferChains;
  if (!t) return lanes;
  // The first step's attention output goes up behind the next layer's weights, issued first on the
  // link, and the rest of the layer computes after it (its later steps: the compute lane). The weights'
  // CPU-resident part is ready as the step starts; their disk-resident part only after its read, which
  // runs while this layer's weights are dequantised and its first batch is attended on the CPU: counted
  // as ahead of the output too. Counting only the CPU-resident part made disk weights look free to the
  // LP: the default plan's search moved a sixth of them to disk, 1.5% slower simulated.
  if (roundTrip) lanes.push({ first: w.h2d.plus(roundTrip.outputUpSeconds, roundTrip.gpuAfterSeconds) });
  const kvLoad = t.kvLoad.diskReadSeconds.plus(t.kvLoad.h2dSeconds);
  const hiddenLoad = t.hiddenLoad.diskReadSeconds.plus(t.hiddenLoad.h2dSeconds);
  const kvStore = t.kvStore.d2hSeconds.plus(t.kvStore.diskWriteSeconds);
  const hiddenStore = t.hiddenStore.d2hSeconds.plus(t.hiddenStore.diskWriteSeconds);
  for (const [chain, read, write] of [
    [kvLoad, t.kvLoad.diskReadSeconds, undefined],
    [hiddenLoad, t.hiddenLoad.diskReadSeconds, undefined],
    [kvStore, undefined, t.kvStore.diskWriteSeconds],
    [hiddenStore, undefined, t.hiddenStore.diskWriteSeconds],
  ] as const) {
    // A chain with both halves: one with a single transfer is already in its link's lane.
    const half = (read ?? write)!;
    if (isZero(half) || isZero(chain.minus(half))) continue;
    lanes.push({ first: read ? chain.plus(w.diskRead) : chain, rest: chain });
  }
  return lanes;
}

function isZero(e: Affine): boolean {
  return e.constant === 0 && e.coefficients.every((c) => c === 0);
}

interface StepLane {
  readonly first: Affine;
  /** Undefined: the lane's later steps are no longer than the compute lane's. */
  readonly rest?: Affine;
}

/** The layer's nb steps last at least one lane's first step plus nb - 1 times another's later step. */
function laneBounds(firsts: readonly StepLane[], rests: readonly StepLane[], nb: number): Affine[] {
  const bounds: Affine[] = [];
  for (const { first } of firsts) for (const { rest } of rests) if (rest) bounds.push(first.plus(rest.times(nb - 1)));
  return bounds;
}

/**
 * The exact evaluation's bounds: layerTimeBounds and, where it exists, the CPU-attention round trip.
 * The round trip is piecewise in nb (one CPU attention at nb = 1, two from nb = 2 on, disk reads from
 * nb = 3 on), so it is not one of the LP's rows, whose coefficients are affine in nb (the LP family is
 * built at nb = 1 and 2 and interpolated, spillway-lp.ts). It only adds time, so the LP's optimum stays
 * a lower bound of the exact prediction.
 */
export function exactLayerTimeBounds(costs: LayerCosts, settings: CostSettings): Affine[] {
  const bounds = layerTimeBounds(costs, settings);
  const roundTrip = cpuAttentionRoundTrip(costs, settings);
  if (roundTrip) bounds.push(roundTrip);
  const deferred = deferredHiddenLanes(costs, settings);
  if (deferred.length) {
    const lanes = stepLanes(costs);
    bounds.push(
      ...laneBounds(deferred, [...lanes, ...deferred], settings.nb),
      ...laneBounds(lanes, deferred, settings.nb),
    );
  }
  return bounds;
}

/**
 * FlexGen's loop with activations off the GPU and fewer than three GPU batches: a step's hidden state
 * cannot be loaded a step ahead (the store it reads is issued in the step that loads it; schedule/zigzag.ts
 * loads), so it is loaded in its own step, issued after the step's other loads, and the step computes
 * only after it: behind the next layer's weights (first step) and the next step's KV on the link, when
 * that KV waits for no disk read (kvCopyWithoutDiskSeconds; the weights: their CPU-resident part, which
 * waits for no read either), or after its own read from disk. Piecewise
 * in nb (from nb = 3 on the loads go a step ahead), so not an LP row; the first layer's input, always
 * loaded ahead, is counted as the others' (a layer in numLayers).
 */
function deferredHiddenLanes(costs: LayerCosts, settings: CostSettings): StepLane[] {
  const t = costs.stepTransferChains;
  if (!t || !settings.overlap || settings.activationTier === "gpu" || settings.nb >= 3) return [];
  if (!scheduleStrategy(settings.schedule).barrierAfterEachStep) return [];
  const compute = stepLanes(costs)[0]!.rest!;
  const behindLoads = t.kvCopyWithoutDiskSeconds.plus(t.hiddenLoad.h2dSeconds, compute);
  const afterRead = t.hiddenLoad.diskReadSeconds.plus(t.hiddenLoad.h2dSeconds, compute);
  return [
    { first: behindLoads.plus(t.weightCopyFromCpuSeconds), rest: behindLoads },
    { first: afterRead, rest: afterRead },
  ];
}

/**
 * The CPU-attention chain through the single buffer of dequantised weights, under a schedule with only
 * true dependencies (spillway). Layer g + 1's weights are dequantised only after layer g's last batch
 * has finished on the GPU, and every batch of a layer computes only after its layer is dequantised, so
 * from one dequantisation to the next: the first batch's projections, its q, k, v down, its CPU
 * attention and the next batch's (the CPU attends one batch at a time), then, with disk-resident KV in
 * two pinned staging buffers (batch k + 2's read waits until batch k's attention has read its buffer),
 * the disk reads of batches 2..nb-1, all after that first attention and one at a time; then the last
 * batch's output up, its rest of the layer, and the next layer's dequantisation. Batches are served in
 * order on each lane, as the schedule issues them. Without compressed weights consecutive layers overlap
 * on the GPU and this chain does not bind a layer; FlexGen's schedule has its own bounds above.
 */
function cpuAttentionRoundTrip(costs: LayerCosts, settings: CostSettings): Affine | undefined {
  const chain = costs.cpuAttentionChain;
  const strategy = scheduleStrategy(settings.schedule);
  if (!chain || !settings.compressWeight || !strategy.reuseWaits.includes("dequant-buffer-free")) return undefined;
  const { nb } = settings;
  const w = costs.weights.seconds;
  const b = costs.batch.seconds;
  const stagedReads = strategy.reuseWaits.includes("kv-staging-free") ? Math.max(nb - 2, 0) : 0;
  return w.gpu.plus(
    b.gpu,
    b.cpu.times(Math.min(nb, 2)),
    chain.kvDiskReadSeconds.times(stagedReads),
    chain.qkvDownSeconds,
    chain.outputUpSeconds,
  );
}

/** Numeric layer time: the largest bound at the given variable values. */
export function layerSeconds(bounds: readonly Affine[], values: ArrayLike<number>): number {
  let worst = 0;
  for (const bound of bounds) worst = Math.max(worst, bound.evaluate(values));
  return worst;
}
