import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { flexgenConstants } from "../../planner/flexgen/flexgen-constants.js";
import { buildFlexgenLp, flexgenCapacities } from "../../planner/flexgen/flexgen-lp.js";
import { farkasMargin, solveDenseSimplex } from "../../planner/lp/dense-simplex.js";
import {
  type LinearProgram,
  LinearProgramBuilder,
  objectiveValue,
  violatesAnyRow,
} from "../../planner/lp/linear-program.js";
import { solveAtBasis } from "../../planner/lp/reuse-basis.js";
import { loadLpSolvers, solveLinearProgram } from "../../planner/lp/solve-linear-program.js";
import { costConstants } from "../../planner/spillway/cost-constants.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { buildSpillwayLp } from "../../planner/spillway/spillway-lp.js";
import { random } from "../helpers.js";
import { spillwaySettings } from "../lp-fixtures.js";

/** FlexGen's LPs for OPT-30B and OPT-175B on the T4 over GPU batch sizes and block sizes, past the memory limit. */
function flexgenSample(): LinearProgram[] {
  const t4 = resolveHardware("t4");
  const constants = flexgenConstants(t4);
  const capacities = flexgenCapacities(t4, 0.8);
  const lps: LinearProgram[] = [];
  for (const dims of [
    { l: 96, h1: 12288, h2: 49152, nh: 96, s: 512, n: 32 },
    { l: 48, h1: 7168, h2: 28672, nh: 56, s: 256, n: 64 },
  ])
    for (const gbs of [1, 4, 16, 64])
      for (const nb of [1, 3, 10, 40, 160, 700])
        for (const compressWeight of [false, true]) {
          lps.push(buildFlexgenLp({ dims, constants, capacities, gbs, bls: gbs * nb, compressWeight }).lp);
          if (nb === 3)
            lps.push(
              buildFlexgenLp({
                dims,
                constants,
                capacities,
                gbs,
                bls: gbs * nb,
                compressWeight,
                percent: [0, 100, undefined, undefined, 0, 100],
              }).lp,
            );
        }
  return lps;
}

/** Spillway's LPs for OPT-175B and OPT-13B on the T4 over families of choices, GPU batch sizes and nb. */
function spillwaySample(): LinearProgram[] {
  const rates = hardwareRates(resolveHardware("t4"));
  const workload = { promptLen: 512, genLen: 32 };
  const lps: LinearProgram[] = [];
  for (const modelName of ["opt-175b", "opt-13b"]) {
    const model = findCatalogueModel(modelName)!;
    for (const [compress, cpuAttention, activationTier, schedule, overlap] of [
      [false, false, "gpu", "spillway", true],
      [true, true, "cpu", "spillway", true],
      [true, false, "cpu", "flexgen", true],
      [false, true, "gpu", "spillway", false],
    ] as const) {
      const constants = costConstants(model, compress);
      for (const gbs of [1, 8, 48, 256])
        for (const nb of [1, 4, 23, 128, 1000]) {
          const settings = spillwaySettings(gbs, nb, { compress, cpuAttention, activationTier, schedule, overlap });
          lps.push(buildSpillwayLp({ model, rates, workload, settings, constants }));
        }
    }
  }
  return lps;
}

/** Random LPs: feasible ones (rows built to hold at a point), some made infeasible, some unbounded. */
function randomSample(): LinearProgram[] {
  const rand = random(11);
  const lps: LinearProgram[] = [];
  for (let trial = 0; trial < 80; trial++) {
    const n = 2 + Math.floor(rand() * 7);
    const names = Array.from({ length: n }, (_, i) => `x${i}`);
    const b = new LinearProgramBuilder(names);
    const point = names.map(() => rand() * 3);
    const kind = trial % 4; // 0, 1 feasible; 2 infeasible; 3 unbounded
    let objective = b.space.constant(0);
    for (const name of names)
      objective = objective.plus(b.space.term(kind === 3 ? -(0.1 + rand()) : 0.1 + rand(), name));
    b.minimise(objective);
    for (let r = 0; r < 2 + Math.floor(rand() * 8); r++) {
      let row = b.space.constant(0);
      let value = 0;
      names.forEach((name, i) => {
        // Unbounded LPs: only >= rows with non-negative coefficients, so every direction up stays feasible.
        const c = kind === 3 ? rand() * 5 : (rand() - 0.3) * 5;
        row = row.plus(b.space.term(c, name));
        value += c * point[i]!;
      });
      const upper = kind !== 3 && rand() < 0.5;
      b.add(`r${r}`, row, upper ? "<=" : ">=", upper ? value + rand() : value - rand());
    }
    if (rand() < 0.5)
      b.add(
        "sum",
        b.space.sum(1, ...names),
        "=",
        point.reduce((a, x) => a + x, 0),
      );
    if (kind === 2) {
      b.add("low", b.space.term(1, "x0"), ">=", point[0]! + 5);
      b.add("high", b.space.sum(1, "x0", "x1"), "<=", point[0]! + 1);
    }
    lps.push(b.build());
  }
  return lps;
}

test("the dense simplex gives the existing solvers' answer on a wide sample of FlexGen, Spillway and random LPs", async () => {
  const solvers = await loadLpSolvers();
  const counts: Record<string, number> = {};
  for (const [sample, lps] of [
    ["flexgen", flexgenSample()],
    ["spillway", spillwaySample()],
    ["random", randomSample()],
  ] as const) {
    for (const [i, lp] of lps.entries()) {
      const where = `${sample} LP ${i}`;
      const dense = solveDenseSimplex(lp);
      const reference = solveLinearProgram(lp, solvers);
      assert.equal(dense.status, reference.status, where);
      counts[`${sample} ${dense.status}`] = (counts[`${sample} ${dense.status}`] ?? 0) + 1;
      if (dense.status === "optimal") {
        assert.ok(!violatesAnyRow(lp, dense.values, 1e-9), `${where}: the point meets every row`);
        const scale = Math.max(Math.abs(reference.objective), 1e-12);
        assert.ok(
          Math.abs(dense.objective - reference.objective) <= 1e-6 * scale,
          `${where}: objective ${dense.objective} vs ${reference.objective}`,
        );
        // The optimum's basis passes the optimality test and gives the same point.
        assert.ok(dense.basis, `${where}: an optimal basis`);
        const atBasis = solveAtBasis(lp, dense.basis);
        assert.ok(atBasis, `${where}: the basis passes the optimality test`);
        assert.ok(Math.abs(atBasis.objective - dense.objective) <= 1e-9 * scale, where);
      }
      if (dense.status === "infeasible") assert.ok(farkasMargin(lp, dense.farkas!) > 0, `${where}: a certificate`);
    }
  }
  // The sample has each kind of answer.
  for (const key of ["flexgen optimal", "flexgen infeasible", "spillway optimal", "spillway infeasible"])
    assert.ok((counts[key] ?? 0) >= 5, `${key}: ${counts[key]}`);
  for (const key of ["random optimal", "random infeasible", "random unbounded"])
    assert.ok((counts[key] ?? 0) >= 10, `${key}: ${counts[key]}`);
});

test("a Farkas certificate proves infeasibility, and a tampered one proves nothing", () => {
  const b = new LinearProgramBuilder(["x", "y"]);
  b.minimise(b.space.term(1, "x"));
  b.add("low", b.space.sum(1, "x", "y"), ">=", 3);
  b.add("high_x", b.space.term(1, "x"), "<=", 1);
  b.add("high_y", b.space.term(1, "y"), "<=", 1);
  const lp = b.build();
  const dense = solveDenseSimplex(lp);
  assert.equal(dense.status, "infeasible");
  const y = dense.farkas!;
  // x + y >= 3 against x <= 1 and y <= 1: the sum of the rows, 0 >= 1, up to scale.
  assert.ok(y[0]! > 0 && y[1]! < 0 && y[2]! < 0);
  assert.ok(Math.abs(farkasMargin(lp, y) - 1 / 5) < 1e-12, `margin ${farkasMargin(lp, y)}`);
  assert.equal(farkasMargin(lp, [y[0]!, y[1]!, 0]), 0, "without the y row, y can grow: no proof");
  assert.equal(farkasMargin(lp, [-y[0]!, -y[1]!, -y[2]!]), 0, "wrong signs: no proof");
});

test("the optimality test at a basis accepts only a basis that is optimal for the LP it is given", () => {
  // min -x - y  s.t.  x + 2y <= 4,  3x + y <= 6 : optimum at x = 1.6, y = 1.2 (both rows tight).
  const build = (cap: number) => {
    const b = new LinearProgramBuilder(["x", "y"]);
    b.minimise(b.space.sum(-1, "x", "y"));
    b.add("a", b.space.term(1, "x").plus(b.space.term(2, "y")), "<=", 4);
    b.add("b", b.space.term(3, "x").plus(b.space.term(1, "y")), "<=", cap);
    return b.build();
  };
  const lp = build(6);
  const dense = solveDenseSimplex(lp);
  assert.equal(dense.status, "optimal");
  assert.deepEqual(Array.from(dense.basis!.tightRows), [0, 1]);
  const again = solveAtBasis(lp, dense.basis!)!;
  assert.ok(Math.abs(again.values[0]! - 1.6) < 1e-12 && Math.abs(again.values[1]! - 1.2) < 1e-12);
  assert.ok(Math.abs(objectiveValue(lp, again.values) + 2.8) < 1e-12);
  // A little more room in row b moves the optimum along the same basis.
  assert.ok(solveAtBasis(build(6.5), dense.basis!));
  // With row b at 20 its basis point (x = 7.2, y = -1.6) is infeasible: the test refuses it.
  assert.equal(solveAtBasis(build(20), dense.basis!), undefined);
  // A basis that is feasible but not optimal (only row a tight, y basic: x = 0, y = 2) is refused too.
  const suboptimal = { variables: Int32Array.from([1]), tightRows: Int32Array.from([0]) };
  assert.equal(solveAtBasis(lp, suboptimal), undefined);
});
