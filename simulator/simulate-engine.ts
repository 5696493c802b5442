/**
 * `spillway simulate` of a plan made for another engine (`plan --engine E`): E's steps rebuilt from the
 * plan's policy and knobs and replayed event by event (simulator/replay-engine.ts), checked against the
 * plan's prediction: time, traffic per link and memory. Pure: the same plan and profile give the same result.
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import { LINKS, type Link } from "../core/links.js";
import type { Plan } from "../core/plan.js";
import type { Tier } from "../core/tiers.js";
import type { Lane } from "../engines/engine-model.js";
import type { EngineName } from "../engines/engine-names.js";
import { predictPlanOnEngine } from "../engines/plan-for-engine.js";
import { replayEngine } from "./replay-engine.js";

export interface EngineStepSummary {
  readonly phase: "prefill" | "decode";
  readonly label: string;
  readonly count: number;
  /** One execution, replayed. */
  readonly seconds: number;
  /** The lanes of the operations on the step's critical path, in order, without repeats in a row. */
  readonly criticalLanes: readonly Lane[];
}

export interface EngineTimelineEntry {
  readonly name: string;
  readonly lane: Lane;
  readonly term: string;
  readonly startSeconds: number;
  readonly endSeconds: number;
}

export interface EngineSimulation {
  readonly engine: EngineName;
  readonly model: string;
  readonly hardware: string;
  readonly throughputTokensPerSecond: number;
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly totalSeconds: number;
  /**
   * The prediction the replay is checked against: the plan file's `predicted` when the plan was made for
   * this engine, else this engine's model of the plan's policy (`predictedBy` says which).
   */
  readonly predictedThroughputTokensPerSecond: number;
  /** "plan": the plan's own prediction; "engine": the engine's model, the plan being made for another engine. */
  readonly predictedBy: "plan" | "engine";
  /** (simulated - predicted) / predicted. */
  readonly relativeError: number;
  readonly bytes: Readonly<Record<Link, number>>;
  readonly predictedBytes: Readonly<Record<Link, number>>;
  readonly laneSeconds: Readonly<Record<Lane, number>>;
  readonly peakBytes: Readonly<Record<Tier, number>>;
  readonly capacityBytes: Readonly<Record<Tier, number>>;
  readonly feasible: boolean;
  readonly infeasibleReasons: readonly string[];
  /** Distinct steps, longest total time first. */
  readonly steps: readonly EngineStepSummary[];
  readonly stepsReplayed: number;
  /** With `timeline`: every operation of the decode step that costs the most time in all. */
  readonly timeline?: { readonly label: string; readonly operations: readonly EngineTimelineEntry[] };
}

function collapse<T>(xs: readonly T[]): T[] {
  return xs.filter((x, i) => i === 0 || xs[i - 1] !== x);
}

/** `plan` replayed on `engine` (default: the plan's own engine), with its knobs when it is the plan's engine. */
export function simulateEngine(
  plan: Plan,
  hardware: HardwareProfile,
  options: { readonly engine?: EngineName; readonly timeline?: boolean } = {},
): EngineSimulation {
  const engine = options.engine ?? plan.engine ?? "spillway";
  const prediction = predictPlanOnEngine(plan, engine, hardware);
  const replay = replayEngine(prediction.steps);
  const sequences =
    prediction.totalSeconds > 0
      ? (prediction.throughputTokensPerSecond * prediction.totalSeconds) / plan.workload.genLen
      : 0;
  const throughput = replay.totalSeconds > 0 ? (sequences * plan.workload.genLen) / replay.totalSeconds : 0;
  const sameEngine = engine === (plan.engine ?? "spillway");
  const predictedThroughput = sameEngine
    ? plan.predicted.throughputTokensPerSecond
    : prediction.throughputTokensPerSecond;
  const predictedBytes = sameEngine ? plan.predicted.bytes : replay.bytes;
  const replays = prediction.steps.map((step, i) => ({ step, replay: replay.stepReplays[i]! }));
  const steps = replays
    .map(({ step, replay: r }) => ({
      phase: step.phase,
      label: step.label,
      count: step.count,
      seconds: r.seconds,
      criticalLanes: collapse(r.criticalPath.map((o) => o.lane)),
    }))
    .sort((a, b) => b.seconds * b.count - a.seconds * a.count);
  let timeline: EngineSimulation["timeline"];
  if (options.timeline) {
    const decode = replays.filter(({ step }) => step.phase === "decode");
    const heaviest = (decode.length ? decode : replays).reduce<(typeof replays)[number] | undefined>(
      (a, b) => (!a || b.replay.seconds * b.step.count > a.replay.seconds * a.step.count ? b : a),
      undefined,
    );
    if (heaviest)
      timeline = {
        label: heaviest.step.label,
        operations: heaviest.step.chains
          .flatMap((chain, c) =>
            chain.map((o, i) => ({
              name: o.name,
              lane: o.lane,
              term: o.term,
              startSeconds: heaviest.replay.timings[c]![i]!.start,
              endSeconds: heaviest.replay.timings[c]![i]!.end,
            })),
          )
          .sort((a, b) => a.startSeconds - b.startSeconds || a.endSeconds - b.endSeconds),
      };
  }
  return {
    engine,
    model: plan.model,
    hardware: hardware.name,
    throughputTokensPerSecond: throughput,
    prefillSeconds: replay.prefillSeconds,
    decodeSeconds: replay.decodeSeconds,
    totalSeconds: replay.totalSeconds,
    predictedThroughputTokensPerSecond: predictedThroughput,
    predictedBy: sameEngine ? "plan" : "engine",
    relativeError: predictedThroughput > 0 ? (throughput - predictedThroughput) / predictedThroughput : 0,
    bytes: replay.bytes,
    predictedBytes: Object.fromEntries(LINKS.map((l) => [l, predictedBytes[l]])) as Record<Link, number>,
    laneSeconds: replay.laneSeconds,
    peakBytes: prediction.peakBytes,
    capacityBytes: prediction.capacityBytes,
    feasible: prediction.feasible,
    infeasibleReasons: prediction.infeasibleReasons,
    steps,
    stepsReplayed: replay.stepsReplayed,
    ...(timeline ? { timeline } : {}),
  };
}
