#!/usr/bin/env node
// Records the golden regression outputs (test/golden/outputs.json) from a built CLI.
//
//   npx tsc -p tsconfig.json && node scripts/capture-golden.mjs [--cli PATH/dist/cli/main.js] [--out FILE] [--label TEXT] [--only SUBSTRING]
//
// The case list and the runner come from this checkout's build (dist/test/golden/); --cli points the runs at
// another build, e.g. the code before a redesign checked out in a separate worktree. Wall-clock fields are
// removed (REMOVED_FIELDS in test/golden/run-case.ts says which and why) and stored in the file for reference.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = fileURLToPath(new URL("..", import.meta.url));
const { values } = parseArgs({
  options: {
    cli: { type: "string" },
    out: { type: "string" },
    label: { type: "string" },
    only: { type: "string" },
  },
});

const { GOLDEN_CASES } = await import(new URL("../dist/test/golden/cases.js", import.meta.url).href).catch((e) => {
  console.error(
    `capture-golden: cannot load dist/test/golden/cases.js (build first: npx tsc -p tsconfig.json): ${e.message}`,
  );
  process.exit(2);
});
const { DEFAULT_CLI, GOLDEN_OUTPUTS_PATH, GoldenRunner, REMOVED_FIELDS } = await import(
  new URL("../dist/test/golden/run-case.js", import.meta.url).href
);

const cli = values.cli ?? DEFAULT_CLI;
const out = values.out ?? GOLDEN_OUTPUTS_PATH;
const cases = GOLDEN_CASES.filter((c) => values.only === undefined || c.name.includes(values.only));
const runner = new GoldenRunner(cli);
const outputs = {};
try {
  for (const goldenCase of cases) {
    const started = performance.now();
    const { exitCode, output } = runner.run(goldenCase);
    outputs[goldenCase.name] = { exitCode, output };
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    console.error(
      `${seconds.padStart(6)} s  exit ${outputs[goldenCase.name].exitCode}  ${goldenCase.kind}: ${goldenCase.name}`,
    );
  }
} finally {
  runner.close();
}
const file = { capturedFrom: values.label ?? cli, removedFields: REMOVED_FIELDS, cases: outputs };
writeFileSync(out, `${JSON.stringify(file, null, 2)}\n`);
console.error(`${cases.length} cases from ${cli} written to ${out.startsWith(root) ? out.slice(root.length) : out}`);
