import assert from "node:assert/strict";
import { test } from "node:test";
import { type HardwareProfile, matmulCurveSamples, parseHardwareProfile } from "../../core/hardware-profile.js";
import { fitProfile, withFittedRates } from "../../engines/calibrate.js";
import { curveParameterUses } from "../../engines/calibration-parameters.js";
import { predictRun } from "../../engines/score-runs.js";
import { hardwareRates, matmulSecondsPerWeight } from "../../planner/spillway/hardware-rates.js";
import { SYNTHETIC_CASES, syntheticRuns, t4 } from "../calibration-fixtures.js";

/**
 * profiles/t4.json with a GEMM-against-rows curve (as `spillway profile` writes for devices whose GEMM is
 * no roofline): flat while a GEMM streams its weights, then growing with the rows.
 */
function t4WithCurve(): HardwareProfile {
  const prior = t4();
  const samples = [
    { rows: 1, secondsPerWeight: 9e-12 },
    { rows: 8, secondsPerWeight: 1.1e-11 },
    { rows: 32, secondsPerWeight: 3.2e-11 },
    { rows: 128, secondsPerWeight: 1.15e-10 },
    { rows: 512, secondsPerWeight: 4.4e-10 },
  ];
  return { ...prior, gpu: { ...prior.gpu, matmulCurve: { samples, source: "test: a GEMM curve" } } };
}

/** Batches from 1 to 64 sequences, so the runs' GEMMs see 1..64 rows in decode and 128..8192 in prefill. */
const CURVE_CASES: typeof SYNTHETIC_CASES = [
  ["opt-1.3b", "--gbs 1 --nb 1", 128, 32],
  ["opt-1.3b", "--gbs 4 --nb 2", 128, 32],
  ["opt-1.3b", "--gbs 16 --nb 1", 64, 32],
  ["opt-1.3b", "--gbs 64 --nb 1", 32, 16],
  ["opt-6.7b", "--gbs 8 --nb 1", 256, 32],
  ["opt-6.7b", "--gbs 2 --nb 2 --percent 50 50 100 0 100 0", 128, 32],
  ["opt-13b", "--gbs 8 --nb 2 --percent 0 100 100 0 100 0", 256, 16],
];

test("curve: a GEMM curve scaled on a hidden machine (x1.5 at 1 row to x0.7 at 512, and the link x0.6) is found again within 5%", () => {
  const prior = t4WithCurve();
  const curvePrior = curveParameterUses(prior);
  const fewest = curvePrior.get("matmulFewestRowsSecondsPerWeight")!.value;
  const most = curvePrior.get("matmulMostRowsSecondsPerWeight")!.value;
  const link = prior.hostToDevice.pinnedBytesPerSecond.measured!.value;
  const hidden = withFittedRates(
    prior,
    new Map([
      ["matmulFewestRowsSecondsPerWeight", fewest * 1.5],
      ["matmulMostRowsSecondsPerWeight", most * 0.7],
      ["h2dPinnedBytesPerSecond", link * 0.6],
    ] as const),
    "test: the hidden machine",
  );
  // The hidden curve is off by different factors across the rows the runs use.
  const hiddenCurve = hardwareRates(hidden).matmulCurve!;
  const priorCurve = hardwareRates(prior).matmulCurve!;
  // At 8 rows, a third of the way from 1 to 512 in log(rows): 1.5^(2/3) x 0.7^(1/3) = 1.163.
  assert.ok(Math.abs(matmulSecondsPerWeight(hiddenCurve, 8) / matmulSecondsPerWeight(priorCurve, 8) - 1.163) < 0.001);
  assert.ok(
    Math.abs(matmulSecondsPerWeight(hiddenCurve, 2048) / matmulSecondsPerWeight(priorCurve, 2048) - 0.7) < 1e-9,
  );

  const runs = syntheticRuns(hidden, "curve.csv", CURVE_CASES);
  const fit = fitProfile(prior, runs);
  const ratio = (name: string) => {
    const rate = fit.rates.find((r) => r.name === name);
    assert.ok(rate, `${name} is fitted`);
    return rate.fitted / rate.prior.value;
  };
  assert.ok(
    Math.abs(ratio("matmulFewestRowsSecondsPerWeight") / 1.5 - 1) < 0.05,
    `x${ratio("matmulFewestRowsSecondsPerWeight")}`,
  );
  assert.ok(
    Math.abs(ratio("matmulMostRowsSecondsPerWeight") / 0.7 - 1) < 0.05,
    `x${ratio("matmulMostRowsSecondsPerWeight")}`,
  );
  assert.ok(Math.abs(ratio("h2dPinnedBytesPerSecond") / 0.6 - 1) < 0.05, `x${ratio("h2dPinnedBytesPerSecond")}`);
  assert.ok(fit.sumSquaredLogErrorAfter < fit.sumSquaredLogErrorBefore / 100);

  // Written as the curve's `fitted` samples beside the measured ones, with the runs as source; the cost
  // model reads the fitted curve, which is the hidden one within 5% at every sample.
  const written = parseHardwareProfile(JSON.parse(JSON.stringify(fit.profile)), "fitted");
  const curve = written.gpu.matmulCurve!;
  assert.deepEqual(curve.samples, prior.gpu.matmulCurve!.samples, "the measured samples are kept");
  assert.match(
    curve.fitted!.source,
    /^fitted by spillway calibrate to 7 runs: curve\.csv:2, .* \(the curve x1\.\d+ at 1 row to x0\.\d+ at 512 rows, linear in log\(rows\)\)$/,
  );
  const hiddenSamples = matmulCurveSamples(hidden.gpu.matmulCurve!);
  matmulCurveSamples(curve).forEach((s, i) =>
    assert.ok(Math.abs(s.secondsPerWeight / hiddenSamples[i]!.secondsPerWeight - 1) < 0.05, `rows ${s.rows}`),
  );
  // Without the curve among the parameters, the scalar rates cannot say what the runs say.
  const scalarOnly = fitProfile(prior, runs, { fitMatmulCurve: false });
  assert.ok(scalarOnly.sumSquaredLogErrorAfter > 10 * fit.sumSquaredLogErrorAfter);
});

test("prior term: rates the runs barely constrain stay at their prior; without it they chase the runs' noise", () => {
  const prior = t4();
  // Runs of the prior machine itself, measured +-8% off in turn (run-to-run noise).
  const runs = syntheticRuns(prior, "noisy.csv", SYNTHETIC_CASES.slice(0, 8)).map((r, i) => ({
    ...r,
    measuredTokensPerSecond: r.measuredTokensPerSecond * (i % 2 ? 1.08 : 1 / 1.08),
  }));
  // A rate is barely constrained when moving it x4 either way changes no run's prediction by 2%.
  const barely = (profile: HardwareProfile, name: string, value: number) =>
    [value / 4, value * 4].every((v) => {
      const moved = withFittedRates(profile, new Map([[name as "gpuKernelLaunchSeconds", v]]), "test");
      return runs.every((run) => {
        const ratio =
          predictRun(run, moved).throughputTokensPerSecond / predictRun(run, profile).throughputTokensPerSecond;
        return Math.abs(ratio - 1) < 0.02;
      });
    });
  const regularised = fitProfile(prior, runs);
  const free = fitProfile(prior, runs, { priorWeight: 0 });
  const weak = regularised.rates.filter((r) => barely(prior, r.name, r.prior.value));
  assert.ok(weak.length >= 2, `weakly constrained: ${weak.map((r) => r.name).join(", ")}`);
  for (const rate of weak)
    assert.ok(
      Math.abs(rate.fitted / rate.prior.value - 1) < 0.02,
      `${rate.name} moved x${rate.fitted / rate.prior.value}`,
    );
  // Fitted to the runs alone, some of the same rates move far to explain noise a rate cannot explain.
  const wandering = free.rates.filter(
    (r) => weak.some((w) => w.name === r.name) && Math.abs(Math.log(r.fitted / r.prior.value)) > Math.log(1.25),
  );
  assert.ok(wandering.length >= 1, "without the prior term a barely constrained rate moves by more than x1.25");
  assert.ok(regularised.priorTermAfter > 0 && free.priorTermAfter === 0);
  assert.throws(() => fitProfile(prior, runs, { priorWeight: -1 }), /prior weight must be a number >= 0/);
});
