/**
 * One layer's GPU expert cache of a fixed number of slots: `lru` evicts the least recently used expert,
 * `lfu` the least often used (ties: the least recent), `static` keeps its initial experts and never
 * changes. It starts with the given experts (the layer's most popular: a warm cache). Experts enter on
 * use (a demand fetch, or a prefetched expert the layer used).
 */
import type { ExpertEviction } from "../core/expert-policy.js";

export class ExpertCache {
  /** Resident experts in recency order, oldest first. */
  private readonly recency: number[] = [];
  private readonly uses = new Map<number, number>();

  constructor(
    readonly slots: number,
    readonly eviction: ExpertEviction,
    initial: readonly number[] = [],
  ) {
    this.recency.push(...initial.slice(0, slots));
  }

  has(expert: number): boolean {
    return this.recency.includes(expert);
  }

  get resident(): readonly number[] {
    return this.recency;
  }

  /** Records a use of an expert (resident or just brought in), inserting it and evicting if needed. */
  use(expert: number): void {
    this.uses.set(expert, (this.uses.get(expert) ?? 0) + 1);
    if (this.eviction === "static" || this.slots === 0) return;
    const at = this.recency.indexOf(expert);
    if (at >= 0) {
      this.recency.splice(at, 1);
      this.recency.push(expert);
      return;
    }
    if (this.recency.length >= this.slots) this.recency.splice(this.victim(), 1);
    this.recency.push(expert);
  }

  private victim(): number {
    if (this.eviction === "lru") return 0;
    let best = 0;
    for (let i = 1; i < this.recency.length; i++) {
      if ((this.uses.get(this.recency[i]!) ?? 0) < (this.uses.get(this.recency[best]!) ?? 0)) best = i;
    }
    return best;
  }
}
