import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { flexgenConstants } from "../../planner/flexgen/flexgen-constants.js";
import { buildFlexgenLp, flexgenCapacities } from "../../planner/flexgen/flexgen-lp.js";
import { denseLp, denseObjectiveValue, denseViolatesAnyRow } from "../../planner/lp/dense-lp.js";
import { solveDenseSimplex } from "../../planner/lp/dense-simplex.js";
import { type LinearProgram, objectiveValue, violatesAnyRow } from "../../planner/lp/linear-program.js";
import { LinearProgramFamily } from "../../planner/lp/lp-family.js";
import { solveAtBasis, solveDenseAtBasis } from "../../planner/lp/reuse-basis.js";
import { newScreenStats, screenDenseLp, screenLinearProgram } from "../../planner/lp/screened-lp.js";
import { lazyLpSolvers, newSolveStats } from "../../planner/lp/solve-linear-program.js";
import { random } from "../helpers.js";

test("the dense form's row test and objective are the LinearProgram's, including zero coefficients", () => {
  const rand = random(23);
  const ops = ["<=", ">=", "="] as const;
  let broken = 0;
  let held = 0;
  for (let trial = 0; trial < 60; trial++) {
    const n = 1 + Math.floor(rand() * 6);
    const variables = Array.from({ length: n }, (_, i) => `x${i}`);
    // About a third of the coefficients are zero, as in the searches' LPs.
    const coefficient = () => (rand() < 0.35 ? 0 : (rand() - 0.5) * 10 ** Math.floor(rand() * 6 - 2));
    const lp: LinearProgram = {
      variables,
      objective: variables.map(coefficient),
      constraints: Array.from({ length: 1 + Math.floor(rand() * 6) }, (_, r) => ({
        name: `r${r}`,
        op: ops[Math.floor(rand() * ops.length)]!,
        coefficients: variables.map(coefficient),
        rhs: (rand() - 0.3) * 10 ** Math.floor(rand() * 6 - 2),
      })),
    };
    const dense = denseLp(lp);
    for (let k = 0; k < 25; k++) {
      const values = Float64Array.from({ length: n }, () =>
        rand() < 0.03 ? Number.NaN : rand() < 0.2 ? 0 : (rand() - 0.1) * 4,
      );
      for (const tolerance of [0, 1e-6, 0.1, 10]) {
        const expected = violatesAnyRow(lp, values, tolerance);
        assert.equal(
          denseViolatesAnyRow(dense, values, tolerance),
          expected,
          `trial ${trial}, ${values}, ${tolerance}`,
        );
        if (expected) broken++;
        else held++;
      }
      assert.equal(denseObjectiveValue(dense, values), objectiveValue(lp, values));
    }
  }
  assert.ok(broken > 100 && held > 100, `both answers exercised (${broken} broken, ${held} held)`);
});

/** FlexGen's OPT-175B LPs on the T4 at one GPU batch size, as a family in the block size. */
function flexgenFamily(gbs: number): { family: LinearProgramFamily; build: (bls: number) => LinearProgram } {
  const t4 = resolveHardware("t4");
  const dims = { l: 96, h1: 12288, h2: 49152, nh: 96, s: 512, n: 32 };
  const base = { dims, constants: flexgenConstants(t4), capacities: flexgenCapacities(t4, 0.8), gbs };
  const build = (bls: number) => buildFlexgenLp({ ...base, bls, compressWeight: false }).lp;
  return { family: new LinearProgramFamily(build, gbs, 2 * gbs), build };
}

test("a family filled in place holds, LP after LP, the numbers of the LP it interpolates", () => {
  for (const gbs of [1, 8]) {
    const { family } = flexgenFamily(gbs);
    const dense = family.emptyDenseLp();
    // Out of order, so that an entry left from an earlier fill would show.
    for (const bls of [gbs, 700 * gbs, 3 * gbs, 2 * gbs, 45 * gbs]) {
      const objective = [0, 0, 0, 0, 0, 0, 0, 0, 0, 96 / bls, (96 * 31) / bls];
      family.fill(bls, objective, dense);
      const expected = denseLp(family.at(bls, objective));
      // Equal as numbers (a zero's sign aside): the very arithmetic at() does.
      assert.ok(
        expected.coefficients.every((c, i) => c === dense.coefficients[i]),
        `gbs ${gbs}, bls ${bls}: coefficients`,
      );
      assert.deepEqual(dense.rhs, expected.rhs, `gbs ${gbs}, bls ${bls}: right-hand sides`);
      assert.deepEqual(dense.kinds, expected.kinds);
      assert.deepEqual(dense.objective, expected.objective);
    }
  }
});

test("the basis test on the dense form accepts and rejects as on the LinearProgram, and the screen answers alike", () => {
  const { family } = flexgenFamily(1);
  const optimum = solveDenseSimplex(family.at(100, [0, 0, 0, 0, 0, 0, 0, 0, 0, 96 / 100, (96 * 31) / 100]));
  assert.equal(optimum.status, "optimal");
  const basis = optimum.basis!;
  const dense = family.emptyDenseLp();
  let accepted = 0;
  let rejected = 0;
  for (let nb = 1; nb <= 600; nb += 7) {
    const objective = [0, 0, 0, 0, 0, 0, 0, 0, 0, 96 / nb, (96 * 31) / nb];
    family.fill(nb, objective, dense);
    const lp = family.at(nb, objective);
    const fromDense = solveDenseAtBasis(dense, basis);
    const fromLp = solveAtBasis(lp, basis);
    assert.equal(fromDense === undefined, fromLp === undefined, `nb ${nb}`);
    if (fromDense && fromLp) {
      assert.deepEqual(fromDense.values, fromLp.values, `nb ${nb}`);
      assert.ok(!violatesAnyRow(lp, fromDense.values, 1e-9), `nb ${nb}: the point meets every row`);
      accepted++;
    } else rejected++;
    // The screen on the dense form and on the LinearProgram: the same status and figures.
    const context = () => ({ solvers: lazyLpSolvers(), solveStats: newSolveStats(), screenStats: newScreenStats() });
    const a = screenDenseLp(dense, context(), () => lp);
    const b = screenLinearProgram(lp, context());
    assert.equal(a.status, b.status, `nb ${nb}`);
    assert.deepEqual(a.values, b.values, `nb ${nb}`);
  }
  assert.ok(accepted > 10 && rejected > 10, `both answers exercised (${accepted} accepted, ${rejected} rejected)`);
});
