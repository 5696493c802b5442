/**
 * An engine's steps totalled: each distinct step is scheduled once (engines/step-schedule.ts) and
 * multiplied by its count; wall time is charged to terms along each step's critical path. The
 * simulator replays the whole run (simulator/replay-engine.ts) and checks the totals.
 */
import { type EngineOperation, type EngineStep, LANES, type Lane } from "./engine-model.js";
import { replayStep } from "./step-schedule.js";

export interface StepTime {
  readonly seconds: number;
  /** Wall seconds charged per term (sums to `seconds`). */
  readonly termSeconds: Readonly<Record<string, number>>;
  readonly laneSeconds: Readonly<Record<Lane, number>>;
}

export function emptyLaneSeconds(): Record<Lane, number> {
  return Object.fromEntries(LANES.map((l) => [l, 0])) as Record<Lane, number>;
}

/**
 * The longest path through the step (chain order plus `after` edges), ignoring lane sharing: its
 * length and the operations on it. Throws on an `after` naming no operation, or on a cycle.
 */
export function longestPath(step: EngineStep): { seconds: number; path: EngineOperation[] } {
  const byId = new Map<string, { chain: number; index: number }>();
  step.chains.forEach((chain, c) =>
    chain.forEach((o, i) => {
      if (o.id !== undefined) byId.set(o.id, { chain: c, index: i });
    }),
  );
  const end = step.chains.map((chain) => new Array<number | undefined>(chain.length).fill(undefined));
  const prev = step.chains.map((chain) => new Array<[number, number] | undefined>(chain.length).fill(undefined));
  const visiting = new Set<string>();
  const finish = (c: number, i: number): number => {
    const known = end[c]![i];
    if (known !== undefined) return known;
    const key = `${c}/${i}`;
    if (visiting.has(key)) throw new Error(`step "${step.label}": its operations wait for each other in a cycle`);
    visiting.add(key);
    const o = step.chains[c]![i]!;
    let start = 0;
    if (i > 0) {
      start = finish(c, i - 1);
      prev[c]![i] = [c, i - 1];
    }
    if (o.after !== undefined) {
      const dep = byId.get(o.after);
      if (!dep) throw new Error(`step "${step.label}": operation "${o.name}" waits for unknown id "${o.after}"`);
      const depEnd = finish(dep.chain, dep.index);
      if (depEnd > start) {
        start = depEnd;
        prev[c]![i] = [dep.chain, dep.index];
      }
    }
    visiting.delete(key);
    end[c]![i] = start + o.seconds;
    return start + o.seconds;
  };
  let seconds = 0;
  let last: [number, number] | undefined;
  step.chains.forEach((chain, c) => {
    if (chain.length === 0) return;
    const e = finish(c, chain.length - 1);
    if (e > seconds) {
      seconds = e;
      last = [c, chain.length - 1];
    }
  });
  const path: EngineOperation[] = [];
  for (let at = last; at; at = prev[at[0]]![at[1]]) path.unshift(step.chains[at[0]]![at[1]]!);
  return { seconds, path };
}

/**
 * One execution of `step`: its operations scheduled event by event (engines/step-schedule.ts), its wall
 * time charged to the terms of the operations on its critical path (idle gaps on the path, where an
 * operation waited for a lane, are charged to the operation that waited).
 */
export function stepTime(step: EngineStep): StepTime {
  const laneSeconds = emptyLaneSeconds();
  for (const chain of step.chains) for (const op of chain) laneSeconds[op.lane] += op.seconds;
  const replay = replayStep(step);
  const termSeconds: Record<string, number> = {};
  const pathSeconds = replay.criticalPath.reduce((a, o) => a + o.seconds, 0);
  const scale = pathSeconds > 0 ? replay.seconds / pathSeconds : 0;
  for (const op of replay.criticalPath) termSeconds[op.term] = (termSeconds[op.term] ?? 0) + op.seconds * scale;
  return { seconds: replay.seconds, termSeconds, laneSeconds };
}

/**
 * A lower bound of one execution of `step` without scheduling it: the longer of its longest path
 * (chain order and `after` waits) and its busiest lane.
 */
export function stepLowerBoundSeconds(step: EngineStep): number {
  const laneSeconds = emptyLaneSeconds();
  for (const chain of step.chains) for (const op of chain) laneSeconds[op.lane] += op.seconds;
  return Math.max(longestPath(step).seconds, ...LANES.map((l) => laneSeconds[l]));
}

export interface StepsTotal {
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly termSeconds: Readonly<Record<string, number>>;
  readonly laneSeconds: Readonly<Record<Lane, number>>;
}

/** Every step times its count, by phase, with terms and lanes summed over the run. */
export function totalSteps(steps: readonly EngineStep[]): StepsTotal {
  let prefillSeconds = 0;
  let decodeSeconds = 0;
  const termSeconds: Record<string, number> = {};
  const laneSeconds = emptyLaneSeconds();
  for (const step of steps) {
    const t = stepTime(step);
    if (step.phase === "prefill") prefillSeconds += t.seconds * step.count;
    else decodeSeconds += t.seconds * step.count;
    for (const [term, s] of Object.entries(t.termSeconds))
      termSeconds[term] = (termSeconds[term] ?? 0) + s * step.count;
    for (const lane of LANES) laneSeconds[lane] += t.laneSeconds[lane] * step.count;
  }
  return { prefillSeconds, decodeSeconds, termSeconds, laneSeconds };
}

/** The term with the most wall seconds. */
export function largestTerm(termSeconds: Readonly<Record<string, number>>): string {
  let best = "";
  let bestSeconds = -1;
  for (const [term, s] of Object.entries(termSeconds)) {
    if (s > bestSeconds) {
      best = term;
      bestSeconds = s;
    }
  }
  return best;
}

/** An operation priced at `seconds` (helper for engine models). */
export function op(
  name: string,
  lane: Lane,
  seconds: number,
  term: string,
  source: string,
  amounts: { bytes?: number; flops?: number; launches?: number } = {},
): EngineOperation {
  const o = { name, lane, seconds, bytes: amounts.bytes ?? 0, flops: amounts.flops ?? 0, term, source };
  return amounts.launches ? { ...o, launches: amounts.launches } : o;
}
