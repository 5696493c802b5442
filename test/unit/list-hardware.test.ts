/** `spillway hardware` lists every shipped profile with its GPU's whole name (none cut short). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { listHardware } from "../../cli/list-commands.js";

test("the text table prints each GPU name whole, as --json gives it", () => {
  const rows = JSON.parse(listHardware(true)) as { name: string; gpu: string }[];
  assert.ok(
    rows.some((r) => r.gpu.length > 25),
    "a name longer than the old 25-character column",
  );
  const lines = listHardware(false).split("\n");
  for (const r of rows) {
    const line = lines.find((l) => l.startsWith(`${r.name} `));
    assert.ok(line, `a line for ${r.name}`);
    assert.ok(line.includes(` ${r.gpu} `), `${r.gpu} whole in: ${line}`);
  }
});
