/**
 * Splits a model's layers into contiguous pipeline stages balanced by cost: the split whose most costly
 * stage costs least (a stage's cost depends on its role, first, middle or last, and its layer count).
 * Among splits of equal cost, the one with the most even layer counts wins, then the earliest.
 */
import { type StageRole, stageRole } from "./stage-model.js";

/** Layer counts per stage, first stage first; they sum to `layers`. */
export function splitLayers(
  layers: number,
  stages: number,
  cost: (role: StageRole, count: number) => number,
): number[] {
  if (stages < 1 || stages > layers) throw new Error(`cannot split ${layers} layers into ${stages} stages`);
  // best[s][l]: the least possible largest cost of the first s + 1 stages holding the first l layers.
  const best: number[][] = [];
  const spread: number[][] = [];
  const choice: number[][] = [];
  const cached = new Map<string, number>();
  const costOf = (s: number, count: number) => {
    const role = stageRole(s, stages);
    const key = `${role}:${count}`;
    let c = cached.get(key);
    if (c === undefined) {
      c = cost(role, count);
      cached.set(key, c);
    }
    return c;
  };
  const even = layers / stages;
  for (let s = 0; s < stages; s++) {
    best.push(new Array<number>(layers + 1).fill(Number.POSITIVE_INFINITY));
    spread.push(new Array<number>(layers + 1).fill(Number.POSITIVE_INFINITY));
    choice.push(new Array<number>(layers + 1).fill(0));
    const lastStage = s === stages - 1;
    for (let l = s + 1; l <= layers - (stages - 1 - s); l++) {
      if (lastStage && l !== layers) continue;
      for (let count = 1; count <= l - s; count++) {
        const before = s === 0 ? (count === l ? 0 : Number.POSITIVE_INFINITY) : best[s - 1]![l - count]!;
        if (before === Number.POSITIVE_INFINITY) continue;
        const worst = Math.max(before, costOf(s, count));
        const dev = (s === 0 ? 0 : spread[s - 1]![l - count]!) + (count - even) ** 2;
        if (worst < best[s]![l]! || (worst === best[s]![l]! && dev < spread[s]![l]!)) {
          best[s]![l] = worst;
          spread[s]![l] = dev;
          choice[s]![l] = count;
        }
      }
    }
  }
  const counts: number[] = [];
  let l = layers;
  for (let s = stages - 1; s >= 0; s--) {
    const count = choice[s]![l]!;
    counts.unshift(count);
    l -= count;
  }
  return counts;
}
