/**
 * Search landscape: the LP's throughput estimate against block size (gbs x nb, log scale), one line per
 * GPU batch size, best over the families of discrete choices (compression, CPU attention, activation
 * tier); the chosen plan, scored exactly, is marked with a big point and a label.
 */
import type { TopLevelSpec } from "vega-lite";
import type { LpCandidate } from "../planner/spillway/spillway-search.js";

export interface LandscapeRow {
  readonly gbs: number;
  readonly nb: number;
  readonly blockSequences: number;
  /** Best LP throughput estimate at this (gbs, nb) over the families searched. */
  readonly lpThroughputTokensPerSecond: number;
}

export interface LandscapeChosen {
  readonly gbs: number;
  readonly nb: number;
  /** The chosen policy's exact throughput. */
  readonly throughputTokensPerSecond: number;
}

export interface LandscapeRows {
  readonly lines: readonly LandscapeRow[];
  readonly chosen: readonly (LandscapeChosen & { readonly blockSequences: number; readonly label: string })[];
}

/**
 * Best LP throughput per (gbs, nb) over the families, sorted by gbs then block. A point is kept only
 * where every family that reaches this nb or beyond at this gbs was solved at it: the search's
 * boundary refinements solve one family at an nb the others skip, and the "best" there would be that
 * family alone (a false dip in the line).
 */
export function landscapeRows(candidates: readonly LpCandidate[], chosen: LandscapeChosen): LandscapeRows {
  const familyOf = (c: LpCandidate) => `${c.compressWeight}/${c.compressCache}/${c.cpuAttention}/${c.activationTier}`;
  const byGbs = new Map<number, LpCandidate[]>();
  for (const c of candidates) byGbs.set(c.gbs, [...(byGbs.get(c.gbs) ?? []), c]);
  const lines: LandscapeRow[] = [];
  for (const [gbs, own] of byGbs) {
    const solved = new Map<string, Set<number>>();
    for (const c of own) solved.set(familyOf(c), (solved.get(familyOf(c)) ?? new Set()).add(c.nb));
    const reach = new Map([...solved].map(([f, nbs]) => [f, Math.max(...nbs)]));
    const best = new Map<number, number>();
    for (const c of own) best.set(c.nb, Math.max(best.get(c.nb) ?? -Infinity, c.lpThroughputTokensPerSecond));
    for (const [nb, lpThroughputTokensPerSecond] of best) {
      const complete = [...solved].every(([f, nbs]) => reach.get(f)! < nb || nbs.has(nb));
      if (complete) lines.push({ gbs, nb, blockSequences: gbs * nb, lpThroughputTokensPerSecond });
    }
  }
  lines.sort((a, b) => a.gbs - b.gbs || a.blockSequences - b.blockSequences);
  const label = `chosen: ${chosen.gbs}×${chosen.nb}, ${formatRate(chosen.throughputTokensPerSecond)} token/s`;
  return { lines, chosen: [{ ...chosen, blockSequences: chosen.gbs * chosen.nb, label }] };
}

export function formatRate(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 1 ? x.toPrecision(3) : x.toPrecision(2);
}

export function landscapeChart(rows: LandscapeRows, about: { model: string; hardware: string }): TopLevelSpec {
  const gbsValues = [...new Set(rows.lines.map((r) => r.gbs))].sort((a, b) => a - b);
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: `Search landscape: ${about.model} on ${about.hardware}`,
      subtitle: [
        "LP throughput estimate per block size, one line per GPU batch size",
        "(best over compression, CPU attention and activation tier; red: the chosen policy, scored exactly)",
      ],
    },
    width: 600,
    height: 320,
    layer: [
      {
        data: { values: rows.lines },
        mark: { type: "line", point: { size: 18 }, strokeWidth: 1.5 },
        encoding: {
          x: {
            field: "blockSequences",
            type: "quantitative",
            scale: { type: "log", nice: false, padding: 8 },
            title: "block size (sequences in flight: gbs × nb, log scale)",
            axis: { format: "~s" },
          },
          y: { field: "lpThroughputTokensPerSecond", type: "quantitative", title: "LP-estimated throughput (token/s)" },
          color: {
            field: "gbs",
            type: "ordinal",
            title: "GPU batch size",
            scale: { scheme: "viridis", domain: gbsValues },
            legend: { columns: gbsValues.length > 12 ? 2 : 1 },
          },
          order: { field: "blockSequences", type: "quantitative" },
          tooltip: [
            { field: "gbs" },
            { field: "nb" },
            { field: "lpThroughputTokensPerSecond", format: ".3g", title: "token/s (LP)" },
          ],
        },
      },
      {
        data: { values: rows.chosen },
        mark: {
          type: "point",
          shape: "diamond",
          filled: true,
          size: 260,
          color: "#d62728",
          stroke: "white",
          strokeWidth: 1.5,
        },
        encoding: {
          x: { field: "blockSequences", type: "quantitative" },
          y: { field: "throughputTokensPerSecond", type: "quantitative" },
        },
      },
      {
        data: { values: rows.chosen },
        mark: { type: "text", align: "right", dx: -12, dy: -12, fontSize: 12, fontWeight: "bold", color: "#d62728" },
        encoding: {
          x: { field: "blockSequences", type: "quantitative" },
          y: { field: "throughputTokensPerSecond", type: "quantitative" },
          text: { field: "label" },
        },
      },
    ],
  } as TopLevelSpec;
}
