import assert from "node:assert/strict";
import { test } from "node:test";
import { LinearProgramBuilder, maxViolation } from "../../planner/lp/linear-program.js";
import { loadLpSolvers, newSolveStats, solveLinearProgram } from "../../planner/lp/solve-linear-program.js";
import { random } from "../helpers.js";

function diet() {
  // min x + 2y  s.t.  x + y >= 1,  x - y <= 0.5,  z <= 0.1 + 0.5x  → x = 0.75, y = 0.25, objective 1.25
  const b = new LinearProgramBuilder(["x", "y", "z"]);
  const v = (n: string) => b.space.term(1, n);
  b.minimise(v("x").plus(v("y").times(2)));
  b.add("cover", v("x").plus(v("y")), ">=", 1);
  b.add("balance", v("x").minus(v("y")), "<=", 0.5);
  b.add("z_cap", v("z"), "<=", v("x").times(0.5).plus(b.space.constant(0.1)));
  return b.build();
}

test("both solvers find the same optimum of a small LP", async () => {
  await loadLpSolvers();
  const lp = diet();
  const fast = solveLinearProgram(lp, { solver: "javascript-lp-solver" });
  const slow = solveLinearProgram(lp, { solver: "highs" });
  assert.equal(fast.status, "optimal");
  assert.equal(slow.status, "optimal");
  assert.ok(Math.abs(fast.objective - 1.25) < 1e-9);
  assert.ok(Math.abs(slow.objective - 1.25) < 1e-7);
  assert.ok(maxViolation(lp, fast.values).violation < 1e-9);
});

test("an infeasible LP is reported infeasible, and the claim is confirmed by HiGHS", async () => {
  await loadLpSolvers();
  const b = new LinearProgramBuilder(["x"]);
  b.minimise(b.space.term(1, "x"));
  b.add("low", b.space.term(1, "x"), ">=", 2);
  b.add("high", b.space.term(1, "x"), "<=", 1);
  const stats = newSolveStats();
  const r = solveLinearProgram(b.build(), { stats });
  assert.equal(r.status, "infeasible");
  assert.equal(r.solver, "highs");
  assert.equal(stats.confirmedInfeasible, 1);
});

test("when the fast path runs out of time the fallback answers, and the reason is counted", async () => {
  await loadLpSolvers();
  const stats = newSolveStats();
  const r = solveLinearProgram(diet(), { deadlineMs: -1, stats });
  assert.equal(r.status, "optimal");
  assert.equal(r.solver, "highs");
  assert.equal(stats.fallbacks, 1);
  assert.equal(stats.reasons.deadline, 1);
});

test("maxViolation catches a point that breaks a row", () => {
  const lp = diet();
  const bad = maxViolation(lp, Float64Array.from([0.2, 0.2, 0]));
  assert.ok(bad.violation > 0.5);
  assert.equal(bad.where, "cover");
});

test("random feasible LPs: every accepted solution satisfies its constraints and matches HiGHS", async () => {
  await loadLpSolvers();
  const rand = random(7);
  for (let trial = 0; trial < 60; trial++) {
    const n = 2 + Math.floor(rand() * 6);
    const names = Array.from({ length: n }, (_, i) => `x${i}`);
    const b = new LinearProgramBuilder(names);
    const point = names.map(() => rand() * 3);
    let objective = b.space.constant(0);
    for (const name of names) objective = objective.plus(b.space.term(0.1 + rand(), name));
    b.minimise(objective);
    for (let r = 0; r < 2 + Math.floor(rand() * 8); r++) {
      let row = b.space.constant(0);
      let value = 0;
      names.forEach((name, i) => {
        const c = (rand() - 0.3) * 5;
        row = row.plus(b.space.term(c, name));
        value += c * point[i]!;
      });
      // Rows built to hold at `point`, so the LP is feasible (minimising positive costs, so bounded).
      const upper = rand() < 0.5;
      b.add(`r${r}`, row, upper ? "<=" : ">=", upper ? value + rand() : value - rand());
    }
    const lp = b.build();
    const fast = solveLinearProgram(lp);
    const slow = solveLinearProgram(lp, { solver: "highs" });
    assert.equal(fast.status, "optimal", `trial ${trial}`);
    assert.ok(maxViolation(lp, fast.values).violation <= 1e-6);
    assert.ok(Math.abs(fast.objective - slow.objective) <= 1e-6 * Math.max(1, Math.abs(slow.objective)), `trial ${trial}: ${fast.objective} vs ${slow.objective}`);
  }
});
