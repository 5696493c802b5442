/**
 * Calibration: fit a hardware profile's kernel-class rates to measured runs.
 *
 * The parameters fitted (engines/calibration-parameters.ts) are the scalar rates the runs' predictions
 * use (EnginePrediction.rates, mapped back to the profile Quantity each is read from:
 * RATE_QUANTITY_PATHS) and, where the profile has one, the GEMM-against-rows curve (gpu.matmulCurve:
 * its seconds per weight at its fewest and at its most rows), each only if at least one run's
 * prediction moves with it inside the bounds. Each is searched in log space within
 * [prior / bounds, prior x bounds] (default 4) to minimise
 *
 *   sum over runs of ln(predicted / measured)^2 + priorWeight x sum over parameters of ln(fitted / prior)^2
 *
 * The second (prior) term is what a rate with little evidence answers to: a rate that no run depends
 * on much stays near its measured (or datasheet) value instead of absorbing the runs' noise up to a
 * bound, and rates the runs cannot tell apart (only their combination moves a prediction) share the
 * change instead of drifting apart; a rate that decides a run's time moves almost all the way the runs
 * ask (a run whose time is all in one rate weighs 1/priorWeight times its prior). The minimum is found by a projected
 * Levenberg-Marquardt iteration (engines/levenberg-marquardt.ts): deterministic (no randomness, a
 * fixed cap on iterations, the same answer for the same inputs) and a pure function of its arguments.
 * The fitted values are written into each Quantity's `fitted` field (and the curve's `fitted`
 * samples), which the cost models prefer (core/hardware-profile.ts effective(), matmulCurveSamples(),
 * engines/kernel-rates.ts), beside the datasheet and measured values, with a source naming the runs.
 *
 * Leave-one-out: for each run, the parameters are chosen and fitted from the other runs alone (a
 * parameter only the held-out run moves with stays at its prior) and the run is predicted with them;
 * its error then, against its error with the prior profile, says whether the calibration carries over
 * to runs it has not seen.
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import {
  type CalibrationParameterName,
  curveParameterUses,
  parameterPath,
  withFittedRates,
} from "./calibration-parameters.js";
import { type RateUse, rateNameOf, resolveRates } from "./kernel-rates.js";
import { levenbergMarquardt, sumSquares } from "./levenberg-marquardt.js";
import type { MeasuredRun } from "./measured-runs.js";
import { median, predictedThroughput, predictRun } from "./score-runs.js";

/** Each rate stays within [prior / DEFAULT_BOUNDS, prior x DEFAULT_BOUNDS] unless told otherwise. */
export const DEFAULT_BOUNDS = 4;
/** Levenberg-Marquardt iterations at most (each costs one prediction per run per fitted rate, plus trials). */
export const DEFAULT_ITERATIONS = 40;
/**
 * Weight of a parameter's squared log distance from its prior against a run's squared log error, as a
 * ratio of variances: runs that scatter ~10% between repeats (sigma 0.1 in ln) against a prior trusted
 * to within a factor of e (sigma 1 in ln; the default x4 bounds are ~1.4 sigma): 0.1^2 / 1^2 = 0.01.
 * So a rate that makes up less than ~10% of every run's time (whose effect the runs' noise hides)
 * stays near its prior, and one that decides a run's time moves ~99% of the way that run asks.
 */
export const DEFAULT_PRIOR_WEIGHT = 0.01;
/** A rate whose every run's ln(prediction) moves less than this across its bounds is not fitted. */
const SENSITIVITY = 1e-9;

export interface CalibrationOptions {
  /** Each rate stays within [prior / bounds, prior x bounds]; > 1 (default DEFAULT_BOUNDS). */
  readonly bounds?: number;
  /** Iterations at most (default DEFAULT_ITERATIONS). */
  readonly iterations?: number;
  /** Weight of each parameter's ln(fitted / prior)^2 in the objective; >= 0 (default DEFAULT_PRIOR_WEIGHT). */
  readonly priorWeight?: number;
  /** Whether the GEMM-against-rows curve is among the candidates (default true; false: scalar rates only). */
  readonly fitMatmulCurve?: boolean;
}

export interface FittedRate {
  readonly name: CalibrationParameterName;
  /** The rate in words, as predictions list it. */
  readonly label: string;
  /** Where in the profile the fitted value is written, e.g. "hostToDevice.pinnedBytesPerSecond" or "gpu.matmulCurve.fitted". */
  readonly path: string;
  /** The value before fitting and where it came from. */
  readonly prior: RateUse;
  readonly fitted: number;
  readonly lower: number;
  readonly upper: number;
  /** Whether the fit stopped at a bound (the runs ask for more than the bounds allow). */
  readonly atBound: boolean;
}

export interface UnfittedRate {
  readonly name: CalibrationParameterName;
  readonly label: string;
  readonly reason: string;
}

export interface ProfileFit {
  /** The prior profile with each fitted rate's `fitted` value written. */
  readonly profile: HardwareProfile;
  readonly rates: readonly FittedRate[];
  /** Rates the predictions list but that were left alone, and why. */
  readonly unfitted: readonly UnfittedRate[];
  /** Sum over the runs of ln(predicted / measured)^2 with the prior profile and with the fitted one. */
  readonly sumSquaredLogErrorBefore: number;
  readonly sumSquaredLogErrorAfter: number;
  /** The prior term's weight, and the term at the fit: priorWeight x sum of ln(fitted / prior)^2. */
  readonly priorWeight: number;
  readonly priorTermAfter: number;
  readonly iterations: number;
}

export interface LeaveOneOutRun {
  readonly source: string;
  readonly measuredTokensPerSecond: number;
  /** (predicted - measured) / measured with the prior profile. */
  readonly errorBefore: number;
  /** ... with the rates fitted to the other runs. */
  readonly errorAfter: number;
}

export interface LeaveOneOut {
  readonly runs: readonly LeaveOneOutRun[];
  /** Median over the runs of |errorBefore| and |errorAfter|. */
  readonly medianAbsoluteErrorBefore: number;
  readonly medianAbsoluteErrorAfter: number;
}

export interface Calibration {
  readonly fit: ProfileFit;
  readonly leaveOneOut: LeaveOneOut;
}

export { withFittedRates };

export function fittedSource(runs: readonly MeasuredRun[]): string {
  return `fitted by spillway calibrate to ${runs.length} runs: ${runs.map((r) => r.source).join(", ")}`;
}

function checkOptions(bounds: number, priorWeight: number): void {
  if (!(Number.isFinite(bounds) && bounds > 1))
    throw new RangeError(`calibration bounds must be a number > 1, got ${bounds}`);
  if (!(Number.isFinite(priorWeight) && priorWeight >= 0))
    throw new RangeError(`calibration prior weight must be a number >= 0, got ${priorWeight}`);
}

/**
 * The candidate parameters: the rates the runs' prior predictions list, in first-listed order without
 * repeats, then the profile's GEMM-curve parameters.
 */
function candidateParameters(
  prior: HardwareProfile,
  runs: readonly MeasuredRun[],
  withCurve: boolean,
): { names: CalibrationParameterName[]; uses: RateUse[] } {
  const resolved = resolveRates(prior);
  const names: CalibrationParameterName[] = [];
  const uses: RateUse[] = [];
  for (const run of runs) {
    for (const use of predictRun(run, prior).rates) {
      const name = rateNameOf(resolved, use);
      if (name !== undefined && !names.includes(name)) {
        names.push(name);
        uses.push(resolved.uses[name]);
      }
    }
  }
  for (const [name, use] of withCurve ? curveParameterUses(prior) : []) {
    names.push(name);
    uses.push(use);
  }
  return { names, uses };
}

/** ln(predicted / measured) of every run on `profile`. */
function logErrors(runs: readonly MeasuredRun[], profile: HardwareProfile): number[] {
  return runs.map((run) => Math.log(predictedThroughput(run, profile) / run.measuredTokensPerSecond));
}

/** Fits `prior`'s rates to `runs` (see the file comment). */
export function fitProfile(
  prior: HardwareProfile,
  runs: readonly MeasuredRun[],
  options: CalibrationOptions = {},
): ProfileFit {
  const bounds = options.bounds ?? DEFAULT_BOUNDS;
  const priorWeight = options.priorWeight ?? DEFAULT_PRIOR_WEIGHT;
  checkOptions(bounds, priorWeight);
  const iterations = options.iterations ?? DEFAULT_ITERATIONS;
  const listed = candidateParameters(prior, runs, options.fitMatmulCurve ?? true);
  const before = logErrors(runs, prior);
  const working = "spillway calibrate: fitting";
  const unfitted: UnfittedRate[] = [];
  const chosen: { name: CalibrationParameterName; prior: RateUse }[] = [];
  listed.names.forEach((name, i) => {
    const use = listed.uses[i]!;
    if (!(use.value > 0)) {
      unfitted.push({
        name,
        label: use.name,
        reason: `its prior value is ${use.value}; rates are fitted in log space`,
      });
      return;
    }
    const moves = [1 / bounds, bounds].some((factor) => {
      const moved = logErrors(runs, withFittedRates(prior, new Map([[name, use.value * factor]]), working));
      return moved.some((m, j) => Math.abs(m - before[j]!) > SENSITIVITY);
    });
    if (moves) chosen.push({ name, prior: use });
    else
      unfitted.push({
        name,
        label: use.name,
        reason: `no run's prediction moves with it between x1/${bounds} and x${bounds}`,
      });
  });
  const profileAt = (x: readonly number[], source: string) =>
    withFittedRates(prior, new Map(chosen.map((c, i) => [c.name, c.prior.value * Math.exp(x[i]!)])), source);
  const logBound = Math.log(bounds);
  const priorScale = Math.sqrt(priorWeight);
  const result = levenbergMarquardt(
    (x) => [...logErrors(runs, profileAt(x, working)), ...x.map((xi) => priorScale * xi)],
    chosen.length,
    -logBound,
    logBound,
    iterations,
  );
  const profile = profileAt(result.x, fittedSource(runs));
  const priorTermAfter = priorWeight * sumSquares(result.x);
  return {
    profile,
    rates: chosen.map((c, i) => ({
      name: c.name,
      label: c.prior.name,
      path: parameterPath(c.name),
      prior: c.prior,
      fitted: c.prior.value * Math.exp(result.x[i]!),
      lower: c.prior.value / bounds,
      upper: c.prior.value * bounds,
      atBound: Math.abs(Math.abs(result.x[i]!) - logBound) < 1e-9,
    })),
    unfitted,
    sumSquaredLogErrorBefore: sumSquares(before),
    sumSquaredLogErrorAfter: sumSquares(logErrors(runs, profile)),
    priorWeight,
    priorTermAfter,
    iterations: result.iterations,
  };
}

/** Each run predicted with the rates fitted to the other runs, against its prediction with the prior. */
export function leaveOneOut(
  prior: HardwareProfile,
  runs: readonly MeasuredRun[],
  options: CalibrationOptions = {},
): LeaveOneOut {
  if (runs.length < 2) throw new RangeError("leave-one-out needs at least two runs");
  const out = runs.map((run, i) => {
    const others = runs.filter((_, k) => k !== i);
    const fitted = fitProfile(prior, others, options).profile;
    const measured = run.measuredTokensPerSecond;
    return {
      source: run.source,
      measuredTokensPerSecond: measured,
      errorBefore: predictedThroughput(run, prior) / measured - 1,
      errorAfter: predictedThroughput(run, fitted) / measured - 1,
    };
  });
  return {
    runs: out,
    medianAbsoluteErrorBefore: median(out.map((r) => Math.abs(r.errorBefore))),
    medianAbsoluteErrorAfter: median(out.map((r) => Math.abs(r.errorAfter))),
  };
}

/** The fit to every run, and the leave-one-out check of it. */
export function calibrate(
  prior: HardwareProfile,
  runs: readonly MeasuredRun[],
  options: CalibrationOptions = {},
): Calibration {
  return { fit: fitProfile(prior, runs, options), leaveOneOut: leaveOneOut(prior, runs, options) };
}
