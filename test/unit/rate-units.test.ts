/**
 * Every command prints throughput as "token/s" (plan, simulate, compare, sweep, export): the measured-run
 * tables of `compare --engine E --measured` and `calibrate` too, not "tokens/s".
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatCalibration } from "../../cli/format-calibration.js";
import { formatScores } from "../../cli/format-scores.js";
import type { Calibration } from "../../engines/calibrate.js";
import type { RunScores } from "../../engines/score-runs.js";

test("the measured-run tables of compare --measured and calibrate say token/s", () => {
  const scores = formatScores("flexgen", "t4", { scores: [], medianAbsoluteError: 0 } as unknown as RunScores);
  const calibration = {
    fit: {
      rates: [],
      unfitted: [],
      sumSquaredLogErrorBefore: 1,
      sumSquaredLogErrorAfter: 1,
      priorTermAfter: 0,
      priorWeight: 0.01,
    },
    leaveOneOut: {
      runs: [{ source: "a.json", measuredTokensPerSecond: 12.5, errorBefore: 0.1, errorAfter: 0.05 }],
      medianAbsoluteErrorBefore: 0.1,
      medianAbsoluteErrorAfter: 0.05,
    },
  } as unknown as Calibration;
  const calibrated = formatCalibration("flexgen", "t4", calibration, 0, "out.json");
  for (const text of [scores, calibrated]) {
    assert.doesNotMatch(text, /tokens\/s/);
    assert.match(text, /token\/s/);
  }
});
