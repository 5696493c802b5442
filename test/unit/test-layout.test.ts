import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

// npm run test:unit and test:integration run dist/test/unit/ and dist/test/integration/ only: a test file
// anywhere else under test/ would compile and never run.
const TEST_DIR = fileURLToPath(new URL("../../../test/", import.meta.url));
const RUN_FOLDERS = ["unit", "integration"];

function testFiles(dir: string, relative = ""): string[] {
  return readdirSync(join(dir, relative), { withFileTypes: true }).flatMap((entry) => {
    const path = relative === "" ? entry.name : `${relative}/${entry.name}`;
    if (entry.isDirectory()) return testFiles(dir, path);
    return entry.name.endsWith(".test.ts") ? [path] : [];
  });
}

test("every test file sits in test/unit/ or test/integration/, where npm test runs it", () => {
  const files = testFiles(TEST_DIR);
  assert.ok(files.length > 0, `no test files found under ${TEST_DIR}`);
  const elsewhere = files.filter(
    (f) => !RUN_FOLDERS.some((folder) => f.startsWith(`${folder}/`) && !f.slice(folder.length + 1).includes("/")),
  );
  assert.deepEqual(
    elsewhere,
    [],
    "move these into test/unit/ (planner, simulator, kernels, parsers) or test/integration/ (CLI, compilers)",
  );
});
