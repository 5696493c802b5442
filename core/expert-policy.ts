/**
 * How a Mixture-of-Experts model's routed experts are placed, cached, prefetched and computed: the MoE
 * part of a policy (`policy.experts`). Everything else of the model (attention, norms, routers, shared
 * experts, embeddings) stays resident on the GPU at `attentionBits`, as Mixtral-offloading, Pre-gated
 * MoE and MoE-Lightning keep it.
 */
import { type FieldContext, fail } from "./fields.js";

export const EXPERT_BITS = [16, 8, 4, 3, 2] as const;
export type ExpertBits = (typeof EXPERT_BITS)[number];
export const EXPERT_EVICTIONS = ["lru", "lfu", "static"] as const;
export type ExpertEviction = (typeof EXPERT_EVICTIONS)[number];
export const EXPERT_COMPUTES = ["gpu", "cpu", "auto"] as const;
export type ExpertCompute = (typeof EXPERT_COMPUTES)[number];

export interface ExpertPolicy {
  /** Expert slots per layer on the GPU (0 .. numExperts; numExperts: every expert resident). */
  readonly cacheSize: number;
  /** How a full cache picks its victim; `static` pins the most popular experts and never evicts. */
  readonly eviction: ExpertEviction;
  /** Where every expert's home copy lives (misses come from there). */
  readonly offloadTier: "cpu" | "disk";
  /** Stored precision of routed experts. */
  readonly bits: ExpertBits;
  /** Stored precision of everything else (attention, routers, shared experts). */
  readonly attentionBits: ExpertBits;
  /** Speculative prefetch: guess this many experts of a layer ahead (0: none). */
  readonly prefetchExperts: number;
  /** ... this many layers ahead (1: the next layer). */
  readonly prefetchLayers: number;
  /** Pre-gated MoE: the previous block's gate gives this block's exact experts, fetched one layer ahead. */
  readonly pregated: boolean;
  /** Where a missed (non-resident) expert computes: fetched to the GPU, on the CPU, or by token count. */
  readonly compute: ExpertCompute;
  /** With `auto`: a missed expert with at most this many tokens routed to it computes on the CPU. */
  readonly cpuThresholdTokens: number;
}

/**
 * An expert policy with only `overrides` chosen: no cache slots (LRU), fp16 experts homed in host
 * memory, no prefetch, misses fetched to the GPU.
 */
export function plainExpertPolicy(overrides: Partial<ExpertPolicy> = {}): ExpertPolicy {
  return {
    cacheSize: 0,
    eviction: "lru",
    offloadTier: "cpu",
    bits: 16,
    attentionBits: 16,
    prefetchExperts: 0,
    prefetchLayers: 1,
    pregated: false,
    compute: "gpu",
    cpuThresholdTokens: 0,
    ...overrides,
  };
}

/**
 * The rules of an expert policy beyond its fields' types and ranges: slot and prefetch counts within the
 * model's experts (when known), and pre-gating, which already prefetches the exact experts, without
 * speculative prefetch.
 */
export function checkExpertPolicyRules(policy: ExpertPolicy, ctx: FieldContext, numExperts?: number): void {
  if (numExperts !== undefined) {
    for (const key of ["cacheSize", "prefetchExperts"] as const) {
      if (policy[key] > numExperts)
        fail(
          ctx,
          key,
          `expected a number >= 0 and <= ${numExperts} (the model's experts per layer), got ${policy[key]}`,
        );
    }
  }
  if (policy.pregated && policy.prefetchExperts > 0)
    fail(ctx, "pregated", "pre-gated routing already prefetches the exact experts: expected prefetchExperts 0 with it");
}

/**
 * Stored bits per parameter at each precision, scales included: fp16; Q8_0 (32 values and an fp16
 * scale); 4- and 3-bit groups of 64 with fp16 scale and zero (FlexGen's and HQQ's g64 layout);
 * 2-bit HQQ with groups of 16 and 8-bit scale and zero (its published Mixtral files: ~3.0 bits).
 * Sources: moe-offloading.md (bytes per Mixtral-8x7B expert by format).
 */
export const STORED_BITS_PER_PARAM: Readonly<Record<ExpertBits, number>> = { 16: 16, 8: 8.5, 4: 4.5, 3: 3.5, 2: 3 };

export function storedBytes(params: number, bits: ExpertBits): number {
  return (params * STORED_BITS_PER_PARAM[bits]) / 8;
}
