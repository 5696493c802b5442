import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { flexgenConstants } from "../../planner/flexgen/flexgen-constants.js";
import { buildFlexgenLp, flexgenCapacities } from "../../planner/flexgen/flexgen-lp.js";
import { VariableSpace } from "../../planner/lp/affine.js";
import {
  type LinearProgram,
  LinearProgramBuilder,
  maxViolation,
  violatesAnyRow,
} from "../../planner/lp/linear-program.js";
import {
  type LpSolvers,
  loadLpSolvers,
  newSolveStats,
  solveLinearProgram,
} from "../../planner/lp/solve-linear-program.js";
import { random } from "../helpers.js";
import { dietLp } from "../lp-fixtures.js";

const diet = dietLp;

/** FlexGen's OPT-175B LPs on the T4 (gbs 1, nb 1..count), the size the searches solve. */
function flexgenLps(count: number) {
  const t4 = resolveHardware("t4");
  const constants = flexgenConstants(t4);
  const dims = { l: 96, h1: 12288, h2: 49152, nh: 96, s: 512, n: 32 };
  const capacities = flexgenCapacities(t4, 0.8);
  return Array.from(
    { length: count },
    (_, i) => buildFlexgenLp({ dims, constants, capacities, gbs: 1, bls: i + 1, compressWeight: false }).lp,
  );
}

test("both solvers find the same optimum of a small LP", async () => {
  const solvers = await loadLpSolvers();
  const lp = diet();
  const fast = solveLinearProgram(lp, solvers, { solver: "javascript-lp-solver" });
  const slow = solveLinearProgram(lp, solvers, { solver: "highs" });
  assert.equal(fast.status, "optimal");
  assert.equal(slow.status, "optimal");
  assert.ok(Math.abs(fast.objective - 1.25) < 1e-9);
  assert.ok(Math.abs(slow.objective - 1.25) < 1e-7);
  assert.ok(maxViolation(lp, fast.values).violation < 1e-9);
});

test("an infeasible LP is reported infeasible, and the claim is confirmed by HiGHS", async () => {
  const solvers = await loadLpSolvers();
  const b = new LinearProgramBuilder(["x"]);
  b.minimise(b.space.term(1, "x"));
  b.add("low", b.space.term(1, "x"), ">=", 2);
  b.add("high", b.space.term(1, "x"), "<=", 1);
  const stats = newSolveStats();
  const r = solveLinearProgram(b.build(), solvers, { stats });
  assert.equal(r.status, "infeasible");
  assert.equal(r.solver, "highs");
  assert.equal(stats.confirmedInfeasible, 1);
});

test("when the fast path reaches its pivot bound the fallback answers, and the reason is counted", async () => {
  const solvers = await loadLpSolvers();
  const stats = newSolveStats();
  const r = solveLinearProgram(diet(), solvers, { maxPivots: 0, stats });
  assert.equal(r.status, "optimal");
  assert.equal(r.solver, "highs");
  assert.ok(Math.abs(r.objective - 1.25) < 1e-7);
  assert.deepEqual(stats, {
    fastPath: 0,
    fallbacks: 1,
    confirmedInfeasible: 0,
    reasons: { "pivot-limit": 1 },
    wallClockLimitHits: 0,
  });
  // The bound is a pivot count: the same LP under its default bound is the fast path's.
  const again = newSolveStats();
  assert.equal(solveLinearProgram(diet(), solvers, { stats: again }).solver, "javascript-lp-solver");
  assert.equal(again.fastPath, 1);
});

test("the fast path reads no clock: with time racing an hour per reading, the searches' LPs get the same answers", async () => {
  const solvers = await loadLpSolvers();
  const lps = flexgenLps(60);
  const solveAll = () => {
    const stats = newSolveStats();
    const answers = lps.map((lp) => solveLinearProgram(lp, solvers, { stats }));
    return {
      stats,
      answers: answers.map((a) => ({ status: a.status, solver: a.solver, values: Array.from(a.values) })),
    };
  };
  const idle = solveAll();
  let clockMs = performance.now();
  const performanceNow = mock.method(performance, "now", () => (clockMs += 3_600_000));
  const dateNow = mock.method(Date, "now", () => Math.round((clockMs += 3_600_000)));
  let racing: ReturnType<typeof solveAll>;
  try {
    racing = solveAll();
  } finally {
    performanceNow.mock.restore();
    dateNow.mock.restore();
  }
  assert.deepEqual(racing, idle);
  assert.equal(
    idle.stats.fastPath + idle.stats.confirmedInfeasible,
    lps.length,
    "the fast path answered every LP (or HiGHS confirmed its infeasibility)",
  );
});

test("HiGHS reaching its wall-clock safety net is a counted 'no answer', not an error", async () => {
  const solvers = await loadLpSolvers();
  const stats = newSolveStats();
  const r = solveLinearProgram(diet(), solvers, { maxPivots: 0, safetyNetSeconds: 0, stats });
  assert.equal(r.status, "wall-clock-limit");
  assert.equal(r.solver, "highs");
  assert.equal(stats.wallClockLimitHits, 1);
  assert.equal(stats.fallbacks, 1);
  // The limit belonged to that LP: the next one gets the whole safety net again.
  const next = solveLinearProgram(diet(), solvers, { solver: "highs", stats });
  assert.equal(next.status, "optimal");
  assert.equal(stats.wallClockLimitHits, 1);
});

test("HiGHS's clock restarts for every LP, so time spent on earlier LPs never counts against a later one", async () => {
  // HiGHS's time_limit counts every run of a model since its clock was last reset: solver state is
  // passed in, so a recording model shows the reset before each LP's runs.
  const solvers = await loadLpSolvers();
  const calls: string[] = [];
  const model = solvers.highsModel;
  const recorded = new Proxy(model, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        calls.push(String(key));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  const recording: LpSolvers = { highs: solvers.highs, highsModel: recorded };
  for (const lp of [diet(), ...flexgenLps(3)]) solveLinearProgram(lp, recording, { solver: "highs" });
  const lpStarts = calls.flatMap((c, i) => (c === "passModel" ? [i] : []));
  assert.equal(lpStarts.length, 4);
  for (const [n, start] of lpStarts.entries()) {
    const end = lpStarts[n + 1] ?? calls.length;
    const ofThisLp = calls.slice(start, end);
    assert.ok(ofThisLp.includes("run"), `LP ${n} ran`);
    assert.ok(
      ofThisLp.indexOf("zeroAllClocks") >= 0 && ofThisLp.indexOf("zeroAllClocks") < ofThisLp.indexOf("run"),
      `LP ${n}: ${ofThisLp.join(", ")}`,
    );
  }
});

test("maxViolation catches a point that breaks a row", () => {
  const lp = diet();
  const bad = maxViolation(lp, Float64Array.from([0.2, 0.2, 0]));
  assert.ok(bad.violation > 0.5);
  assert.equal(bad.where, "cover");
});

test("random feasible LPs: every accepted solution satisfies its constraints and matches HiGHS", async () => {
  const solvers = await loadLpSolvers();
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
    const fast = solveLinearProgram(lp, solvers);
    const slow = solveLinearProgram(lp, solvers, { solver: "highs" });
    assert.equal(fast.status, "optimal", `trial ${trial}`);
    assert.ok(maxViolation(lp, fast.values).violation <= 1e-6);
    assert.ok(
      Math.abs(fast.objective - slow.objective) <= 1e-6 * Math.max(1, Math.abs(slow.objective)),
      `trial ${trial}: ${fast.objective} vs ${slow.objective}`,
    );
  }
});

test("violatesAnyRow decides as maxViolation does: rows of each kind, negative, NaN, infinite and missing values", () => {
  const rand = random(11);
  const ops = ["<=", ">=", "="] as const;
  const odd = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
  let broken = 0;
  let held = 0;
  for (let trial = 0; trial < 40; trial++) {
    const n = 1 + Math.floor(rand() * 6);
    const variables = Array.from({ length: n }, (_, i) => `x${i}`);
    const lp: LinearProgram = {
      variables,
      objective: variables.map(() => rand()),
      constraints: Array.from({ length: 1 + Math.floor(rand() * 6) }, (_, r) => ({
        name: `r${r}`,
        op: ops[Math.floor(rand() * ops.length)]!,
        coefficients: variables.map(() => (rand() - 0.5) * 10 ** Math.floor(rand() * 6 - 2)),
        rhs: (rand() - 0.3) * 10 ** Math.floor(rand() * 6 - 2),
      })),
    };
    for (let k = 0; k < 25; k++) {
      const length = rand() < 0.1 ? Math.floor(rand() * n) : n;
      const values = Array.from({ length }, () =>
        rand() < 0.03 ? odd[Math.floor(rand() * odd.length)]! : (rand() - 0.1) * 4,
      );
      for (const tolerance of [0, 1e-6, 0.1, 10]) {
        const expected = !(maxViolation(lp, values).violation <= tolerance);
        assert.equal(violatesAnyRow(lp, values, tolerance), expected, `trial ${trial}, values ${values}, ${tolerance}`);
        if (expected) broken++;
        else held++;
      }
    }
  }
  // Both answers were exercised.
  assert.ok(broken > 100 && held > 100, `${broken} broken, ${held} held`);
});

test("Affine times and minus give the very numbers of their closure forms (map, plus of times(-1))", () => {
  const rand = random(3);
  const space = new VariableSpace(["a", "b", "c", "d"]);
  const special = [0, -0, 1e-300, -1e300, 0.1, 1 / 3];
  const pick = () => (rand() < 0.3 ? special[Math.floor(rand() * special.length)]! : (rand() - 0.5) * 1e3);
  const affine = () => {
    const e = space.constant(pick());
    for (let i = 0; i < e.coefficients.length; i++) e.coefficients[i] = pick();
    return e;
  };
  const same = (x: number, y: number) => assert.ok(Object.is(x, y), `${x} vs ${y}`);
  for (let trial = 0; trial < 200; trial++) {
    const x = affine();
    const y = affine();
    const factor = pick();
    const scaled = x.times(factor);
    same(scaled.constant, x.constant * factor);
    x.coefficients.forEach((c, i) => same(scaled.coefficients[i]!, c * factor));
    const difference = x.minus(y);
    const reference = x.plus(y.times(-1));
    same(difference.constant, reference.constant);
    reference.coefficients.forEach((c, i) => same(difference.coefficients[i]!, c));
    assert.equal(difference.space, x.space);
  }
});
