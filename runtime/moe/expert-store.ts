/**
 * Where a Mixtral layer's routed experts live and how they reach the compute: every expert's home copy
 * in host memory (stored at policy.bits, quantized-weights.ts: w1|w3|w2, exactly the planner's bytes per
 * expert; shared memory so the copy engine can read it), and per layer an
 * expert cache of `cacheSize` slots in device memory whose policy is simulator/expert-cache.ts's
 * ExpertCache — the same definition the replay uses.
 *
 * Decode, per layer (exactly as simulator/moe-replay.ts counts it):
 * - lookups are the batch's union of experts, classified against the cache as it stood when the layer
 *   started: hit (resident), prefetched (arrived in a prefetch buffer), on the CPU (missed and computed
 *   from the host copy: compute "cpu", or "auto" with few tokens per expert), or a demand fetch;
 * - the hits are used (computed from their slots) first, then the experts brought in enter the cache in
 *   ascending index order: each takes the slot of the expert the policy evicts (a demand fetch copies
 *   host -> that slot; a prefetched expert's buffer and the victim's slot swap roles). An expert the
 *   cache does not keep (0 slots, static) computes from the staging block or its prefetch buffer;
 * - the prefetch for layer l + distance (none when this layer's misses go to the CPU) is issued into
 *   free prefetch buffers: before the layer's experts run, as many as fit once the unused arrivals
 *   (wasted) have given their buffers back, so those copies overlap the layer's compute; the rest after
 *   the layer, once its used arrivals have swapped buffers with cache slots. What it fetches comes from
 *   the model itself, before layer l's experts run: a pre-gated model's pre-gate gives layer l + 1's
 *   exact experts (`beforeExperts`' nextLayerExperts); speculative prefetch applies layer l + a's router
 *   to layer l's router input (gate-lookahead.ts) and combines the batch's guesses (`batchGuesses`).
 *   Nothing is read from a reference run.
 * - the guesses' quality is counted for every decode layer that had one: `guesses` (experts guessed),
 *   `guessesUsed` (guessed and used by the layer), `guessedLayerLookups` (the layer's used experts).
 * Prefill streams every non-resident expert through the staging block, or computes it from its host
 * copy where the policy computes misses on the CPU (compute "cpu", or "auto" at few token rows per
 * expert: as the planner's prefill counts them), and leaves the caches as they were warmed (the replay
 * starts decode from the warm caches).
 *
 * Blocks, copies and expert compute belong to the backend (expert-memory.ts). On the CPU backend
 * (arena-expert-memory.ts) copies go through the TransferEngine's h2d stream: with worker threads a
 * prefetch proceeds while the main thread computes, and a copy needed at once (a demand fetch, prefill
 * streaming, the warm-up) runs on the main thread after the stream's earlier copies (copyNow); on the
 * CUDA backend (../cuda/cuda-expert-memory.ts) the device's compute stream waits for it by event. An
 * unused prefetch is not waited for (its buffer is next written by a later copy on the same in-order
 * stream).
 */
import type { ExpertPolicy } from "../../core/expert-policy.js";
import type { ModelSpec } from "../../core/model-spec.js";
import { ExpertCache } from "../../simulator/expert-cache.js";
import { batchGuesses, countGuesses } from "../../simulator/expert-predictor.js";
import { prefetchBufferCount } from "./device-budget.js";
import type { ExpertMemory, ExpertTransferKind, ExpertWork } from "./expert-memory.js";
import type { GateLookahead, TokenGuesses } from "./gate-lookahead.js";
import type { ExpertExecutor, ExpertIo, LookaheadGuesses, MoePhase } from "./mixtral-model.js";
import { expertStoredBytes } from "./quantized-weights.js";

export type { ExpertTransferKind, ExpertTransferMeta } from "./expert-memory.js";

/** The decode counts, named as the replay's ExpertReplayFigures. */
export interface ExpertCounts {
  lookups: number;
  hits: number;
  demandFetches: number;
  prefetches: number;
  /** Prefetched experts their layer used (the replay's prefetchRecall numerator). */
  prefetchUsed: number;
  wastedPrefetches: number;
  cpuComputed: number;
  /** Experts streamed through the staging block in prefill (not a decode lookup). */
  prefillFetches: number;
  /** Experts the prefetcher guessed for decode layers (pre-gated: the pre-gate's experts). */
  guesses: number;
  /** Of `guesses`, those the layer used. */
  guessesUsed: number;
  /** Experts used by the decode layers that had a guess (the recall denominator). */
  guessedLayerLookups: number;
}

interface Arrival<Block, Copy> {
  readonly block: Block;
  readonly transfer: Copy;
}

/** The cache policy over a backend's expert memory (expert-memory.ts: `Block` a device block, `Copy` a copy in flight). */
export class ExpertStore<Block = unknown, Copy = unknown> implements ExpertExecutor {
  readonly counts: ExpertCounts = {
    lookups: 0,
    hits: 0,
    demandFetches: 0,
    prefetches: 0,
    prefetchUsed: 0,
    wastedPrefetches: 0,
    cpuComputed: 0,
    prefillFetches: 0,
    guesses: 0,
    guessesUsed: 0,
    guessedLayerLookups: 0,
  };
  /** Receives every layer's per-token guesses, prefill and decode (to record them beside the routing). */
  onGuesses?: (layer: number, phase: MoePhase, guesses: TokenGuesses) => void;
  private readonly caches: ExpertCache[];
  private readonly slotOf: Map<number, Block>[];
  private readonly freeSlots: Block[][];
  private readonly staging: Block | undefined;
  private readonly pool: Block[] = [];
  private readonly incoming: Map<number, Arrival<Block, Copy>>[];
  private readonly distance: number;
  /** Token rows of the step under way (beforeExperts gives them): a prefill's decide where its misses compute. */
  private rows = 0;
  /** Per target layer, the batch's guess made `distance` layers earlier in this decode step. */
  private readonly guessed: (number[] | undefined)[];
  /** Speculative prefetch applies a later layer's router to beforeExperts' router input (ExpertExecutor). */
  readonly readsRouterInput: boolean;

  /**
   * @param memory the backend's device blocks and copies (expert-memory.ts).
   * @param host every expert's stored home copy (expertStoredBytes bytes), [layer][expert]: what CPU
   *   misses compute from (and what `memory` copies from).
   * @param initial per layer, the experts to warm the cache with (most popular first).
   * @param lookahead speculative prefetch's guesser (policy.prefetchExperts > 0): the router of layer
   *   l + prefetchLayers applied to layer l's router input, prefetchExperts guesses per token.
   */
  constructor(
    readonly model: ModelSpec,
    readonly policy: ExpertPolicy,
    readonly batch: number,
    private readonly memory: ExpertMemory<Block, Copy>,
    private readonly host: readonly (readonly Uint16Array[])[],
    initial: readonly (readonly number[])[],
    private readonly lookahead?: GateLookahead,
  ) {
    const moe = model.moe!;
    const L = model.numLayers;
    const bytes = expertStoredBytes(model, policy.bits);
    if (host.some((layer) => layer.some((copy) => copy.byteLength !== bytes)))
      throw new Error(`every expert's home copy must hold ${bytes} bytes (${policy.bits}-bit experts)`);
    if (policy.cacheSize > moe.numExperts)
      throw new Error(`cacheSize ${policy.cacheSize} is more than the ${moe.numExperts} experts per layer`);
    this.caches = Array.from(
      { length: L },
      (_, l) => new ExpertCache(policy.cacheSize, policy.eviction, initial[l] ?? []),
    );
    this.slotOf = Array.from({ length: L }, () => new Map<number, Block>());
    this.freeSlots = Array.from({ length: L }, () => []);
    for (let l = 0; l < L; l++) {
      for (let s = 0; s < policy.cacheSize; s++)
        this.freeSlots[l]!.push(memory.allocate(bytes, `layer ${l} expert slot ${s}`));
      for (const e of this.caches[l]!.resident) {
        const block = this.freeSlots[l]!.pop()!;
        memory.copyNow(l, e, block, "warm");
        this.slotOf[l]!.set(e, block);
      }
    }
    this.staging = policy.cacheSize < moe.numExperts ? memory.allocate(bytes, "expert staging") : undefined;
    for (let i = 0; i < prefetchBufferCount(model, policy, batch); i++)
      this.pool.push(memory.allocate(bytes, `expert prefetch buffer ${i}`));
    this.incoming = Array.from({ length: L }, () => new Map<number, Arrival<Block, Copy>>());
    this.distance = policy.pregated ? 1 : policy.prefetchLayers;
    this.guessed = new Array(L).fill(undefined);
    this.readsRouterInput = !policy.pregated && lookahead !== undefined;
    const speculative = !policy.pregated && policy.prefetchExperts > 0;
    if (speculative && !(lookahead?.distance === this.distance && lookahead.perLayer === policy.prefetchExperts))
      throw new Error(
        `speculative prefetch needs a gate lookahead of ${policy.prefetchExperts} guesses, ${this.distance} layers ahead`,
      );
  }

  /** Experts resident in layer l's cache, in the policy's order. */
  resident(layer: number): readonly number[] {
    return this.caches[layer]!.resident;
  }

  beforeExperts(
    layer: number,
    phase: MoePhase,
    routerInput: Float32Array,
    rows: number,
    nextLayerExperts: readonly number[] | undefined,
    lookaheadGuesses?: LookaheadGuesses,
  ): void {
    this.rows = rows;
    const target = layer + this.distance;
    if (this.policy.pregated) {
      if (target >= this.model.numLayers) return;
      if (!nextLayerExperts)
        throw new Error(`layer ${layer}: pre-gated prefetch needs a pre-gated model (this layer has no pre-gate)`);
      if (phase === "decode") this.guessed[target] = [...nextLayerExperts];
      return;
    }
    if (
      !lookaheadGuesses &&
      this.lookahead &&
      target < this.model.numLayers &&
      routerInput.length < rows * this.model.hiddenSize
    )
      throw new Error(`layer ${layer}: speculative prefetch needs the router input or the decoder's guesses`);
    const guesses = lookaheadGuesses ?? this.lookahead?.guess(layer, routerInput, rows);
    if (!guesses) return;
    this.onGuesses?.(layer, phase, guesses);
    if (phase !== "decode") return;
    const m = this.lookahead!.perLayer;
    const perToken = Array.from({ length: rows }, (_, row) =>
      Array.from(guesses.experts.subarray(row * m, (row + 1) * m)),
    );
    this.guessed[target] = batchGuesses(perToken, this.policy.prefetchExperts);
  }

  /** Whether the policy computes a layer's misses on the CPU, at `tokensPerExpert` token rows per used expert. */
  private missesOnCpu(tokensPerExpert: number): boolean {
    const x = this.policy;
    return x.compute === "cpu" || (x.compute === "auto" && tokensPerExpert <= x.cpuThresholdTokens);
  }

  /** Copies the expert into the staging block and runs it from there. */
  private computeFromStaging(layer: number, expert: number, kind: ExpertTransferKind, work: ExpertWork): void {
    if (!this.staging) throw new Error(`layer ${layer}: expert ${expert} is not resident but every expert should be`);
    this.memory.copyNow(layer, expert, this.staging, kind);
    this.memory.computeFrom(layer, expert, this.staging, work);
  }

  runExperts(
    layer: number,
    phase: MoePhase,
    needed: readonly number[],
    compute: (expert: number, weights: Uint16Array) => void,
    io?: ExpertIo,
  ): void {
    const work: ExpertWork = { compute, ...(io ? { io } : {}) };
    if (phase === "prefill") {
      const onCpu = this.missesOnCpu((this.rows * this.model.moe!.expertsPerToken) / needed.length);
      for (const e of needed) {
        const slot = this.slotOf[layer]!.get(e);
        if (slot) this.memory.computeFrom(layer, e, slot, work);
        else if (onCpu) work.compute(e, this.host[layer]![e]!);
        else {
          this.counts.prefillFetches++;
          this.computeFromStaging(layer, e, "prefill", work);
        }
      }
    } else this.decodeLayer(layer, needed, work);
    this.memory.endLayer?.(layer, work);
  }

  private decodeLayer(l: number, need: readonly number[], work: ExpertWork): void {
    const moe = this.model.moe!;
    const cache = this.caches[l]!;
    const slots = this.slotOf[l]!;
    const arrived = this.incoming[l]!;
    const missesOnCpu = this.missesOnCpu((this.batch * moe.expertsPerToken) / need.length);
    const atStart = new Set(cache.resident);
    const hits = need.filter((e) => atStart.has(e));
    const brought = need.filter((e) => !atStart.has(e) && (arrived.has(e) || !missesOnCpu)).sort((a, b) => a - b);
    const onCpu = need.filter((e) => !atStart.has(e) && !arrived.has(e) && missesOnCpu);
    // Prefetched experts nobody uses are known now: their buffers go back at once, and the prefetch for
    // layer l + distance starts in whatever buffers are free, to overlap this layer's experts.
    const needSet = new Set(need);
    // Not waited for: a buffer is only ever written by a later copy on the same (in-order) h2d stream.
    for (const [e, arrival] of arrived) {
      if (needSet.has(e)) continue;
      this.pool.push(arrival.block);
      arrived.delete(e);
      this.counts.wastedPrefetches++;
    }
    this.issuePrefetch(l, missesOnCpu, false);
    const guessed = this.guessed[l];
    this.guessed[l] = undefined;
    if (guessed) {
      const quality = countGuesses(guessed, need);
      this.counts.guesses += quality.guesses;
      this.counts.guessesUsed += quality.used;
      this.counts.guessedLayerLookups += quality.lookups;
    }
    this.counts.lookups += need.length;
    this.counts.hits += hits.length;
    this.counts.cpuComputed += onCpu.length;
    for (const e of brought) {
      if (arrived.has(e)) this.counts.prefetchUsed++;
      else this.counts.demandFetches++;
    }

    // Hits first (the replay marks them used before anything enters), computed from their slots.
    for (const e of hits) {
      cache.use(e);
      this.memory.computeFrom(l, e, slots.get(e)!, work);
    }
    // Then the brought-in experts, ascending: each into the slot of the expert it evicts.
    for (const e of brought) {
      const before = [...cache.resident];
      cache.use(e);
      const evicted = before.filter((r) => !cache.has(r));
      const arrival = arrived.get(e);
      if (arrival) {
        arrived.delete(e);
        this.memory.await(arrival.transfer);
      }
      if (cache.has(e)) {
        let slot: Block;
        if (evicted.length > 0) {
          slot = slots.get(evicted[0]!)!;
          slots.delete(evicted[0]!);
        } else {
          const free = this.freeSlots[l]!.pop();
          if (!free) throw new Error(`layer ${l}: expert ${e} entered a full cache without evicting`);
          slot = free;
        }
        if (arrival) {
          // The prefetch buffer becomes the slot; the old slot becomes a prefetch buffer.
          slots.set(e, arrival.block);
          this.pool.push(slot);
        } else {
          this.memory.copyNow(l, e, slot, "demand");
          slots.set(e, slot);
        }
        this.memory.computeFrom(l, e, slots.get(e)!, work);
      } else if (arrival) {
        this.memory.computeFrom(l, e, arrival.block, work);
        this.pool.push(arrival.block);
      } else this.computeFromStaging(l, e, "demand", work);
    }
    // Missed experts computed from their host copies, not cached.
    for (const e of onCpu) work.compute(e, this.host[l]![e]!);
    // The rest of the prefetch, into the buffers this layer's arrivals freed.
    this.issuePrefetch(l, missesOnCpu, true);
  }

  /**
   * Copies the guesses for layer l + distance that are neither cached there nor on their way into free
   * prefetch buffers. Called twice per layer: before its experts run, as many as fit (the copies
   * overlap this layer's compute), and after, the rest (`all`: a buffer must be free by then).
   */
  private issuePrefetch(l: number, missesOnCpu: boolean, all: boolean): void {
    const target = l + this.distance;
    const guesses = this.guessed[target];
    if (target >= this.model.numLayers || missesOnCpu || !guesses) return;
    const targetCache = this.caches[target]!;
    const incoming = this.incoming[target]!;
    for (const e of guesses) {
      if (targetCache.has(e) || incoming.has(e)) continue;
      const block = this.pool.pop();
      if (!block && !all) return;
      if (!block) throw new Error(`layer ${l}: no free prefetch buffer for layer ${target} expert ${e}`);
      incoming.set(e, { block, transfer: this.memory.copyIn(target, e, block, "prefetch") });
      this.counts.prefetches++;
    }
  }
}
