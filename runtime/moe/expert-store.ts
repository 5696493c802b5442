/**
 * Where a Mixtral layer's routed experts live and how they reach the compute: every expert's home copy
 * in host memory (stored at policy.bits, quantized-weights.ts: w1|w3|w2, exactly the planner's bytes per
 * expert; shared memory so the copy engine can read it), and per layer an
 * expert cache of `cacheSize` slots in the device arena whose policy is simulator/expert-cache.ts's
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
 * - then the prefetch for layer l + distance is issued into free prefetch buffers (none when this
 *   layer's misses went to the CPU); unused arrivals are wasted.
 * Prefill streams every non-resident expert through the staging block and leaves the caches as they
 * were warmed (the replay starts decode from the warm caches).
 *
 * Copies go through the TransferEngine's h2d stream: with worker threads a prefetch proceeds while the
 * main thread computes, and a demand fetch is waited for at once.
 */
import type { ExpertPolicy } from "../../core/expert-policy.js";
import type { ModelSpec } from "../../core/model-spec.js";
import type { DecodeRouting } from "../../simulator/decode-routing.js";
import { ExpertCache } from "../../simulator/expert-cache.js";
import { batchExperts, coOccurrence, speculativeGuesses } from "../../simulator/expert-predictor.js";
import type { DeviceArena, DeviceBlock } from "../device-arena.js";
import type { TransferEngine, TransferId } from "../transfer-engine.js";
import { prefetchBufferCount } from "./device-budget.js";
import type { ExpertExecutor, MoePhase } from "./mixtral-model.js";
import { expertStoredBytes } from "./quantized-weights.js";

export type ExpertTransferKind = "warm" | "prefill" | "demand" | "prefetch";

export interface ExpertTransferMeta {
  readonly kind: ExpertTransferKind;
  readonly layer: number;
  readonly expert: number;
}

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
}

interface Arrival {
  readonly block: DeviceBlock;
  readonly transfer: TransferId;
}

export class ExpertStore implements ExpertExecutor {
  readonly counts: ExpertCounts = {
    lookups: 0,
    hits: 0,
    demandFetches: 0,
    prefetches: 0,
    prefetchUsed: 0,
    wastedPrefetches: 0,
    cpuComputed: 0,
    prefillFetches: 0,
  };
  private readonly caches: ExpertCache[];
  private readonly slotOf: Map<number, DeviceBlock>[];
  private readonly freeSlots: DeviceBlock[][];
  private readonly staging: DeviceBlock | undefined;
  private readonly pool: DeviceBlock[] = [];
  private readonly incoming: Map<number, Arrival>[];
  /** One expert's stored bytes: a slot, a buffer and a host copy each hold exactly this. */
  private readonly expertBytes: number;
  private readonly distance: number;
  private readonly predictor: Float64Array[] | undefined;
  private step = 0;

  /**
   * @param host every expert's stored home copy (expertStoredBytes bytes), [layer][expert], over shared memory.
   * @param initial per layer, the experts to warm the cache with (most popular first).
   * @param oracle the reference run's decode routing: pre-gated prefetch reads the next layer's experts
   *   from it, speculative prefetch builds its co-occurrence table from it. Needed only with prefetch.
   */
  constructor(
    readonly model: ModelSpec,
    readonly policy: ExpertPolicy,
    readonly batch: number,
    private readonly arena: DeviceArena,
    private readonly host: readonly (readonly Uint16Array[])[],
    private readonly transfers: TransferEngine<ExpertTransferMeta>,
    initial: readonly (readonly number[])[],
    private readonly oracle?: DecodeRouting,
  ) {
    const moe = model.moe!;
    const L = model.numLayers;
    const bytes = expertStoredBytes(model, policy.bits);
    this.expertBytes = bytes;
    if (host.some((layer) => layer.some((copy) => copy.byteLength !== bytes)))
      throw new Error(`every expert's home copy must hold ${bytes} bytes (${policy.bits}-bit experts)`);
    if (policy.cacheSize > moe.numExperts)
      throw new Error(`cacheSize ${policy.cacheSize} is more than the ${moe.numExperts} experts per layer`);
    this.caches = Array.from(
      { length: L },
      (_, l) => new ExpertCache(policy.cacheSize, policy.eviction, initial[l] ?? []),
    );
    this.slotOf = Array.from({ length: L }, () => new Map<number, DeviceBlock>());
    this.freeSlots = Array.from({ length: L }, () => []);
    for (let l = 0; l < L; l++) {
      for (let s = 0; s < policy.cacheSize; s++)
        this.freeSlots[l]!.push(arena.allocate(bytes, `layer ${l} expert slot ${s}`));
      for (const e of this.caches[l]!.resident) {
        const block = this.freeSlots[l]!.pop()!;
        this.transfers.wait(this.copyIn(l, e, block, "warm"));
        this.slotOf[l]!.set(e, block);
      }
    }
    this.staging = policy.cacheSize < moe.numExperts ? arena.allocate(bytes, "expert staging") : undefined;
    for (let i = 0; i < prefetchBufferCount(model, policy, batch); i++)
      this.pool.push(arena.allocate(bytes, `expert prefetch buffer ${i}`));
    this.incoming = Array.from({ length: L }, () => new Map<number, Arrival>());
    this.distance = policy.pregated ? 1 : policy.prefetchLayers;
    const prefetching = policy.pregated || policy.prefetchExperts > 0;
    if (prefetching && !oracle)
      throw new Error(
        "prefetch needs the reference routing (pre-gated: the next layer's experts; speculative: co-occurrence counts)",
      );
    this.predictor = !policy.pregated && policy.prefetchExperts > 0 ? coOccurrence(oracle!, this.distance) : undefined;
  }

  /** Experts resident in layer l's cache, in the policy's order. */
  resident(layer: number): readonly number[] {
    return this.caches[layer]!.resident;
  }

  /** Sets the decode step (0-based) whose layers run next: the pre-gated oracle reads the routing of this step. */
  beginDecodeStep(step: number): void {
    this.step = step;
  }

  private copyIn(layer: number, expert: number, block: DeviceBlock, kind: ExpertTransferKind): TransferId {
    const src = this.host[layer]![expert]!;
    const dst = this.arena.uint8(block, src.byteLength);
    return this.transfers.submit(
      "h2d",
      [{ type: "copy", src: new Uint8Array(src.buffer, src.byteOffset, src.byteLength), dst }],
      [],
      { kind, layer, expert },
    );
  }

  private view(block: DeviceBlock): Uint16Array {
    return this.arena.uint16(block, this.expertBytes / 2);
  }

  private fetchToStaging(layer: number, expert: number, kind: ExpertTransferKind): Uint16Array {
    if (!this.staging) throw new Error(`layer ${layer}: expert ${expert} is not resident but every expert should be`);
    this.transfers.wait(this.copyIn(layer, expert, this.staging, kind));
    return this.view(this.staging);
  }

  runExperts(
    layer: number,
    phase: MoePhase,
    needed: readonly number[],
    compute: (expert: number, weights: Uint16Array) => void,
  ): void {
    if (phase === "prefill") {
      for (const e of needed) {
        const slot = this.slotOf[layer]!.get(e);
        if (slot) compute(e, this.view(slot));
        else {
          this.counts.prefillFetches++;
          compute(e, this.fetchToStaging(layer, e, "prefill"));
        }
      }
      return;
    }
    this.decodeLayer(layer, needed, compute);
  }

  private decodeLayer(
    l: number,
    need: readonly number[],
    compute: (expert: number, weights: Uint16Array) => void,
  ): void {
    const x = this.policy;
    const moe = this.model.moe!;
    const cache = this.caches[l]!;
    const slots = this.slotOf[l]!;
    const arrived = this.incoming[l]!;
    const tokensPerExpert = (this.batch * moe.expertsPerToken) / need.length;
    const missesOnCpu = x.compute === "cpu" || (x.compute === "auto" && tokensPerExpert <= x.cpuThresholdTokens);
    const atStart = new Set(cache.resident);
    const hits = need.filter((e) => atStart.has(e));
    const brought = need.filter((e) => !atStart.has(e) && (arrived.has(e) || !missesOnCpu)).sort((a, b) => a - b);
    const onCpu = need.filter((e) => !atStart.has(e) && !arrived.has(e) && missesOnCpu);
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
      compute(e, this.view(slots.get(e)!));
    }
    // Then the brought-in experts, ascending: each into the slot of the expert it evicts.
    for (const e of brought) {
      const before = [...cache.resident];
      cache.use(e);
      const evicted = before.filter((r) => !cache.has(r));
      const arrival = arrived.get(e);
      if (arrival) {
        arrived.delete(e);
        this.transfers.wait(arrival.transfer);
      }
      if (cache.has(e)) {
        let slot: DeviceBlock;
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
          this.transfers.wait(this.copyIn(l, e, slot, "demand"));
          slots.set(e, slot);
        }
        compute(e, this.view(slots.get(e)!));
      } else if (arrival) {
        compute(e, this.view(arrival.block));
        this.pool.push(arrival.block);
      } else compute(e, this.fetchToStaging(l, e, "demand"));
    }
    // Missed experts computed from their host copies, not cached.
    for (const e of onCpu) compute(e, this.host[l]![e]!);
    // Prefetched experts nobody used.
    for (const [, arrival] of arrived) {
      this.transfers.wait(arrival.transfer);
      this.pool.push(arrival.block);
      this.counts.wastedPrefetches++;
    }
    arrived.clear();
    this.issuePrefetch(l, need, missesOnCpu);
  }

  private issuePrefetch(l: number, need: readonly number[], missesOnCpu: boolean): void {
    const x = this.policy;
    const target = l + this.distance;
    if (target >= this.model.numLayers || missesOnCpu) return;
    let guesses: number[];
    if (x.pregated) guesses = batchExperts(this.oracle!, this.batch, this.step, target);
    else if (this.predictor)
      guesses = speculativeGuesses(this.predictor[l]!, this.model.moe!.numExperts, need, x.prefetchExperts);
    else return;
    const targetCache = this.caches[target]!;
    const incoming = this.incoming[target]!;
    for (const e of guesses) {
      if (targetCache.has(e) || incoming.has(e)) continue;
      const block = this.pool.pop();
      if (!block) throw new Error(`layer ${l}: no free prefetch buffer for layer ${target} expert ${e}`);
      incoming.set(e, { block, transfer: this.copyIn(target, e, block, "prefetch") });
      this.counts.prefetches++;
    }
  }
}
