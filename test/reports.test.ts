import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveHardware } from "../core/resolve-hardware.js";
import { findCatalogueModel } from "../models/catalogue.js";
import { plan } from "../planner/plan.js";
import { placementChart, placementRows } from "../reports/placement-chart.js";
import { renderChart } from "../reports/render-chart.js";

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

test("placement chart: bars add up to each kind's bytes, split by the plan's fractions", async () => {
  const p = await plan({ model: findCatalogueModel("opt-6.7b")!, hardware: resolveHardware("t4"), workload: { promptLen: 256, genLen: 16 }, fixed: { gbs: 8, nb: 2, percent: [40, 60, 0, 100, 100, 0] } });
  const rows = placementRows(p);
  const of = (data: string, tier: string) => rows.find((r) => r.data === data && r.tier === tier)!.gib;
  const weights = of("weights", "gpu") + of("weights", "cpu") + of("weights", "disk");
  assert.ok(Math.abs(of("weights", "gpu") / weights - p.policy.weights.gpu) < 1e-12);
  assert.ok(Math.abs(weights - (p.modelSpec.numLayers * 12 * 4096 * 4096 * 2) / 2 ** 30) / weights < 0.05, "about 6.7B fp16 parameters");
  assert.equal(of("KV cache", "gpu"), 0);
  assert.ok(of("KV cache", "cpu") > 0);
});

test("a chart renders headlessly to a valid SVG and PNG with its text", async () => {
  const p = await plan({ model: findCatalogueModel("opt-1.3b")!, hardware: resolveHardware("t4"), workload: { promptLen: 64, genLen: 8 } });
  const r = await renderChart(placementChart(p));
  assert.match(r.svg, /^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  for (const text of ["Where opt-1.3b lives", "GiB", "weights", "KV cache", "gpu", "disk"]) assert.ok(r.svg.includes(text), text);
  assert.ok((r.svg.match(/<path/g) ?? []).length >= 3, "bars drawn");
  assert.deepEqual([...r.png.subarray(0, 8)], PNG_SIGNATURE);
  assert.ok(r.widthPx >= 800 && r.heightPx >= 300, `${r.widthPx}x${r.heightPx}`);
  assert.ok(r.png.byteLength > 10_000, "not a blank image");
});
