/**
 * Measured runs against an engine model's predictions on a hardware profile: per run the predicted and
 * measured throughput, their ratio and the error, and over the runs the median |error|.
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import { InputError } from "../core/input-error.js";
import type { EnginePrediction } from "./engine-model.js";
import { engineModel } from "./engines.js";
import type { MeasuredRun } from "./measured-runs.js";

export interface RunScore {
  readonly run: MeasuredRun;
  readonly predictedTokensPerSecond: number;
  readonly measuredTokensPerSecond: number;
  /** predicted / measured. */
  readonly ratio: number;
  /** (predicted - measured) / measured: +0.25 predicts 25% faster than measured. */
  readonly relativeError: number;
  /** ln(predicted / measured): what calibration minimises the squares of. */
  readonly logError: number;
  /** Whether the engine model says the policy fits the profile's capacities. */
  readonly feasible: boolean;
  readonly bottleneck: string;
}

export interface RunScores {
  readonly scores: readonly RunScore[];
  /** Median of |relativeError| over the runs. */
  readonly medianAbsoluteError: number;
}

/** The engine model's prediction for `run` on `hardware`; an InputError naming the run when the engine cannot run it. */
export function predictRun(run: MeasuredRun, hardware: HardwareProfile): EnginePrediction {
  let engine;
  try {
    engine = engineModel(run.engine);
  } catch (error) {
    throw new InputError(run.source, "engine", (error as Error).message);
  }
  const reason = engine.unsupported(run.model, run.policy);
  if (reason) throw new InputError(run.source, undefined, `the ${run.engine} engine cannot run this: ${reason}`);
  return engine.predict({
    model: run.model,
    hardware,
    workload: run.workload,
    policy: run.policy,
    knobs: run.knobs,
  });
}

function scorable(run: MeasuredRun, prediction: EnginePrediction): number {
  const predicted = prediction.throughputTokensPerSecond;
  if (!(predicted > 0 && Number.isFinite(predicted)))
    throw new InputError(
      run.source,
      undefined,
      `the ${run.engine} model predicts ${predicted} tokens/s; cannot score it`,
    );
  return predicted;
}

/** The predicted throughput of `run` on `hardware`, which must be finite and positive to be scored. */
export function predictedThroughput(run: MeasuredRun, hardware: HardwareProfile): number {
  return scorable(run, predictRun(run, hardware));
}

export function scoreRun(run: MeasuredRun, hardware: HardwareProfile): RunScore {
  const prediction = predictRun(run, hardware);
  const predicted = scorable(run, prediction);
  const measured = run.measuredTokensPerSecond;
  return {
    run,
    predictedTokensPerSecond: predicted,
    measuredTokensPerSecond: measured,
    ratio: predicted / measured,
    relativeError: predicted / measured - 1,
    logError: Math.log(predicted / measured),
    feasible: prediction.feasible,
    bottleneck: prediction.bottleneck,
  };
}

/** The median of `values` (the mean of the middle two for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function scoreRuns(runs: readonly MeasuredRun[], hardware: HardwareProfile): RunScores {
  const scores = runs.map((run) => scoreRun(run, hardware));
  return { scores, medianAbsoluteError: median(scores.map((s) => Math.abs(s.relativeError))) };
}
