/**
 * Memory in use per tier over time, from a trace's counter events, as step lines against each tier's
 * capacity (a dashed rule in the tier's colour). One panel per tier with its own y scale, so the GPU's
 * few GiB are not flattened by the CPU's hundreds. Long traces are downsampled to the maximum within
 * each time bucket, which keeps every peak.
 */
import type { TopLevelSpec } from "vega-lite";
import { TIERS, type Tier } from "../core/tiers.js";
import type { MemorySample } from "./read-trace.js";
import { TIER_COLOURS } from "./tier-colours.js";

export interface MemoryRow {
  readonly tier: Tier;
  readonly seconds: number;
  readonly gib: number;
}

export const DEFAULT_MEMORY_BUCKETS = 1000;

/**
 * Per tier, time order: every sample when there are at most `buckets` of them, else one point per time
 * bucket at the bucket's first sample time with the largest value in the bucket, plus the last sample.
 */
export function memoryRows(samples: readonly MemorySample[], buckets = DEFAULT_MEMORY_BUCKETS): MemoryRow[] {
  const rows: MemoryRow[] = [];
  for (const tier of TIERS) {
    const own = samples.filter((s) => s.tier === tier).sort((a, b) => a.seconds - b.seconds);
    if (own.length === 0) continue;
    if (own.length <= buckets) {
      for (const s of own) rows.push({ tier, seconds: s.seconds, gib: s.bytes / 2 ** 30 });
      continue;
    }
    const start = own[0]!.seconds;
    const end = own[own.length - 1]!.seconds;
    const width = (end - start) / buckets || 1;
    let bucket = -1;
    let current: { seconds: number; bytes: number } | undefined;
    for (const s of own) {
      const b = Math.min(buckets - 1, Math.floor((s.seconds - start) / width));
      if (b !== bucket) {
        if (current) rows.push({ tier, seconds: current.seconds, gib: current.bytes / 2 ** 30 });
        bucket = b;
        current = { seconds: s.seconds, bytes: s.bytes };
      } else if (s.bytes > current!.bytes) current!.bytes = s.bytes;
    }
    if (current) rows.push({ tier, seconds: current.seconds, gib: current.bytes / 2 ** 30 });
    const last = own[own.length - 1]!;
    rows.push({ tier, seconds: last.seconds, gib: last.bytes / 2 ** 30 });
  }
  return rows;
}

export function peakGib(rows: readonly MemoryRow[], tier: Tier): number {
  return rows.filter((r) => r.tier === tier).reduce((m, r) => Math.max(m, r.gib), 0);
}

/** A capacity more than this many times the peak is named in the panel title, not drawn (it would flatten the line). */
const CAPACITY_DRAWN_UP_TO = 3;

export function memoryChart(
  rows: readonly MemoryRow[],
  capacityBytes: Partial<Record<Tier, number>>,
  about: { title: string },
): TopLevelSpec {
  const tiers = TIERS.filter((t) => rows.some((r) => r.tier === t));
  const fmt = (gib: number) => (gib >= 100 ? gib.toFixed(0) : gib >= 10 ? gib.toFixed(1) : gib.toFixed(2));
  const panels = tiers.map((tier, i) => {
    const own = rows.filter((r) => r.tier === tier);
    const peak = peakGib(rows, tier);
    const capacity = capacityBytes[tier] !== undefined ? capacityBytes[tier]! / 2 ** 30 : undefined;
    const drawCapacity =
      capacity !== undefined && Number.isFinite(capacity) && capacity <= Math.max(peak, 1e-9) * CAPACITY_DRAWN_UP_TO;
    const title = `${tier.toUpperCase()}: peak ${fmt(peak)} GiB${capacity !== undefined && Number.isFinite(capacity) ? ` of ${fmt(capacity)} GiB capacity${drawCapacity ? " (dashed)" : ""}` : ""}`;
    const top = Math.max(peak, drawCapacity ? capacity! : 0) * 1.08 || 1;
    const y = {
      field: "gib",
      type: "quantitative",
      title: "GiB in use",
      scale: { domain: [0, top] as number[], nice: false },
    } as const;
    return {
      title: { text: title, anchor: "start", fontSize: 12, color: TIER_COLOURS[tier] },
      width: 620,
      height: 110,
      layer: [
        {
          data: { values: own },
          mark: { type: "line", interpolate: "step-after", color: TIER_COLOURS[tier], strokeWidth: 1.5 },
          encoding: {
            x: {
              field: "seconds",
              type: "quantitative",
              title: i === tiers.length - 1 ? "time since the start of the run (s)" : null,
            },
            y,
          },
        },
        ...(drawCapacity
          ? [
              {
                data: { values: [{ gib: capacity! }] },
                mark: { type: "rule", color: TIER_COLOURS[tier], strokeDash: [6, 4], strokeWidth: 1.5 },
                encoding: { y },
              },
            ]
          : []),
      ],
    };
  });
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: about.title,
      subtitle: "memory in use per tier over time (each panel has its own scale); dashed: the tier's capacity",
    },
    vconcat: panels,
    spacing: 14,
  } as TopLevelSpec;
}
