/**
 * What a step needs and what the prefetcher guesses, shared by the replay (simulator/moe-replay.ts) and
 * the MoE runtime (runtime/moe/expert-store.ts) so that their counts agree on the same routing:
 * - `batchExperts`: a decode step's experts of a layer, the union over the batch;
 * - `batchGuesses`: a batch's guess for a layer from its tokens' ranked guesses (the runtime's gate
 *   lookahead, or the guesses a run recorded in its trace);
 * - `countGuesses`: a guess's quality against what the layer used;
 * - the statistical predictor (`statisticalCoOccurrence`, `statisticalGuesses`): only for the replay of
 *   a trace that recorded no guesses, where no hidden state exists to apply a gate to. It guesses, at
 *   layer l, the m experts of layer l + a most often routed in the same token as layer l's experts over
 *   the whole trace (an in-sample co-occurrence table, not the mechanism a runtime uses).
 */
import type { DecodeRouting } from "./decode-routing.js";

/** Statistical predictor: how often expert j of layer l + distance is routed in the same token as expert i of layer l. */
export function statisticalCoOccurrence(routing: DecodeRouting, distance: number): Float64Array[] {
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

/** Statistical predictor: the m experts scoring highest against `need` in a co-occurrence table (ties: the lower index). */
export function statisticalGuesses(
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

/**
 * A batch's guess of at most m experts from its tokens' ranked guesses: every token's best guess (in
 * token order), then every token's second, and so on, each expert once, until m are named. With one
 * token it is that token's top m; each token's list is read only to its first m entries, so a trace
 * that recorded more guesses per token replays a smaller m exactly.
 */
export function batchGuesses(perToken: readonly (readonly number[])[], m: number): number[] {
  const chosen: number[] = [];
  const seen = new Set<number>();
  for (let rank = 0; rank < m && chosen.length < m; rank++) {
    for (const list of perToken) {
      const e = list[rank];
      if (e === undefined || seen.has(e)) continue;
      seen.add(e);
      chosen.push(e);
      if (chosen.length === m) break;
    }
  }
  return chosen;
}

/** A layer's guess against the experts it used: guessed, guessed and used, used. */
export function countGuesses(
  guessed: readonly number[],
  used: readonly number[] | ReadonlySet<number>,
): { guesses: number; used: number; lookups: number } {
  const usedSet = used instanceof Set ? used : new Set(used as readonly number[]);
  let hit = 0;
  for (const e of guessed) if (usedSet.has(e)) hit++;
  return { guesses: guessed.length, used: hit, lookups: usedSet.size };
}
