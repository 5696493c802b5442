/**
 * What `spillway calibrate` can fit in a hardware profile, and how a fitted value is written back:
 *  - each scalar kernel-class rate, as a `fitted` value of the Quantity it is read from
 *    (RATE_QUANTITY_PATHS);
 *  - the GEMM-against-rows curve (gpu.matmulCurve, which the Spillway cost model prices every GEMM with
 *    where a profile has it) through two parameters: its seconds per weight at its fewest rows and at its
 *    most rows. The fitted curve, written as `gpu.matmulCurve.fitted`, is the prior curve with every
 *    sample rescaled by a factor that moves linearly in log(rows) from the first parameter's ratio to
 *    the second's, so the weight-streaming small-rows end and the compute-bound large-rows end can be
 *    off by different amounts while the measured shape between them is kept. A one-sample curve has
 *    one parameter (a plain scale).
 */
import {
  type HardwareProfile,
  type MatmulCurve,
  type MatmulSample,
  matmulCurveSamples,
  type Quantity,
} from "../core/hardware-profile.js";
import { type KernelRateName, RATE_QUANTITY_PATHS, type RateUse } from "./kernel-rates.js";

export type CurveParameterName = "matmulFewestRowsSecondsPerWeight" | "matmulMostRowsSecondsPerWeight";
export type CalibrationParameterName = KernelRateName | CurveParameterName;

const isCurveParameter = (name: CalibrationParameterName): name is CurveParameterName =>
  name === "matmulFewestRowsSecondsPerWeight" || name === "matmulMostRowsSecondsPerWeight";

/** Where a parameter's fitted value is written, e.g. "hostToDevice.pinnedBytesPerSecond" or "gpu.matmulCurve.fitted". */
export function parameterPath(name: CalibrationParameterName): string {
  return isCurveParameter(name) ? "gpu.matmulCurve.fitted" : RATE_QUANTITY_PATHS[name].join(".");
}

const rowsText = (rows: number) => `${rows} row${rows === 1 ? "" : "s"}`;

/**
 * The curve parameters of `profile` with their prior values (the curve the cost model reads now: a
 * fitted one where the profile has it, else the measured one), fewest rows first; none without a curve.
 */
export function curveParameterUses(profile: HardwareProfile): Map<CurveParameterName, RateUse> {
  const curve = profile.gpu.matmulCurve;
  const uses = new Map<CurveParameterName, RateUse>();
  if (!curve) return uses;
  const samples = matmulCurveSamples(curve);
  const kind = curve.fitted ? "fitted" : "measured";
  const source = curve.fitted?.source ?? curve.source;
  const use = (s: MatmulSample): RateUse => ({
    name: `matmul curve: GEMM time per weight at ${rowsText(s.rows)}`,
    value: s.secondsPerWeight,
    kind,
    source,
  });
  uses.set("matmulFewestRowsSecondsPerWeight", use(samples[0]!));
  if (samples.length > 1) uses.set("matmulMostRowsSecondsPerWeight", use(samples[samples.length - 1]!));
  return uses;
}

/**
 * `samples` rescaled by `fewest` at the first sample's rows and `most` at the last's, the factor
 * linear in log(rows) between them.
 */
export function rescaledCurve(samples: readonly MatmulSample[], fewest: number, most: number): MatmulSample[] {
  const first = samples[0]!.rows;
  const span = Math.log(samples[samples.length - 1]!.rows / first);
  return samples.map((s) => {
    const t = span > 0 ? Math.log(s.rows / first) / span : 0;
    return {
      rows: s.rows,
      secondsPerWeight: s.secondsPerWeight * Math.exp((1 - t) * Math.log(fewest) + t * Math.log(most)),
    };
  });
}

function withFittedCurve(
  curve: MatmulCurve,
  values: ReadonlyMap<CalibrationParameterName, number>,
  source: string,
): MatmulCurve {
  const samples = matmulCurveSamples(curve);
  const ratio = (name: CurveParameterName, sample: MatmulSample) =>
    (values.get(name) ?? sample.secondsPerWeight) / sample.secondsPerWeight;
  const fewest = ratio("matmulFewestRowsSecondsPerWeight", samples[0]!);
  const most = samples.length > 1 ? ratio("matmulMostRowsSecondsPerWeight", samples[samples.length - 1]!) : fewest;
  const scaled = rescaledCurve(samples, fewest, most);
  const first = samples[0]!.rows;
  const last = samples[samples.length - 1]!.rows;
  const how =
    samples.length > 1
      ? `the curve x${fewest.toPrecision(4)} at ${rowsText(first)} to x${most.toPrecision(4)} at ${rowsText(last)}, linear in log(rows)`
      : `the curve x${fewest.toPrecision(4)}`;
  return { ...curve, fitted: { samples: scaled, source: `${source} (${how})` } };
}

/**
 * The profile with `values` written as fitted values: a scalar rate's into its Quantity's `fitted`
 * field, the curve parameters into `gpu.matmulCurve.fitted` (others untouched).
 */
export function withFittedRates(
  profile: HardwareProfile,
  values: ReadonlyMap<CalibrationParameterName, number>,
  source: string,
): HardwareProfile {
  const sections: Record<string, Record<string, unknown>> = {};
  for (const [name, value] of values) {
    if (isCurveParameter(name)) continue;
    const [section, key] = RATE_QUANTITY_PATHS[name];
    const copy = (sections[section] ??= { ...profile[section] });
    const quantity = (profile[section] as unknown as Record<string, Quantity | undefined>)[key];
    copy[key] = { ...quantity, fitted: { value, source } };
  }
  const curve = profile.gpu.matmulCurve;
  if (curve && [...values.keys()].some(isCurveParameter)) {
    const gpu = (sections.gpu ??= { ...profile.gpu });
    gpu.matmulCurve = withFittedCurve(curve, values, source);
  }
  return { ...profile, ...sections } as HardwareProfile;
}
