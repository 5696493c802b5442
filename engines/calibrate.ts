/**
 * Calibration: fit a hardware profile's kernel-class rates to measured runs.
 *
 * The rates fitted are those the runs' predictions use (EnginePrediction.rates, mapped back to the
 * profile Quantity each is read from: RATE_QUANTITY_PATHS) and that at least one run's prediction
 * moves with inside the bounds. Each is searched in log space within [prior / bounds, prior x bounds]
 * (default 4) to minimise the sum over runs of ln(predicted / measured)^2, by a projected
 * Levenberg-Marquardt iteration on forward-difference Jacobians: deterministic (no randomness, a fixed
 * cap on iterations, the same answer for the same inputs) and a pure function of its arguments. The
 * fitted values are written into each Quantity's `fitted` field, which the cost models prefer
 * (core/hardware-profile.ts effective(), engines/kernel-rates.ts), beside the datasheet and measured
 * values, with a source naming the runs.
 *
 * Leave-one-out: for each run, the rates are fitted to the other runs and the run is predicted with
 * them; its error then, against its error with the prior profile, says whether the calibration carries
 * over to runs it has not seen.
 */
import type { HardwareProfile, Quantity } from "../core/hardware-profile.js";
import { type KernelRateName, RATE_QUANTITY_PATHS, type RateUse, rateNameOf, resolveRates } from "./kernel-rates.js";
import type { MeasuredRun } from "./measured-runs.js";
import { median, predictedThroughput, predictRun } from "./score-runs.js";

/** Each rate stays within [prior / DEFAULT_BOUNDS, prior x DEFAULT_BOUNDS] unless told otherwise. */
export const DEFAULT_BOUNDS = 4;
/** Levenberg-Marquardt iterations at most (each costs one prediction per run per fitted rate, plus trials). */
export const DEFAULT_ITERATIONS = 40;
/** Forward-difference step in ln(rate). */
const JACOBIAN_STEP = 1e-4;
/** A rate whose every run's ln(prediction) moves less than this across its bounds is not fitted. */
const SENSITIVITY = 1e-9;

export interface CalibrationOptions {
  /** Each rate stays within [prior / bounds, prior x bounds]; > 1 (default DEFAULT_BOUNDS). */
  readonly bounds?: number;
  /** Iterations at most (default DEFAULT_ITERATIONS). */
  readonly iterations?: number;
}

export interface FittedRate {
  readonly name: KernelRateName;
  /** The rate in words, as predictions list it. */
  readonly label: string;
  /** Where in the profile the fitted value is written, e.g. "hostToDevice.pinnedBytesPerSecond". */
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
  readonly name: KernelRateName;
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

/** The profile with `values` written as the `fitted` value of each rate's Quantity (others untouched). */
export function withFittedRates(
  profile: HardwareProfile,
  values: ReadonlyMap<KernelRateName, number>,
  source: string,
): HardwareProfile {
  const sections: Record<string, Record<string, unknown>> = {};
  for (const [name, value] of values) {
    const [section, key] = RATE_QUANTITY_PATHS[name];
    const copy = (sections[section] ??= { ...profile[section] });
    const quantity = (profile[section] as unknown as Record<string, Quantity | undefined>)[key];
    copy[key] = { ...quantity, fitted: { value, source } };
  }
  return { ...profile, ...sections } as HardwareProfile;
}

export function fittedSource(runs: readonly MeasuredRun[]): string {
  return `fitted by spillway calibrate to ${runs.length} runs: ${runs.map((r) => r.source).join(", ")}`;
}

const pathOf = (name: KernelRateName) => RATE_QUANTITY_PATHS[name].join(".");

function checkBounds(bounds: number): void {
  if (!(Number.isFinite(bounds) && bounds > 1))
    throw new RangeError(`calibration bounds must be a number > 1, got ${bounds}`);
}

/** The rates the runs' prior predictions list, in first-listed order, without repeats. */
function listedRates(
  prior: HardwareProfile,
  runs: readonly MeasuredRun[],
): { names: KernelRateName[]; uses: RateUse[] } {
  const resolved = resolveRates(prior);
  const names: KernelRateName[] = [];
  for (const run of runs) {
    for (const use of predictRun(run, prior).rates) {
      const name = rateNameOf(resolved, use);
      if (name !== undefined && !names.includes(name)) names.push(name);
    }
  }
  return { names, uses: names.map((n) => resolved.uses[n]) };
}

/** ln(predicted / measured) of every run on `profile`. */
function logErrors(runs: readonly MeasuredRun[], profile: HardwareProfile): number[] {
  return runs.map((run) => Math.log(predictedThroughput(run, profile) / run.measuredTokensPerSecond));
}

const sumSquares = (v: readonly number[]) => v.reduce((a, x) => a + x * x, 0);

/** Solves the symmetric system a x = b (Gaussian elimination with partial pivoting); a is n x n row-major. */
function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[p]![c]!)) p = r;
    [m[c], m[p]] = [m[p]!, m[c]!];
    const pivot = m[c]![c]!;
    if (pivot === 0) continue;
    for (let r = c + 1; r < n; r++) {
      const f = m[r]![c]! / pivot;
      for (let k = c; k <= n; k++) m[r]![k]! -= f * m[c]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= m[r]![k]! * x[k]!;
    x[r] = m[r]![r]! === 0 ? 0 : s / m[r]![r]!;
  }
  return x;
}

/**
 * Minimises sum(residuals(x)^2) over the box [lower, upper]^n from x = 0: Levenberg-Marquardt with
 * Marquardt's diagonal scaling, coordinates at a bound whose gradient points out of the box held
 * there, each step projected into the box and taken only if it lowers the sum.
 */
function levenbergMarquardt(
  residuals: (x: readonly number[]) => number[],
  n: number,
  lower: number,
  upper: number,
  iterations: number,
): { x: number[]; value: number; iterations: number } {
  let x = new Array<number>(n).fill(0);
  let r = residuals(x);
  let value = sumSquares(r);
  let damping = 1e-3;
  let done = 0;
  for (; done < iterations && value > 0; done++) {
    const jacobian = x.map((xi, i) => {
      const step = xi + JACOBIAN_STEP > upper ? -JACOBIAN_STEP : JACOBIAN_STEP;
      const moved = residuals(x.map((v, k) => (k === i ? v + step : v)));
      return moved.map((m, j) => (m - r[j]!) / step);
    });
    const gradient = jacobian.map((column) => column.reduce((a, c, j) => a + c * r[j]!, 0));
    const normal = jacobian.map((ci) => jacobian.map((ck) => ci.reduce((a, c, j) => a + c * ck[j]!, 0)));
    const free = x
      .map((_, i) => i)
      .filter((i) => !((x[i]! <= lower && gradient[i]! > 0) || (x[i]! >= upper && gradient[i]! < 0)));
    let accepted = false;
    for (let trial = 0; trial < 12 && !accepted; trial++) {
      const a = free.map((i) => free.map((k) => normal[i]![k]! + (i === k ? damping * (normal[i]![i]! + 1e-12) : 0)));
      const delta = solve(
        a,
        free.map((i) => -gradient[i]!),
      );
      const next = [...x];
      free.forEach((i, f) => (next[i] = Math.min(upper, Math.max(lower, x[i]! + delta[f]!))));
      if (next.every((v, i) => v === x[i])) break;
      const nextR = residuals(next);
      const nextValue = sumSquares(nextR);
      if (nextValue < value) {
        const gain = value - nextValue;
        x = next;
        r = nextR;
        value = nextValue;
        damping = Math.max(damping / 4, 1e-12);
        accepted = true;
        if (gain <= 1e-15 * (1 + value)) return { x, value, iterations: done + 1 };
      } else damping *= 8;
    }
    if (!accepted) break;
  }
  return { x, value, iterations: done };
}

/** Fits `prior`'s rates to `runs` (see the file comment). */
export function fitProfile(
  prior: HardwareProfile,
  runs: readonly MeasuredRun[],
  options: CalibrationOptions = {},
): ProfileFit {
  const bounds = options.bounds ?? DEFAULT_BOUNDS;
  checkBounds(bounds);
  const iterations = options.iterations ?? DEFAULT_ITERATIONS;
  const listed = listedRates(prior, runs);
  const before = logErrors(runs, prior);
  const working = "spillway calibrate: fitting";
  const unfitted: UnfittedRate[] = [];
  const chosen: { name: KernelRateName; prior: RateUse }[] = [];
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
  const result = levenbergMarquardt(
    (x) => logErrors(runs, profileAt(x, working)),
    chosen.length,
    -logBound,
    logBound,
    iterations,
  );
  const profile = profileAt(result.x, fittedSource(runs));
  return {
    profile,
    rates: chosen.map((c, i) => ({
      name: c.name,
      label: c.prior.name,
      path: pathOf(c.name),
      prior: c.prior,
      fitted: c.prior.value * Math.exp(result.x[i]!),
      lower: c.prior.value / bounds,
      upper: c.prior.value * bounds,
      atBound: Math.abs(Math.abs(result.x[i]!) - logBound) < 1e-9,
    })),
    unfitted,
    sumSquaredLogErrorBefore: sumSquares(before),
    sumSquaredLogErrorAfter: result.value,
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
