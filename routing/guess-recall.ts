/**
 * How well a trace's recorded speculative guesses (RoutingTrace.guesses) name the experts the router
 * then chose: per decode token (all tokens if there are none) and per layer from the guess distance on,
 * the share of the token's k routed experts among its first `guessCount` guesses, averaged.
 */
import { expertsAt, guessesAt, PHASE_DECODE, type RoutingTrace } from "./routing-trace.js";

/** The mean per-token recall of the first `guessCount` guesses; undefined without guesses or with fewer recorded. */
export function recordedGuessRecall(trace: RoutingTrace, guessCount = trace.meta.expertsPerToken): number | undefined {
  const guesses = trace.guesses;
  if (!guesses || guessCount > guesses.perLayer || guessCount < 1) return undefined;
  const { numLayers: L, expertsPerToken: k } = trace.meta;
  let decode = false;
  for (let i = 0; i < trace.numTokens && !decode; i++) decode = trace.phases[i] === PHASE_DECODE;
  let named = 0,
    routed = 0;
  for (let i = 0; i < trace.numTokens; i++) {
    if (decode && trace.phases[i] !== PHASE_DECODE) continue;
    for (let l = guesses.distance; l < L; l++) {
      const guessed = guessesAt(guesses, L, i, l).subarray(0, guessCount);
      for (const e of expertsAt(trace, i, l)) if (guessed.includes(e)) named++;
      routed += k;
    }
  }
  return routed > 0 ? named / routed : undefined;
}
