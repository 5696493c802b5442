/**
 * What the MoE cost model needs to know about routing, summarised from a routing trace's statistics
 * (or assumed uniform when there is none), and the expected expert-cache hit rate derived from it.
 */
import type { ExpertEviction } from "../../core/expert-policy.js";
import type { MoeSpec } from "../../core/model-spec.js";

export interface RoutingProfile {
  /** Mean per-layer LRU hit rate of one request (batch 1) with k expert slots, index k = 0 .. numExperts. */
  readonly lruHitRate: readonly number[];
  /** Mean share of a layer's routed lookups that go to its k most popular experts, index k = 0 .. numExperts. */
  readonly topShare: readonly number[];
  /**
   * Share of a layer's experts that a speculative guess made d layers earlier names (index d - 1), when
   * the guess has as many experts as the layer routes to.
   */
  readonly speculativeRecall: readonly number[];
  /** Where the figures come from (a trace file, the synthetic trace, or the uniform assumption). */
  readonly source: string;
}

/** No temporal locality, uniform popularity, guesses no better than chance. */
export function uniformRoutingProfile(moe: MoeSpec): RoutingProfile {
  const E = moe.numExperts;
  const share = Array.from({ length: E + 1 }, (_, k) => k / E);
  return {
    lruHitRate: share,
    topShare: share,
    speculativeRecall: [moe.expertsPerToken / E],
    source: "uniform routing (no trace)",
  };
}

/** Experts a batch of `tokens` tokens touches in one layer, expected, under uniform routing. */
export function touchedExperts(moe: MoeSpec, tokens: number): number {
  const E = moe.numExperts;
  return E * (1 - (1 - moe.expertsPerToken / E) ** tokens);
}

/**
 * Expected share of a layer's touched experts that are resident, for `slots` slots and `tokens` tokens
 * per step. One token per step is the trace's figure (LRU, or the pinned top experts' share for
 * `static`; LFU is taken as the better of the two, since it keeps the popular experts and adapts).
 * With more tokens the touched set grows towards every expert and locality matters less: the rate
 * moves from that figure to the share of experts resident, in proportion to the extra experts touched.
 * An approximation; the simulator replays the real caches on a trace to check it.
 */
export function expectedHitRate(
  profile: RoutingProfile,
  moe: MoeSpec,
  slots: number,
  eviction: ExpertEviction,
  tokens: number,
): number {
  const E = moe.numExperts;
  const k = Math.min(E, Math.max(0, slots));
  if (k >= E) return 1;
  if (k === 0) return 0;
  const single =
    eviction === "lru"
      ? profile.lruHitRate[k]!
      : eviction === "static"
        ? profile.topShare[k]!
        : Math.max(profile.lruHitRate[k]!, profile.topShare[k]!);
  const base = k / E;
  const touched = touchedExperts(moe, tokens);
  return base + (single - base) * (moe.expertsPerToken / touched);
}

/** Share of a layer's experts a guess of `guesses` experts made `distance` layers ahead names. */
export function speculativeRecall(profile: RoutingProfile, moe: MoeSpec, guesses: number, distance: number): number {
  if (guesses <= 0) return 0;
  const recall = profile.speculativeRecall;
  const atDistance = recall[Math.min(recall.length, distance) - 1] ?? 0;
  const chance = Math.min(1, guesses / moe.numExperts);
  // Guessing more experts than a token routes to adds chance-level hits among the rest.
  if (guesses <= moe.expertsPerToken) return (atDistance * guesses) / moe.expertsPerToken;
  return Math.min(1, atDistance + (1 - atDistance) * chance);
}
