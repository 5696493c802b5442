/** The decode-phase tokens of a routing trace, per request, as the MoE replay reads them. */
import { expertsAt, guessesAt, PHASE_DECODE, type RoutingTrace, requestRanges } from "../routing/routing-trace.js";

/** Decode-phase routing as the replay reads it. */
export interface DecodeRouting {
  readonly numLayers: number;
  readonly numExperts: number;
  readonly expertsPerToken: number;
  readonly requests: number;
  /** Decode tokens recorded for a request. */
  decodeTokens(request: number): number;
  /** The experts of (request, decode token, layer), in rank order. */
  experts(request: number, token: number, layer: number): readonly number[];
  /** The speculative guesses the trace recorded, if any (RoutingTrace.guesses). */
  readonly guesses?: RecordedGuesses;
}

/** Recorded guesses as the replay reads them. */
export interface RecordedGuesses {
  /** Guesses for layer l were made from layer l - distance's router input. */
  readonly distance: number;
  readonly perLayer: number;
  /** The experts guessed for (request, decode token, layer), best first (empty below `distance`). */
  experts(request: number, token: number, layer: number): readonly number[];
}

export function decodeRouting(trace: RoutingTrace): DecodeRouting {
  const perRequest: number[][] = [];
  for (const range of requestRanges(trace)) {
    const tokens: number[] = [];
    for (let i = range.start; i < range.end; i++) if (trace.phases[i] === PHASE_DECODE) tokens.push(i);
    if (tokens.length > 0) perRequest.push(tokens);
  }
  if (perRequest.length === 0) throw new Error("the routing trace has no decode tokens");
  const { numLayers, numExperts, expertsPerToken } = trace.meta;
  const recorded = trace.guesses;
  const guesses: RecordedGuesses | undefined = recorded && {
    distance: recorded.distance,
    perLayer: recorded.perLayer,
    experts: (request, token, layer) => Array.from(guessesAt(recorded, numLayers, perRequest[request]![token]!, layer)),
  };
  return {
    numLayers,
    numExperts,
    expertsPerToken,
    requests: perRequest.length,
    decodeTokens: (request) => perRequest[request]!.length,
    experts: (request, token, layer) => Array.from(expertsAt(trace, perRequest[request]![token]!, layer)),
    ...(guesses ? { guesses } : {}),
  };
}
