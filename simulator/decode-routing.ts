/** The decode-phase tokens of a routing trace, per request, as the MoE replay reads them. */
import { expertsAt, PHASE_DECODE, type RoutingTrace, requestRanges } from "../routing/routing-trace.js";

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
  return {
    numLayers,
    numExperts,
    expertsPerToken,
    requests: perRequest.length,
    decodeTokens: (request) => perRequest[request]!.length,
    experts: (request, token, layer) => Array.from(expertsAt(trace, perRequest[request]![token]!, layer)),
  };
}
