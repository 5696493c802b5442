/**
 * A routing trace of a Mixture-of-Experts model: for every token the router saw, at every MoE layer,
 * the top-k experts it chose (rank 0 = highest gate weight) and their gate weights.
 *
 * Logical rows are (request, token, phase, layer, rank, expert, gateWeight). In memory a trace is dense
 * and columnar: tokens are sorted by (request, token index), and every token has all `numLayers`
 * layers with exactly `expertsPerToken` ranks, so the expert of (token i, layer l, rank r) sits at
 * `(i * numLayers + l) * expertsPerToken + r` of one Uint16Array (and its weight in a Float32Array).
 * A million tokens of Mixtral-8x7B (32 layers, top-2) take 64 Mi rows, 384 MiB.
 */

export const ROUTING_PHASES = ["prefill", "decode"] as const;
export type RoutingPhase = (typeof ROUTING_PHASES)[number];

/** Phase codes in `RoutingTrace.phases`. */
export const PHASE_PREFILL = 0;
export const PHASE_DECODE = 1;

/** The largest expert count a trace can hold (experts are stored as Uint16). */
export const MAX_EXPERTS = 65535;

export interface RoutingTraceMeta {
  /** Model name (catalogue name, or whatever the source file said; "unknown" when it said nothing). */
  readonly model: string;
  readonly numLayers: number;
  readonly numExperts: number;
  /** Experts per token (top-k). */
  readonly expertsPerToken: number;
}

export interface RoutingTrace {
  readonly meta: RoutingTraceMeta;
  /** Tokens in the trace (each with all layers). */
  readonly numTokens: number;
  /** Request id of each token; tokens are sorted by (request, token). */
  readonly requests: Int32Array;
  /** Token index within its request (its position in the sequence). */
  readonly tokens: Int32Array;
  /** PHASE_PREFILL or PHASE_DECODE per token. */
  readonly phases: Uint8Array;
  /** numTokens x numLayers x expertsPerToken expert indices, in rank order. */
  readonly experts: Uint16Array;
  /** Gate weights, same layout as `experts`. */
  readonly gateWeights: Float32Array;
  /** A speculative prefetcher's guesses recorded beside the routing (runtime/moe records them), if any. */
  readonly guesses?: RoutingGuesses;
}

/** Marks a (token, layer) guess slot that holds no guess (layers below the guess distance). */
export const NO_GUESS = MAX_EXPERTS;

/**
 * What a speculative prefetcher guessed, per token and layer: the `perLayer` experts, best first, that
 * it named for layer l from layer l - `distance`'s router input (and the guessing gate's probability of
 * each). Layers below `distance` have no guess (NO_GUESS, weight 0).
 */
export interface RoutingGuesses {
  /** Layers between the router input a guess was made from and the layer it names experts for (>= 1). */
  readonly distance: number;
  /** Guessed experts per token and layer. */
  readonly perLayer: number;
  /** numTokens x numLayers x perLayer expert indices, best first. */
  readonly experts: Uint16Array;
  /** The guessing gate's softmax probability of each guessed expert, same layout. */
  readonly weights: Float32Array;
}

/** An empty guess table for a trace of `numTokens` tokens (every slot NO_GUESS); the caller fills it. */
export function allocateRoutingGuesses(
  meta: RoutingTraceMeta,
  numTokens: number,
  distance: number,
  perLayer: number,
): RoutingGuesses {
  const slots = numTokens * meta.numLayers * perLayer;
  return { distance, perLayer, experts: new Uint16Array(slots).fill(NO_GUESS), weights: new Float32Array(slots) };
}

/** The experts guessed for token i at layer l, best first (empty below the guess distance; a view). */
export function guessesAt(guesses: RoutingGuesses, numLayers: number, tokenIndex: number, layer: number): Uint16Array {
  if (layer < guesses.distance) return guesses.experts.subarray(0, 0);
  const start = (tokenIndex * numLayers + layer) * guesses.perLayer;
  return guesses.experts.subarray(start, start + guesses.perLayer);
}

/** Flat offset of (token i, layer l, rank 0). */
export function slotOffset(trace: RoutingTrace, tokenIndex: number, layer: number): number {
  return (tokenIndex * trace.meta.numLayers + layer) * trace.meta.expertsPerToken;
}

/** The experts chosen for token i at layer l, in rank order (a view, not a copy). */
export function expertsAt(trace: RoutingTrace, tokenIndex: number, layer: number): Uint16Array {
  const start = slotOffset(trace, tokenIndex, layer);
  return trace.experts.subarray(start, start + trace.meta.expertsPerToken);
}

/** The gate weights of token i at layer l, in rank order (a view). */
export function gateWeightsAt(trace: RoutingTrace, tokenIndex: number, layer: number): Float32Array {
  const start = slotOffset(trace, tokenIndex, layer);
  return trace.gateWeights.subarray(start, start + trace.meta.expertsPerToken);
}

export function phaseName(code: number): RoutingPhase {
  return code === PHASE_PREFILL ? "prefill" : "decode";
}

/** Token ranges [start, end) of each request, in trace order. */
export function requestRanges(trace: RoutingTrace): Array<{ request: number; start: number; end: number }> {
  const ranges: Array<{ request: number; start: number; end: number }> = [];
  let start = 0;
  for (let i = 1; i <= trace.numTokens; i++) {
    if (i === trace.numTokens || trace.requests[i] !== trace.requests[start]) {
      ranges.push({ request: trace.requests[start]!, start, end: i });
      start = i;
    }
  }
  return ranges;
}

/** Number of logical rows (token x layer x rank). */
export function rowCount(trace: RoutingTrace): number {
  return trace.experts.length;
}

/** An empty trace with room for `numTokens` tokens; the caller fills the arrays. */
export function allocateRoutingTrace(meta: RoutingTraceMeta, numTokens: number): RoutingTrace {
  const slots = numTokens * meta.numLayers * meta.expertsPerToken;
  return {
    meta,
    numTokens,
    requests: new Int32Array(numTokens),
    tokens: new Int32Array(numTokens),
    phases: new Uint8Array(numTokens),
    experts: new Uint16Array(slots),
    gateWeights: new Float32Array(slots),
  };
}

/** A logical row's values. */
export type RoutingRow = [
  request: number,
  token: number,
  phase: RoutingPhase,
  layer: number,
  rank: number,
  expert: number,
  gateWeight: number,
];

/** Calls `visit` for every logical row in trace order (request, token, layer, rank). */
export function forEachRow(trace: RoutingTrace, visit: (...row: RoutingRow) => void): void {
  const { numLayers, expertsPerToken } = trace.meta;
  let slot = 0;
  for (let i = 0; i < trace.numTokens; i++) {
    const phase = phaseName(trace.phases[i]!);
    for (let l = 0; l < numLayers; l++) {
      for (let r = 0; r < expertsPerToken; r++, slot++) {
        visit(trace.requests[i]!, trace.tokens[i]!, phase, l, r, trace.experts[slot]!, trace.gateWeights[slot]!);
      }
    }
  }
}
