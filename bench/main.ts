/**
 * `npm run bench`: speed targets measured side by side in one run, printed as numbers and ratios.
 * - FlexGen-compatible OPT-175B search (target: under 100 ms; FlexGen's own, CBC through PuLP, takes
 *   about 7 s for its 1,071 LPs on this class of machine), cold in a fresh CLI process and warm in-process.
 * - LP solves per second on the fast path and on the HiGHS fallback, on the same LPs.
 * - Spillway's own search for the default plan.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { resolveHardware } from "../core/resolve-hardware.js";
import { findCatalogueModel } from "../models/catalogue.js";
import { flexgenConstants } from "../planner/flexgen/flexgen-constants.js";
import { buildFlexgenLp } from "../planner/flexgen/flexgen-lp.js";
import { loadLpSolvers, solveLinearProgram } from "../planner/lp/solve-linear-program.js";
import { planSync } from "../planner/plan.js";

const CLI = fileURLToPath(new URL("../cli/main.js", import.meta.url));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const FLEXGEN_REFERENCE_MS = 7000;

function coldCliSearchMs(args: string[]): { ms: number; lpSolves: number } {
  const r = spawnSync(process.execPath, [CLI, "plan", ...args, "--json"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(r.stderr);
  const plan = JSON.parse(r.stdout);
  return { ms: plan.search.elapsedMs, lpSolves: plan.search.lpSolves };
}

await loadLpSolvers();
const t4 = resolveHardware("t4");
const opt175b = findCatalogueModel("opt-175b")!;
const workload = { promptLen: 512, genLen: 32 };

console.log("FlexGen-compatible search, OPT-175B on the T4 (prompt 512, gen 32)");
const cold = [0, 1, 2].map(() => coldCliSearchMs(["--cost-model", "flexgen"]));
const warm: number[] = [];
for (let i = 0; i < 7; i++) warm.push(planSync({ model: opt175b, hardware: t4, workload, costModel: "flexgen" }).search.elapsedMs);
const coldMs = median(cold.map((c) => c.ms));
const warmMs = median(warm);
console.log(`  cold (fresh process, median of 3): ${coldMs.toFixed(1)} ms   warm (median of 7): ${warmMs.toFixed(1)} ms   target 100 ms`);
console.log(`  distinct LPs solved: ${cold[0]!.lpSolves}   speed-up over FlexGen's ~${FLEXGEN_REFERENCE_MS / 1000} s: ${(FLEXGEN_REFERENCE_MS / coldMs).toFixed(0)}x cold, ${(FLEXGEN_REFERENCE_MS / warmMs).toFixed(0)}x warm`);
const compressed = median([0, 1, 2].map(() => planSync({ model: opt175b, hardware: t4, workload, costModel: "flexgen", fixed: { compressWeight: true } }).search.elapsedMs));
console.log(`  with --compress-weight, warm: ${compressed.toFixed(1)} ms`);

console.log("\nLP solves per second on FlexGen's OPT-175B LPs (gbs 1, nb 1..400), same LPs for both solvers");
const constants = flexgenConstants(t4);
const dims = { l: 96, h1: 12288, h2: 49152, nh: 96, s: 512, n: 32 };
const capacities = { gpuBytes: t4.capacityBytes.gpu.value, cpuBytes: t4.capacityBytes.cpu.value, diskBytes: t4.capacityBytes.disk.value, alphaGpu: 0.8, alphaCpu: 0.8, alphaDisk: 0.8 };
const lps = Array.from({ length: 400 }, (_, i) => buildFlexgenLp({ dims, constants, capacities, gbs: 1, bls: i + 1, compressWeight: false }).lp);
const rate = (solver: "javascript-lp-solver" | "highs") => {
  for (const lp of lps.slice(0, 50)) solveLinearProgram(lp, { solver });
  const start = performance.now();
  for (const lp of lps) solveLinearProgram(lp, { solver });
  return lps.length / ((performance.now() - start) / 1000);
};
const fast = rate("javascript-lp-solver");
const fallback = rate("highs");
console.log(`  javascript-lp-solver: ${fast.toFixed(0)} LP/s   HiGHS: ${fallback.toFixed(0)} LP/s   ratio ${(fast / fallback).toFixed(1)}x`);

console.log("\nSpillway cost model search, default plan (OPT-175B on the T4)");
const spillwayCold = coldCliSearchMs([]);
const spillwayWarm = median([0, 1, 2].map(() => planSync({ model: opt175b, hardware: t4, workload }).search.elapsedMs));
console.log(`  cold: ${spillwayCold.ms.toFixed(0)} ms (${spillwayCold.lpSolves} LPs)   warm: ${spillwayWarm.toFixed(0)} ms`);
