/**
 * What the Spillway cost models predict for one policy (dense and Mixture-of-Experts alike), and the
 * capacity check both apply.
 */

import type { Link } from "../core/links.js";
import type { Resource } from "../core/resources.js";
import { TIERS, type Tier } from "../core/tiers.js";
import { formatBytes } from "../core/units.js";

export interface Prediction {
  readonly throughputTokensPerSecond: number;
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly totalSeconds: number;
  readonly feasible: boolean;
  /** Why the policy does not fit, one line per overflowing tier (empty when feasible). */
  readonly infeasibleReasons: readonly string[];
  readonly peakBytes: Readonly<Record<Tier, number>>;
  readonly capacityBytes: Readonly<Record<Tier, number>>;
  /** Total traffic per link over the whole run. */
  readonly bytes: Readonly<Record<Link, number>>;
  /** Total busy seconds per resource over the whole run. */
  readonly busySeconds: Readonly<Record<Resource, number>>;
  /** The resource that bounds the most wall time (prefill and decode together). */
  readonly bottleneck: Resource;
}

/**
 * One line per tier whose peak exceeds its capacity, or is not a finite number (sizes so extreme that
 * the arithmetic overflowed: such a peak never counts as fitting); empty when everything fits.
 */
export function capacityShortfalls(
  peakBytes: Readonly<Record<Tier, number>>,
  capacityBytes: Readonly<Record<Tier, number>>,
): string[] {
  return TIERS.filter((tier) => !(peakBytes[tier] <= capacityBytes[tier])).map((tier) =>
    Number.isFinite(peakBytes[tier])
      ? `${tier} peak ${formatBytes(peakBytes[tier])} exceeds its capacity ${formatBytes(capacityBytes[tier])}`
      : `${tier} peak is ${peakBytes[tier]} (the sizes overflow the arithmetic), so it cannot fit its capacity ${formatBytes(capacityBytes[tier])}`,
  );
}

/** A line when a predicted time is not a finite, positive number of seconds (the arithmetic overflowed); else none. */
export function timeShortfalls(totalSeconds: number): string[] {
  return Number.isFinite(totalSeconds) && totalSeconds > 0
    ? []
    : [`the predicted time is ${totalSeconds} s (the sizes or rates overflow the arithmetic)`];
}
