import assert from "node:assert/strict";
import { test } from "node:test";
import { parseHardwareProfile, type Quantity } from "../../core/hardware-profile.js";
import { loadShippedProfile, shippedProfileNames } from "../../core/resolve-hardware.js";
import { calibrate, fitProfile, withFittedRates } from "../../engines/calibrate.js";
import { type KernelRateName, RATE_QUANTITY_PATHS, rateNameOf, resolveRates } from "../../engines/kernel-rates.js";
import { median, scoreRuns } from "../../engines/score-runs.js";
import { HIDDEN_SCALE, hiddenT4, SYNTHETIC_CASES, syntheticRuns, t4 } from "../calibration-fixtures.js";

const RATE_NAMES = Object.keys(RATE_QUANTITY_PATHS) as KernelRateName[];

test("every kernel rate maps to the profile Quantity it is read from: a fitted value there is what resolveRates returns", () => {
  for (const name of shippedProfileNames()) {
    const profile = loadShippedProfile(name);
    const resolved = resolveRates(profile);
    assert.deepEqual([...RATE_NAMES].sort(), Object.keys(resolved.uses).sort(), "the map covers every rate");
    for (const rate of RATE_NAMES) {
      // An arbitrary value no profile holds, so that only the fitted field can have produced it.
      const value = resolved.uses[rate].value * 1.37 + 1e-9;
      const fitted = resolveRates(withFittedRates(profile, new Map([[rate, value]]), "test"));
      assert.equal(fitted.uses[rate].value, value, `${name}: ${rate}`);
      assert.equal(fitted.uses[rate].kind, "fitted", `${name}: ${rate}`);
      // A prediction's RateUse names its rate back (labels are unique).
      assert.equal(rateNameOf(resolved, resolved.uses[rate]), rate);
    }
  }
});

test("score-runs: a run measured 25% faster than predicted has error -20% (predicted / measured - 1)", () => {
  const runs = syntheticRuns(t4()).map((r) => ({ ...r, measuredTokensPerSecond: r.measuredTokensPerSecond * 1.25 }));
  const scores = scoreRuns(runs, t4());
  for (const s of scores.scores) {
    assert.ok(Math.abs(s.relativeError - -0.2) < 1e-12, `${s.run.source}: ${s.relativeError}`);
    assert.ok(Math.abs(s.logError - Math.log(0.8)) < 1e-12);
  }
  assert.ok(Math.abs(scores.medianAbsoluteError - 0.2) < 1e-12);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
});

test("recovery: rates scaled on a hidden T4 are found again from profiles/t4.json within 5%, and leave-one-out error falls", () => {
  const prior = t4();
  const hidden = hiddenT4();
  const runs = syntheticRuns(hidden);
  assert.equal(runs.length, SYNTHETIC_CASES.length);
  const { fit, leaveOneOut } = calibrate(prior, runs);
  const priorRates = resolveRates(prior).rates;
  const hiddenRates = resolveRates(hidden).rates;
  for (const [name, factor] of HIDDEN_SCALE) {
    const rate = fit.rates.find((r) => r.name === name);
    assert.ok(rate, `${name} is fitted (the runs depend on it)`);
    assert.equal(rate.prior.value, priorRates[name]);
    const ratio = rate.fitted / hiddenRates[name];
    assert.ok(Math.abs(ratio - 1) < 0.05, `${name}: fitted ${rate.fitted}, hidden ${hiddenRates[name]} (x${factor})`);
  }
  // Rates the hidden machine shares with the prior stay where they were.
  for (const rate of fit.rates.filter((r) => !HIDDEN_SCALE.has(r.name as KernelRateName)))
    assert.ok(Math.abs(rate.fitted / rate.prior.value - 1) < 0.05, `${rate.name} moved to ${rate.fitted}`);
  // The prior term holds each rate a little towards its prior (a bias of order priorWeight x its offset);
  // fitted to the runs alone the fit is exact.
  assert.ok(fit.sumSquaredLogErrorAfter < fit.sumSquaredLogErrorBefore * 1e-4);
  const exact = fitProfile(prior, runs, { priorWeight: 0 });
  assert.ok(exact.sumSquaredLogErrorAfter < exact.sumSquaredLogErrorBefore * 1e-6);
  // The runs come from the engine's own model, so a fit to 11 of them predicts the 12th: the prior is
  // off by the scaled rates (tens of percent), the leave-one-out fits by the prior term's small bias only.
  assert.ok(leaveOneOut.medianAbsoluteErrorBefore > 0.1, `before ${leaveOneOut.medianAbsoluteErrorBefore}`);
  assert.ok(leaveOneOut.medianAbsoluteErrorAfter < 0.01, `after ${leaveOneOut.medianAbsoluteErrorAfter}`);
  assert.equal(leaveOneOut.runs.length, runs.length);
  for (const r of leaveOneOut.runs) assert.ok(Math.abs(r.errorAfter) < Math.abs(r.errorBefore), r.source);

  // The written profile: still a valid profile, each fitted value beside the datasheet and measured ones.
  const written = parseHardwareProfile(JSON.parse(JSON.stringify(fit.profile)), "fitted");
  const h2d: Quantity = written.hostToDevice.pinnedBytesPerSecond;
  assert.deepEqual(h2d.measured, prior.hostToDevice.pinnedBytesPerSecond.measured);
  assert.deepEqual(h2d.datasheet, prior.hostToDevice.pinnedBytesPerSecond.datasheet);
  assert.match(h2d.fitted!.source, /^fitted by spillway calibrate to 12 runs: synthetic\.csv:2, synthetic\.csv:3, /);
  assert.equal(resolveRates(written).uses.h2dPinnedBytesPerSecond.kind, "fitted");
  // A rate that was not fitted gets no fitted value.
  for (const rate of fit.unfitted) {
    const [section, key] = RATE_QUANTITY_PATHS[rate.name as KernelRateName];
    const quantity = (written[section] as unknown as Record<string, Quantity | undefined>)[key];
    assert.equal(quantity?.fitted, undefined, rate.name);
  }
  // Scored against the fitted profile, the runs match (within the prior term's bias).
  assert.ok(scoreRuns(runs, fit.profile).medianAbsoluteError < 0.005);
});

test("bounds: a rate the runs want beyond them stops at the bound and says so", () => {
  const runs = syntheticRuns(hiddenT4());
  const fit = fitProfile(t4(), runs, { bounds: 1.25 });
  const h2d = fit.rates.find((r) => r.name === "h2dPinnedBytesPerSecond")!;
  // The hidden link runs at 0.6 of the prior, below the 1/1.25 = 0.8 the bounds allow.
  assert.ok(Math.abs(h2d.fitted / (h2d.prior.value / 1.25) - 1) < 1e-9, `${h2d.fitted}`);
  assert.equal(h2d.atBound, true);
  for (const rate of fit.rates) {
    assert.ok(rate.fitted >= rate.lower * (1 - 1e-12) && rate.fitted <= rate.upper * (1 + 1e-12), rate.name);
  }
  assert.throws(() => fitProfile(t4(), runs, { bounds: 1 }), /bounds must be a number > 1/);
});

test("the fit is deterministic: the same runs give the same profile", () => {
  const runs = syntheticRuns(hiddenT4()).slice(0, 6);
  assert.deepEqual(fitProfile(t4(), runs), fitProfile(t4(), runs));
});
