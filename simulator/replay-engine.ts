/**
 * Replays an engine model's whole run (engines/engine-model.ts): steps one after another, each replayed
 * event by event (engines/step-schedule.ts), identical steps replayed once and counted, with the traffic
 * per link and the busy time per lane, so that `simulate --engine` checks the engine's totals.
 */

import type { Link } from "../core/links.js";
import { LINKS } from "../core/links.js";
import type { EngineStep, Lane } from "../engines/engine-model.js";
import { LANES } from "../engines/engine-model.js";
import { replayStep, type StepReplay } from "../engines/step-schedule.js";

export interface EngineReplay {
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly totalSeconds: number;
  /** Busy seconds per lane over the run. */
  readonly laneSeconds: Readonly<Record<Lane, number>>;
  /** Bytes moved over each link (h2d, d2h, diskRead, diskWrite) over the run. */
  readonly bytes: Readonly<Record<Link, number>>;
  /** Distinct steps replayed (identical steps are replayed once and counted). */
  readonly stepsReplayed: number;
  /** Each step's one replay, in the order of the steps given. */
  readonly stepReplays: readonly StepReplay[];
}

/** The whole run: every step replayed once and multiplied by its count, steps one after another. */
export function replayEngine(steps: readonly EngineStep[]): EngineReplay {
  let prefillSeconds = 0;
  let decodeSeconds = 0;
  const laneSeconds = Object.fromEntries(LANES.map((l) => [l, 0])) as Record<Lane, number>;
  const bytes = Object.fromEntries(LINKS.map((l) => [l, 0])) as Record<Link, number>;
  const links = new Set<string>(LINKS);
  const stepReplays: StepReplay[] = [];
  for (const step of steps) {
    const replay = replayStep(step);
    stepReplays.push(replay);
    const seconds = replay.seconds * step.count;
    if (step.phase === "prefill") prefillSeconds += seconds;
    else decodeSeconds += seconds;
    for (const o of step.chains.flat()) {
      laneSeconds[o.lane] += o.seconds * step.count;
      if (links.has(o.lane)) bytes[o.lane as Link] += o.bytes * step.count;
    }
  }
  return {
    prefillSeconds,
    decodeSeconds,
    totalSeconds: prefillSeconds + decodeSeconds,
    laneSeconds,
    bytes,
    stepsReplayed: steps.length,
    stepReplays,
  };
}
