import assert from "node:assert/strict";
import { test } from "node:test";
import { runBenchCase } from "../../bench/bench-case.js";

test("a bench section that throws prints one line naming it and the error's first line, and the next section runs", async () => {
  const lines: string[] = [];
  const print = (line: string) => lines.push(line);
  const ran: string[] = [];
  const failed = await runBenchCase(
    "FlexGen-compatible search",
    () => {
      ran.push("first");
      throw new Error("javascript-lp-solver failed: pivot-limit\n    at solveLinearProgram (x.js:1:1)");
    },
    print,
  );
  const passed = await runBenchCase(
    "Spillway search",
    async () => {
      ran.push("second");
    },
    print,
  );
  assert.equal(failed, false);
  assert.equal(passed, true);
  assert.deepEqual(ran, ["first", "second"]);
  assert.deepEqual(lines, ["  FlexGen-compatible search: failed: javascript-lp-solver failed: pivot-limit"]);
  // A rejected promise and a thrown non-Error are caught the same way.
  await runBenchCase("async", () => Promise.reject(new Error("\nspillway plan exited 1: boom")), print);
  await runBenchCase(
    "string",
    () => {
      throw "plain";
    },
    print,
  );
  assert.deepEqual(lines.slice(1), ["  async: failed: spillway plan exited 1: boom", "  string: failed: plain"]);
});
