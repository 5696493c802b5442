/**
 * The closed form of an engine's steps: a step lasts as long as the longer of its longest chain and
 * its busiest lane (chains run side by side but share lanes); its wall time is charged to the terms of
 * whichever bounds it. The simulator replays the same steps event by event (simulator/replay-engine.ts)
 * and checks this.
 */
import { type EngineOperation, type EngineStep, LANES, type Lane } from "./engine-model.js";

export interface StepTime {
  readonly seconds: number;
  /** Wall seconds charged per term (sums to `seconds`). */
  readonly termSeconds: Readonly<Record<string, number>>;
  readonly laneSeconds: Readonly<Record<Lane, number>>;
}

const sum = (ops: readonly EngineOperation[]) => ops.reduce((a, o) => a + o.seconds, 0);

export function emptyLaneSeconds(): Record<Lane, number> {
  return Object.fromEntries(LANES.map((l) => [l, 0])) as Record<Lane, number>;
}

/** One execution of `step`. */
export function stepTime(step: EngineStep): StepTime {
  const laneSeconds = emptyLaneSeconds();
  for (const chain of step.chains) for (const op of chain) laneSeconds[op.lane] += op.seconds;
  let bounding: readonly EngineOperation[] = [];
  let seconds = 0;
  for (const chain of step.chains) {
    const s = sum(chain);
    if (s > seconds) {
      seconds = s;
      bounding = chain;
    }
  }
  for (const lane of LANES) {
    if (laneSeconds[lane] > seconds * (1 + 1e-12)) {
      seconds = laneSeconds[lane];
      bounding = step.chains.flat().filter((o) => o.lane === lane);
    }
  }
  const termSeconds: Record<string, number> = {};
  for (const op of bounding) termSeconds[op.term] = (termSeconds[op.term] ?? 0) + op.seconds;
  return { seconds, termSeconds, laneSeconds };
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
  amounts: { bytes?: number; flops?: number } = {},
): EngineOperation {
  return { name, lane, seconds, bytes: amounts.bytes ?? 0, flops: amounts.flops ?? 0, term, source };
}
