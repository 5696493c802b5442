/**
 * `spillway run PLAN --weights DIR` with a checkpoint of another shape than the plan's model is bad input
 * (exit 2, the folder named), not a run failure (exit 1): dense and MoE plans alike.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { withCapacities } from "../../core/hardware-profile.js";
import { InputError } from "../../core/input-error.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { planSync } from "../../planner/plan.js";
import { synthesizeMoeWeights } from "../../runtime/moe/synth-moe-weights.js";
import { run } from "../../runtime/run.js";
import { synthesizeOptWeights } from "../../runtime/synth-weights.js";
import { TINY_OPT } from "../helpers.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-weights-mismatch-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const hardware = withCapacities(resolveHardware("t4"), { gpu: 2 ** 30, cpu: 2 ** 30, disk: 2 ** 30 });
const workload = { promptLen: 8, genLen: 4 };

function rejectsAsInput(error: unknown, weightsDir: string): boolean {
  assert.ok(error instanceof InputError, `${error}`);
  assert.equal(error.source, weightsDir);
  assert.match(error.message, /numLayers/);
  return true;
}

test("a dense plan run on a checkpoint with another number of layers is an InputError naming the folder", async () => {
  const weightsDir = join(dir, "opt");
  synthesizeOptWeights(TINY_OPT, weightsDir, { seed: 1 });
  const planned = planSync({
    model: { ...TINY_OPT, numLayers: TINY_OPT.numLayers + 1 },
    hardware,
    workload,
    fixed: { gbs: 2, nb: 1, percent: [100, 0, 100, 0, 100, 0] },
  });
  await assert.rejects(
    run(planned, hardware, { weightsDir, offloadDir: dir, capacityBytes: planned.predicted.capacityBytes }),
    (e) => rejectsAsInput(e, weightsDir),
  );
});

test("an MoE plan run on a checkpoint with another number of layers is an InputError naming the folder", async () => {
  const tiny = findCatalogueModel("mixtral-tiny")!;
  const weightsDir = join(dir, "mixtral");
  synthesizeMoeWeights(tiny, weightsDir, { seed: 1 });
  const planned = planSync({
    model: { ...tiny, numLayers: tiny.numLayers + 1 },
    hardware,
    workload,
    experts: {
      batchSize: 2,
      cacheSize: 2,
      bits: 16,
      attentionBits: 16,
      prefetchExperts: 0,
      compute: "gpu",
      eviction: "lru",
      cacheOnCpu: false,
    },
  });
  await assert.rejects(
    run(planned, hardware, { weightsDir, offloadDir: dir, capacityBytes: planned.predicted.capacityBytes }),
    (e) => rejectsAsInput(e, weightsDir),
  );
});
