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
 *   lasts as long as its slowest resource; the next layer's weights load only during step 0; CPU
 *   attention runs inside the compute step.
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
  // Pipeline fill and drain hold under both schedules.
  // The layer's weights are dequantised (w.gpu, zero when uncompressed) before its first batch computes.
  const chains = [
    b.h2d.plus(b.gpu.times(nb)), // first batch's loads before any compute
    w.gpu.plus(b.gpu.times(nb), b.d2h), // last batch's stores after all compute
    w.gpu.plus(b.gpu.times(nb), b.cpu), // CPU attention of the last batch after its projections
    w.gpu.plus(b.gpu, b.cpu.times(nb)), // first batch's projections before any CPU attention, last batch's rest after
  ];
  if (scheduleStrategy(settings.schedule).barrierAfterEachStep) {
    // Compute (GPU and CPU attention together) is one synchronous step in a loop that syncs after every
    // step (FlexGen's).
    const lanes: Affine[][] = [
      [w.gpu.plus(w.cpu, b.gpu, b.cpu), b.gpu.plus(b.cpu)],
      ...LINKS.map((r) => [w[r].plus(b[r]), b[r]]),
    ];
    const bounds: Affine[] = [...chains];
    for (const [first] of lanes) for (const [, rest] of lanes) bounds.push(first!.plus(rest!.times(nb - 1)));
    return bounds;
  }
  return [...RESOURCES.map((r: Resource) => w[r].plus(b[r].times(nb))), ...chains];
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
  return roundTrip ? [...bounds, roundTrip] : bounds;
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
