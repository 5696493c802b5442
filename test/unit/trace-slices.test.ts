import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { formatComparison } from "../../cli/format-comparison.js";
import { withCapacities } from "../../core/hardware-profile.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { compare } from "../../runtime/compare.js";
import { synthesizeOptWeights } from "../../runtime/synth-weights.js";
import type { ChromeTraceEvent } from "../../simulator/chrome-trace-writer.js";
import { compareTraceSlices, traceSlices } from "../../simulator/trace-slices.js";
import { TINY_OPT } from "../helpers.js";

const slice = (name: string, token: number, dur: number): ChromeTraceEvent => ({
  ph: "X",
  name,
  pid: 1,
  tid: 1,
  ts: 0,
  dur,
  args: { token, layer: 0, batch: 0 },
});

test("trace slices: count, median and total per kind and phase, in seconds; metadata and counters are not slices", () => {
  const figures = traceSlices([
    { ph: "M", name: "process_name", pid: 1, tid: 0, args: { name: "GPU" } },
    slice("compute", 0, 10),
    slice("compute", 1, 1),
    slice("compute", 2, 3),
    slice("compute", 3, 2),
    slice("compute", 4, 100),
    { ph: "C", name: "memory", pid: 5, tid: 0, ts: 0, args: { gpu: 1 } },
  ]);
  assert.deepEqual([...figures.keys()].length, 2);
  const decode = [...figures.entries()].find(([k]) => k.endsWith("compute") && k.startsWith("decode"))![1];
  assert.equal(decode.count, 4);
  assert.equal(decode.medianSeconds, 2.5e-6); // (2 + 3) / 2 us
  assert.equal(decode.totalSeconds, 106e-6);
  const rows = compareTraceSlices(
    [slice("compute", 1, 5), slice("load-cache", 1, 50)],
    [slice("compute", 1, 40), slice("store-cache", 1, 7)],
  );
  // The largest measured total first; a kind only one side has keeps the other side undefined.
  assert.deepEqual(
    rows.map((r) => [r.name, r.phase, r.simulated?.totalSeconds, r.measured?.totalSeconds]),
    [
      ["compute", "decode", 5e-6, 40e-6],
      ["store-cache", "decode", undefined, 7e-6],
      ["load-cache", "decode", 50e-6, undefined],
    ],
  );
});

const dir = mkdtempSync(join(tmpdir(), "spillway-trace-slices-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("compare with slices lines up the simulated and the measured trace of the same schedule: every copy of the cache counted alike on both sides", async () => {
  synthesizeOptWeights(TINY_OPT, dir, { seed: 1 });
  const hardware = withCapacities(resolveHardware("t4"), { gpu: 4 * 2 ** 20, cpu: 2 ** 30, disk: 2 ** 30 });
  const request = {
    model: TINY_OPT,
    hardware,
    workload: { promptLen: 8, genLen: 4 },
    fixed: { gbs: 2, nb: 2, percent: [0, 100, 0, 100, 100, 0] as [number, number, number, number, number, number] },
    weightsDir: dir,
    offloadDir: dir,
  };
  const without = await compare(request);
  assert.equal(without.comparison.slices, undefined);
  const { comparison } = await compare({ ...request, slices: true });
  const slices = comparison.slices!;
  const kind = (name: string, phase: string) => slices.find((s) => s.name === name && s.phase === phase);
  for (const [name, phase] of [
    ["compute", "prefill"],
    ["compute", "decode"],
    ["load-cache", "decode"],
    ["store-cache", "decode"],
  ] as const) {
    const row = kind(name, phase);
    assert.ok(row?.simulated && row.measured, `${name} (${phase}) on both sides`);
    assert.ok(row.measured.totalSeconds > 0 && row.simulated.totalSeconds > 0);
  }
  // One schedule generator feeds both: each step loads and stores its batch's cache once.
  for (const name of ["load-cache", "store-cache"])
    assert.equal(kind(name, "decode")!.measured!.count, kind(name, "decode")!.simulated!.count, name);
  assert.match(formatComparison(comparison), /slices \(per kind[\s\S]*compute \(decode\)/);
});
