/**
 * One step of an engine model executed event by event: an operation becomes ready when the operation
 * before it in its chain and the one it waits `after` have ended; each lane runs one operation at a time
 * in the order they became ready (ties by chain, then position: deterministic); the step ends when its
 * last operation ends. Lanes are exclusive (one copy engine per direction, one main host thread, one
 * drive), so an operation can wait for its lane even when its chain is free. The critical path is traced
 * back from the last operation through whichever constraint set each start.
 */

import { MinHeap } from "../simulator/event-queue.js";
import type { EngineOperation, EngineStep, Lane } from "./engine-model.js";
import { LANES } from "./engine-model.js";

export interface StepReplay {
  readonly seconds: number;
  /** Start and end of every operation, chain by chain, relative to the step's start. */
  readonly timings: readonly (readonly { start: number; end: number }[])[];
  /** The operations whose ends set the step's length, first to last (chain, `after` or lane waits). */
  readonly criticalPath: readonly EngineOperation[];
}

interface Ready {
  readonly at: number;
  readonly chain: number;
  readonly index: number;
}

/** One execution of `step` from time 0. */
export function replayStep(step: EngineStep): StepReplay {
  const ids = new Map<string, [number, number]>();
  step.chains.forEach((chain, c) => chain.forEach((o, i) => o.id !== undefined && ids.set(o.id, [c, i])));
  const timings = step.chains.map((chain) => chain.map(() => ({ start: Number.NaN, end: Number.NaN })));
  const waiting = new Map<string, Ready[]>();
  const laneFree = new Map<Lane, number>(LANES.map((l) => [l, 0]));
  const laneLast = new Map<Lane, [number, number]>();
  const setBy = step.chains.map((chain) => chain.map((): [number, number] | undefined => undefined));
  const queue = new MinHeap<Ready>(
    (a, b) => a.at < b.at || (a.at === b.at && (a.chain < b.chain || (a.chain === b.chain && a.index < b.index))),
  );
  const opAt = (r: { chain: number; index: number }): EngineOperation => step.chains[r.chain]![r.index]!;
  const release = (chain: number, index: number, at: number) => {
    if (index >= step.chains[chain]!.length) return;
    const o = opAt({ chain, index });
    if (o.after !== undefined) {
      const dep = ids.get(o.after);
      if (!dep) throw new Error(`step "${step.label}": operation "${o.name}" waits for unknown id "${o.after}"`);
      const t = timings[dep[0]]![dep[1]]!;
      if (Number.isNaN(t.end)) {
        const list = waiting.get(o.after) ?? [];
        list.push({ at, chain, index });
        waiting.set(o.after, list);
        return;
      }
      at = Math.max(at, t.end);
    }
    queue.push({ at, chain, index });
  };
  step.chains.forEach((_, c) => release(c, 0, 0));
  let seconds = 0;
  let last: [number, number] | undefined;
  let done = 0;
  const total = step.chains.reduce((a, c) => a + c.length, 0);
  for (let r = queue.pop(); r; r = queue.pop()) {
    const o = opAt(r);
    const start = Math.max(r.at, laneFree.get(o.lane)!);
    const end = start + o.seconds;
    // What set the start: the lane's previous operation, else the `after` dependency, else the chain.
    const dep = o.after !== undefined ? ids.get(o.after) : undefined;
    if (start > r.at && laneLast.has(o.lane)) setBy[r.chain]![r.index] = laneLast.get(o.lane);
    else if (
      dep &&
      timings[dep[0]]![dep[1]]!.end === start &&
      (r.index === 0 || timings[r.chain]![r.index - 1]!.end < start)
    )
      setBy[r.chain]![r.index] = dep;
    else if (r.index > 0) setBy[r.chain]![r.index] = [r.chain, r.index - 1];
    laneFree.set(o.lane, end);
    laneLast.set(o.lane, [r.chain, r.index]);
    timings[r.chain]![r.index] = { start, end };
    if (end > seconds || last === undefined) {
      seconds = Math.max(seconds, end);
      last = [r.chain, r.index];
    }
    done++;
    release(r.chain, r.index + 1, end);
    if (o.id !== undefined) {
      for (const w of waiting.get(o.id) ?? []) queue.push({ ...w, at: Math.max(w.at, end) });
      waiting.delete(o.id);
    }
  }
  if (done !== total) throw new Error(`step "${step.label}": operations wait for each other in a cycle`);
  const criticalPath: EngineOperation[] = [];
  for (let at = last; at; at = setBy[at[0]]![at[1]]) criticalPath.unshift(opAt({ chain: at[0], index: at[1] }));
  return { seconds, timings, criticalPath };
}
