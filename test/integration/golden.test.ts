import assert from "node:assert/strict";
import { availableParallelism } from "node:os";
import { after, test } from "node:test";
import { Worker } from "node:worker_threads";
import { GOLDEN_CASES, PLAN_CASES } from "../golden/cases.js";
import {
  type CaseResult,
  firstDifference,
  type GoldenOutput,
  GoldenRunner,
  readGoldenFile,
} from "../golden/run-case.js";

// The golden regression cases (test/golden/cases.ts): the CLI's JSON outputs, wall-clock fields removed
// (REMOVED_FIELDS in test/golden/run-case.ts), must equal those recorded from the code before the redesign
// (scripts/capture-golden.mjs), on an unloaded machine and with every core busy.
const golden = readGoldenFile();
const runner = new GoldenRunner();
after(() => runner.close());

function describeDifference(name: string, expected: GoldenOutput, actual: GoldenOutput): string | undefined {
  const difference = firstDifference(expected, actual);
  if (difference === undefined) return undefined;
  const show = (x: unknown) => JSON.stringify(x)?.slice(0, 300);
  return `${name}: first difference at ${difference.path}: golden ${show(difference.expected)}, now ${show(difference.actual)}`;
}

test("every golden case has a stored output and every stored output a case", () => {
  const names = GOLDEN_CASES.map((c) => c.name);
  assert.equal(new Set(names).size, names.length, "case names are unique");
  assert.ok(names.length >= 30, `at least 30 cases (${names.length})`);
  assert.deepEqual(
    names.filter((n) => !(n in golden.cases)),
    [],
    "cases without a stored output (run scripts/capture-golden.mjs)",
  );
  assert.deepEqual(
    Object.keys(golden.cases).filter((n) => !names.includes(n)),
    [],
    "stored outputs without a case",
  );
});

/** search.lpFallbacks of each plan case run without added load, for the load test (the golden file leaves it out). */
const unloadedLpFallbacks = new Map<string, number | undefined>();

/**
 * Every case's output, computed by as many child processes at a time as there are cores (the outputs do
 * not depend on the load: the test at the end checks that), each test then awaiting its own.
 */
function runAllCases(): Map<string, Promise<CaseResult>> {
  const results = new Map<string, Promise<CaseResult>>();
  const lanes = Math.max(1, availableParallelism());
  const queue = [...GOLDEN_CASES];
  const settle = new Map<string, { resolve: (r: CaseResult) => void; reject: (e: unknown) => void }>();
  for (const goldenCase of GOLDEN_CASES) {
    const result = new Promise<CaseResult>((resolve, reject) => settle.set(goldenCase.name, { resolve, reject }));
    result.catch(() => {}); // reported by the case's own test when it awaits it
    results.set(goldenCase.name, result);
  }
  const lane = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const handlers = settle.get(next.name)!;
      await runner.runAsync(next).then(handlers.resolve, handlers.reject);
    }
  };
  for (let i = 0; i < lanes; i++) void lane();
  return results;
}
let caseResults: Map<string, Promise<CaseResult>> | undefined;

for (const goldenCase of GOLDEN_CASES) {
  test(`golden ${goldenCase.kind}: ${goldenCase.name}`, async () => {
    const expected = golden.cases[goldenCase.name];
    assert.ok(expected, `no stored output for ${goldenCase.name}`);
    caseResults ??= runAllCases();
    const { lpFallbacks, ...actual } = await caseResults.get(goldenCase.name)!;
    unloadedLpFallbacks.set(goldenCase.name, lpFallbacks);
    const message = describeDifference(goldenCase.name, expected, actual);
    assert.equal(message, undefined, message);
  });
}

/** Busy threads, one per core, each spinning until terminated; resolves once every one is running. */
async function saturateCores(count: number): Promise<Worker[]> {
  const source = "require('node:worker_threads').parentPort.postMessage('spinning'); for (;;) {}";
  const workers = Array.from({ length: count }, () => new Worker(source, { eval: true }));
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise((resolve, reject) => {
            w.once("message", resolve);
            w.once("error", reject);
          }),
      ),
    );
  } catch (error) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw error;
  }
  return workers;
}

/**
 * The plan cases rerun under load: every twelfth one, and the first with FlexGen's cost model (the search
 * whose LPs once hit a wall-clock limit under load). The search's only clock is a safety net
 * (search.wallClockLimitHits), so a sample shows load independence as well as all of them would
 * (test/integration/planning-under-load.test.ts plans more under load, in process).
 */
const FIRST_FLEXGEN = PLAN_CASES.findIndex((c) => c.kind === "plan" && c.args.includes("flexgen"));
const LOAD_CASES = PLAN_CASES.filter((_, i) => i % 12 === 0 || i === FIRST_FLEXGEN);

test("with every core saturated by busy threads, a sample of the plan cases still gives the golden outputs", async () => {
  const workers = await saturateCores(availableParallelism());
  const differences: string[] = [];
  try {
    for (const goldenCase of LOAD_CASES) {
      const expected = golden.cases[goldenCase.name];
      assert.ok(expected, `no stored output for ${goldenCase.name}`);
      const { lpFallbacks, ...actual } = runner.run(goldenCase);
      const message = describeDifference(goldenCase.name, expected, actual);
      if (message !== undefined) differences.push(message);
      // The LP fallbacks, left out of the golden outputs, must not depend on the load either.
      if (unloadedLpFallbacks.has(goldenCase.name) && unloadedLpFallbacks.get(goldenCase.name) !== lpFallbacks) {
        differences.push(
          `${goldenCase.name}: search.lpFallbacks ${lpFallbacks} under load, ${unloadedLpFallbacks.get(goldenCase.name)} without`,
        );
      }
    }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  assert.deepEqual(
    differences,
    [],
    `${differences.length} of ${LOAD_CASES.length} plan cases differ under load:\n${differences.join("\n")}`,
  );
});
