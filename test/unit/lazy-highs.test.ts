// HiGHS loads only when an LP needs it (withLpSolvers). Its own file: a test process that has not
// loaded HiGHS yet, so the tests run in order (the first one checks that nothing loaded it).
import assert from "node:assert/strict";
import { test } from "node:test";
import { LinearProgramBuilder } from "../../planner/lp/linear-program.js";
import {
  HighsNotLoaded,
  lazyLpSolvers,
  solveLinearProgram,
  withLpSolvers,
} from "../../planner/lp/solve-linear-program.js";
import { dietLp } from "../lp-fixtures.js";

test("a computation that never falls back to HiGHS runs once and HiGHS stays unloaded", async () => {
  let runs = 0;
  const answer = await withLpSolvers((solvers) => {
    runs++;
    return solveLinearProgram(dietLp(), solvers).objective;
  });
  assert.equal(runs, 1);
  assert.ok(Math.abs(answer - 1.25) < 1e-9);
  assert.throws(() => lazyLpSolvers().highs, HighsNotLoaded);
});

test("a computation that needs HiGHS is run again once HiGHS is loaded, with HiGHS's answer", async () => {
  // javascript-lp-solver claims this LP infeasible; the claim goes to HiGHS for confirmation.
  const b = new LinearProgramBuilder(["x"]);
  b.minimise(b.space.term(1, "x"));
  b.add("low", b.space.term(1, "x"), ">=", 2);
  b.add("high", b.space.term(1, "x"), "<=", 1);
  const lp = b.build();
  const solvers: string[] = [];
  const answer = await withLpSolvers((lpSolvers) => {
    const solution = solveLinearProgram(lp, lpSolvers);
    solvers.push(solution.solver);
    return solution.status;
  });
  assert.equal(answer, "infeasible");
  assert.deepEqual(solvers, ["highs"], "the first run stopped at HiGHS; the second one answered with it");
  assert.ok(lazyLpSolvers().highs, "HiGHS is loaded now");
});
