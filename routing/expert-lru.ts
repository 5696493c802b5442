/**
 * LRU expert-cache hit rate of a routing trace, defined as the public Mixtral-offloading code counts it
 * (dvmazur/mixtral-offloading, src/expert_cache.py, ExpertCache.load_experts with unordered=True, as
 * called by SparseMoeWrapper.forward in src/custom_layers.py):
 *
 * - Each layer has its own cache of `cacheSize` expert slots; it starts empty at the start of each
 *   request and persists across that request's tokens.
 * - One forward step of a layer asks for a set of distinct experts, in ascending index order (the code
 *   takes `selected_experts.flatten().unique()`). A decode step is one token: its top-k experts.
 * - Every expert of the step is looked up against the cache as it stood before the step
 *   (`mark_used` for all of them first): cached = hit, and it becomes most recently used; otherwise a
 *   miss. Then the misses are loaded in ascending index order, each evicting the least recently used
 *   slot when the cache is full (it may evict an expert that hit in this same step, or one loaded
 *   just before: with 1 slot and top-2 routing at most one of a token's experts can hit, and the slot
 *   ends holding the larger-indexed miss).
 * - Hit rate = hits / lookups, per layer; the summary is the mean over layers.
 *
 * Looking the experts up one at a time instead (load, then look up the next) differs only when a
 * cached expert of the token would be evicted by a miss of the same token before its own lookup; the
 * published numbers (k = 1..4 of 8: 0.17, 0.34, 0.47, 0.59) were measured with the code above.
 *
 * Prefill: a request's prefill tokens run as one batched step (the union of their experts). By
 * default that step warms the caches but is not counted, so the rate describes decoding, which is
 * what the published numbers measure; `countPrefill` counts it too.
 */
import { PHASE_PREFILL, type RoutingTrace, requestRanges } from "./routing-trace.js";

export interface LruOptions {
  /** Count the lookups of the batched prefill step as well (default false). */
  readonly countPrefill?: boolean;
}

export interface LruLayerCounts {
  readonly hits: number;
  readonly lookups: number;
}

/** One layer's LRU cache: slots ordered from least to most recently used. */
export class ExpertLruCache {
  private readonly slots: Int32Array;
  private used = 0;

  constructor(readonly capacity: number) {
    this.slots = new Int32Array(Math.max(capacity, 1));
  }

  clear(): void {
    this.used = 0;
  }

  /** The cached experts, least recently used first. */
  contents(): number[] {
    return Array.from(this.slots.subarray(0, this.used));
  }

  private indexOf(expert: number): number {
    for (let i = 0; i < this.used; i++) if (this.slots[i] === expert) return i;
    return -1;
  }

  private moveToEnd(index: number): void {
    const expert = this.slots[index]!;
    this.slots.copyWithin(index, index + 1, this.used);
    this.slots[this.used - 1] = expert;
  }

  /**
   * One step: `experts` distinct and sorted ascending. Returns the number of hits; `misses` receives
   * scratch space (length >= experts.length).
   */
  step(experts: ArrayLike<number>, misses: Int32Array): number {
    if (this.capacity === 0) return 0;
    let hits = 0;
    let missCount = 0;
    for (let j = 0; j < experts.length; j++) {
      const e = experts[j]!;
      const at = this.indexOf(e);
      if (at >= 0) {
        hits++;
        this.moveToEnd(at);
      } else misses[missCount++] = e;
    }
    for (let j = 0; j < missCount; j++) {
      if (this.used === this.capacity) this.moveToEndAndReplace(misses[j]!);
      else this.slots[this.used++] = misses[j]!;
    }
    return hits;
  }

  /** Evicts the least recently used slot and inserts `expert` as most recently used. */
  private moveToEndAndReplace(expert: number): void {
    this.slots.copyWithin(0, 1, this.used);
    this.slots[this.used - 1] = expert;
  }
}

/** Per-layer LRU hits and lookups for one cache size (see the file comment for the definition). */
export function lruCounts(trace: RoutingTrace, cacheSize: number, options: LruOptions = {}): LruLayerCounts[] {
  const { numLayers, numExperts, expertsPerToken: k } = trace.meta;
  const hits = new Float64Array(numLayers);
  const lookups = new Float64Array(numLayers);
  const caches = Array.from({ length: numLayers }, () => new ExpertLruCache(cacheSize));
  const scratch = new Int32Array(numExperts);
  const step = new Int32Array(numExperts);
  const seen = new Uint8Array(numExperts);
  for (const { start, end } of requestRanges(trace)) {
    for (const cache of caches) cache.clear();
    let firstDecode = start;
    while (firstDecode < end && trace.phases[firstDecode] === PHASE_PREFILL) firstDecode++;
    if (firstDecode > start) {
      // The prefill block: one batched step per layer over the union of its experts.
      for (let l = 0; l < numLayers; l++) {
        seen.fill(0);
        for (let i = start; i < firstDecode; i++) {
          const base = (i * numLayers + l) * k;
          for (let r = 0; r < k; r++) seen[trace.experts[base + r]!] = 1;
        }
        let n = 0;
        for (let e = 0; e < numExperts; e++) if (seen[e]) step[n++] = e;
        const h = caches[l]!.step(step.subarray(0, n), scratch);
        if (options.countPrefill) {
          hits[l]! += h;
          lookups[l]! += n;
        }
      }
    }
    for (let i = firstDecode; i < end; i++) {
      for (let l = 0; l < numLayers; l++) {
        const base = (i * numLayers + l) * k;
        // Sort the token's experts ascending (insertion sort: k is small).
        for (let r = 0; r < k; r++) {
          const e = trace.experts[base + r]!;
          let j = r;
          while (j > 0 && step[j - 1]! > e) {
            step[j] = step[j - 1]!;
            j--;
          }
          step[j] = e;
        }
        hits[l]! += caches[l]!.step(step.subarray(0, k), scratch);
        lookups[l]! += k;
      }
    }
  }
  return Array.from({ length: numLayers }, (_, l) => ({ hits: hits[l]!, lookups: lookups[l]! }));
}

/** Per-layer hit rates (NaN for a layer with no lookups) and their mean over layers. */
export function lruHitRates(
  trace: RoutingTrace,
  cacheSize: number,
  options: LruOptions = {},
): { mean: number; perLayer: number[] } {
  const perLayer = lruCounts(trace, cacheSize, options).map((c) => (c.lookups > 0 ? c.hits / c.lookups : NaN));
  const valid = perLayer.filter((r) => !Number.isNaN(r));
  return { mean: valid.length ? valid.reduce((a, b) => a + b, 0) / valid.length : NaN, perLayer };
}
