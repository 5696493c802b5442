/**
 * The README's sample outputs are generated from real runs (scripts/readme-samples.ts): this fails when a
 * block differs from what the command prints now. Numbers marked ~ vary by machine and are compared as
 * any number; measured samples run only with `npm run readme-samples -- --measured`.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  markVarying,
  maskVarying,
  SAMPLES,
  sampleBlocks,
  staleSamples,
  withSamples,
} from "../../scripts/readme-samples.js";

/** The repository root (this file runs from dist/test/integration). */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");

test("every README sample block has a command, and varying numbers are compared as any number", () => {
  const blocks = sampleBlocks(readme);
  assert.deepEqual([...blocks.keys()].sort(), SAMPLES.map((s) => s.id).sort());
  for (const [id, block] of blocks) assert.ok(block.text.trim().length > 0, `README sample ${id} is empty`);
  const marked = markVarying("Searched 3056 LPs in 3949 ms", { varying: [/in \d+ ms$/m] });
  assert.equal(marked, "Searched 3056 LPs in ~3949 ms");
  assert.equal(maskVarying(marked), maskVarying("Searched 3056 LPs in ~12 ms"));
  assert.notEqual(maskVarying(marked), maskVarying("Searched 3057 LPs in ~12 ms"), "other numbers are compared");
  // A measured sample: every number on a line with numbers varies; label-only lines stay as they are.
  assert.equal(
    markVarying("   predicted\nthroughput (token/s)   7.154  +0.8%", { measured: true }),
    "   predicted\nthroughput (token/s)   ~7.154  ~+0.8%",
  );
  assert.equal(
    markVarying("busy h2d   1.20 ms", { measured: true }),
    "busy h2d   ~1.20 ms",
    "digits inside words are not numbers",
  );
  // A block that differs is found, and rewriting puts the fresh text in its place.
  const id = "plan-default";
  const block = blocks.get(id)!;
  const changed = block.text.replace(/throughput +[0-9.]+/, "throughput   9.999");
  assert.notEqual(changed, block.text);
  assert.deepEqual(staleSamples(readme, new Map([[id, changed]])), [id]);
  const rewritten = withSamples(readme, new Map([[id, changed]]));
  assert.equal(sampleBlocks(rewritten).get(id)!.text, changed);
  assert.deepEqual(staleSamples(rewritten, new Map([[id, changed]])), []);
});

test("the README's samples are what the commands print now", () => {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, "dist", "scripts", "readme-samples.js"), "--check"], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, `${r.stderr}\nregenerate with: npm run readme-samples`);
});
