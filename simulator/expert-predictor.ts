/**
 * What a step needs and what the prefetcher guesses, shared by the replay (simulator/moe-replay.ts) and
 * the MoE runtime (runtime/moe/expert-store.ts) so that their counts agree on the same routing:
 * - pre-gated: layer l + 1's exact experts are known at layer l. The runtime's own router for layer
 *   l + 1 has not run yet at that point, so it reads them from the reference run's routing (an oracle
 *   standing in for Pre-gated MoE's re-trained gate, which computes them one block early);
 * - speculative: the m experts of layer l + a most often routed in the same token as layer l's experts
 *   over the whole trace (co-occurrence counts: the replay's in-sample predictor, standing in for
 *   applying the next gate to the current hidden state).
 */
import type { DecodeRouting } from "./decode-routing.js";

/** How often expert j of layer l + distance is routed in the same token as expert i of layer l. */
export function coOccurrence(routing: DecodeRouting, distance: number): Float64Array[] {
  const E = routing.numExperts;
  const tables = Array.from({ length: routing.numLayers }, () => new Float64Array(E * E));
  for (let r = 0; r < routing.requests; r++) {
    for (let t = 0; t < routing.decodeTokens(r); t++) {
      for (let l = 0; l + distance < routing.numLayers; l++) {
        const table = tables[l]!;
        for (const i of routing.experts(r, t, l))
          for (const j of routing.experts(r, t, l + distance)) table[i * E + j]! += 1;
      }
    }
  }
  return tables;
}

/** The union of a batch's experts at (decode step, layer), in first-seen order (sequence b reads request b mod requests). */
export function batchExperts(routing: DecodeRouting, batch: number, step: number, layer: number): number[] {
  const set = new Set<number>();
  for (let b = 0; b < batch; b++) {
    const r = b % routing.requests;
    for (const e of routing.experts(r, step % routing.decodeTokens(r), layer)) set.add(e);
  }
  return [...set];
}

/** The m experts scoring highest against `need` in a co-occurrence table (ties: the lower index). */
export function speculativeGuesses(
  table: Float64Array,
  numExperts: number,
  need: Iterable<number>,
  m: number,
): number[] {
  const E = numExperts;
  const score = new Float64Array(E);
  for (const i of need) for (let j = 0; j < E; j++) score[j]! += table[i * E + j]!;
  return Array.from({ length: E }, (_, j) => j)
    .sort((a, b) => score[b]! - score[a]! || a - b)
    .slice(0, m);
}
