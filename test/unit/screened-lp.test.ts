import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { flexgenConstants } from "../../planner/flexgen/flexgen-constants.js";
import { flexgenCapacities } from "../../planner/flexgen/flexgen-lp.js";
import { chooseBest, searchFlexgen } from "../../planner/flexgen/flexgen-search.js";
import { LinearProgramBuilder } from "../../planner/lp/linear-program.js";
import {
  newScreenStats,
  SCREEN_COMPARISON_MARGIN,
  screenedDifference,
  screenLinearProgram,
} from "../../planner/lp/screened-lp.js";
import { loadLpSolvers, newSolveStats, solveLinearProgram } from "../../planner/lp/solve-linear-program.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { searchSpillway } from "../../planner/spillway/spillway-search.js";
import { random } from "../helpers.js";
import { dietLp } from "../lp-fixtures.js";

test("a screened comparison uses the exact figures exactly when the screened ones are within the margin", () => {
  let exactCalls = 0;
  const exact = (x: number) => () => {
    exactCalls++;
    return x;
  };
  // Clearly apart: decided by the screened figures, no exact solve.
  assert.ok(screenedDifference(2, 1, exact(2), exact(1)) > 0);
  assert.equal(exactCalls, 0);
  // Within the margin: the exact figures decide, even against the screened order.
  const close = 1 + SCREEN_COMPARISON_MARGIN / 2;
  assert.ok(screenedDifference(close, 1, exact(1), exact(1.0000001)) < 0);
  assert.equal(exactCalls, 2);
  assert.equal(screenedDifference(1, 1, exact(3), exact(3)), 0);
});

test("a screened LP's exact figures are the existing solvers' to the last bit; unsettled LPs are left to them", async () => {
  const solvers = await loadLpSolvers();
  const lp = dietLp();
  const screenStats = newScreenStats();
  const context = { solvers, solveStats: newSolveStats(), screenStats };
  const screened = screenLinearProgram(lp, context);
  assert.equal(screened.status, "optimal");
  assert.equal(screenStats.screened, 1);
  assert.equal(screenStats.referenceSolves, 0, "no exact solve until asked");
  assert.deepEqual(screened.exact(), solveLinearProgram(lp, solvers));
  assert.equal(screenStats.referenceSolves, 1);
  screened.exact();
  assert.equal(screenStats.referenceSolves, 1, "solved once");

  // Unbounded: the dense simplex does not settle it; the existing solvers answer.
  const u = new LinearProgramBuilder(["x", "y"]);
  u.minimise(u.space.term(-1, "x"));
  u.add("r", u.space.term(1, "x").minus(u.space.term(1, "y")), "<=", 1);
  const unbounded = screenLinearProgram(u.build(), context);
  assert.equal(unbounded.status, solveLinearProgram(u.build(), solvers).status);
  assert.equal(screenStats.deferred.unbounded, 1);

  // Barely infeasible (by 1e-9 of the right-hand side): too thin a certificate to stand alone.
  const thin = new LinearProgramBuilder(["x"]);
  thin.minimise(thin.space.term(1, "x"));
  thin.add("low", thin.space.term(1, "x"), ">=", 1 + 1e-9);
  thin.add("high", thin.space.term(1, "x"), "<=", 1);
  const barely = screenLinearProgram(thin.build(), context);
  assert.equal(screenStats.deferred["thin-certificate"], 1);
  assert.equal(barely.status, solveLinearProgram(thin.build(), solvers).status);
});

test("chooseBest: checking the last record first gives FlexGen's loop's answer for any verdicts", () => {
  const rand = random(5);
  for (let trial = 0; trial < 400; trial++) {
    const values = Array.from({ length: 1 + Math.floor(rand() * 12) }, () => Math.floor(rand() * 6));
    const verdicts = values.map(() => rand() < 0.6);
    const beats = (a: number, b: number) => values[a]! > values[b]!;
    const accept = (i: number) => verdicts[i]!;
    // FlexGen's loop: each candidate that beats the best so far is checked, and kept if it passes.
    let loop: number | undefined;
    const checkedByLoop = new Set<number>();
    for (let i = 0; i < values.length; i++)
      if (loop === undefined || beats(i, loop)) {
        checkedByLoop.add(i);
        if (accept(i)) loop = i;
      }
    const checked: number[] = [];
    const indices = values.map((_, i) => i);
    const chosen = chooseBest(indices, beats, (i) => {
      checked.push(i);
      return accept(i);
    });
    assert.equal(chosen, loop, `values ${values} verdicts ${verdicts}`);
    // Only candidates the loop checks are checked.
    for (const i of checked) assert.ok(checkedByLoop.has(i), `checked ${i}, which the loop never checks`);
  }
});

test("the searches choose with the LP screen what they choose with the existing solvers alone", async () => {
  const solvers = await loadLpSolvers();
  const t4 = resolveHardware("t4");
  const rates = hardwareRates(t4);
  const workload = { promptLen: 256, genLen: 16 };
  // Two of the searches' shapes, kept small (the reference path solves every LP with the existing solvers).
  for (const [name, fixed] of [
    ["opt-1.3b", { gbs: 8, compressWeight: true, cpuAttention: true }],
    ["opt-13b", { gbs: 16, compressCache: false }],
  ] as const) {
    const model = findCatalogueModel(name)!;
    {
      const input = { model, rates, workload, schedule: "spillway" as const, solvers, fixed };
      const screened = searchSpillway(input);
      const reference = searchSpillway({ ...input, referenceLpsOnly: true });
      assert.deepEqual(screened.best, reference.best, `spillway ${name} ${JSON.stringify(fixed)}`);
      assert.equal(screened.lpSolves, reference.lpSolves);
      assert.equal(screened.exactEvaluations, reference.exactEvaluations);
      assert.ok(
        screened.screenStats.referenceSolves < screened.lpSolves / 4,
        "most LPs never reach the existing solvers",
      );
    }
  }
  const constants = flexgenConstants(t4);
  for (const [dims, capacityScale] of [[{ l: 48, h1: 7168, h2: 28672, nh: 56, s: 512, n: 32 }, 1]] as const) {
    const t4Capacities = flexgenCapacities(t4, 0.8);
    const capacities = {
      ...t4Capacities,
      gpuBytes: t4Capacities.gpuBytes * capacityScale,
      cpuBytes: t4Capacities.cpuBytes * capacityScale,
    };
    // A check that rejects some candidates (odd GPU batch counts) exercises the full replay.
    const accepted: string[][] = [[], []];
    const input = (i: number) => ({
      dims,
      constants,
      capacities,
      compressWeight: false,
      solvers,
      accept: (c: { gbs: number; nb: number }) => {
        accepted[i]!.push(`${c.gbs}x${c.nb}`);
        return c.nb % 2 === 0;
      },
    });
    const screened = searchFlexgen(input(0));
    const reference = searchFlexgen({ ...input(1), referenceLpsOnly: true });
    assert.deepEqual(screened.best, reference.best, `flexgen h1 ${dims.h1}`);
    assert.equal(screened.lpSolves, reference.lpSolves);
    assert.ok(screened.best, "a policy was found");
    assert.ok(accepted[0]!.length > 1, "the last record was rejected and the loop replayed");
    assert.ok(accepted[0]!.length <= accepted[1]!.length);
  }
});
