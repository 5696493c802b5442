import assert from "node:assert/strict";
import { test } from "node:test";
import type { ClusterProfile } from "../../core/cluster-profile.js";
import { InputError } from "../../core/input-error.js";
import { LINKS } from "../../core/links.js";
import { parsePlan } from "../../core/parse-plan.js";
import type { Plan } from "../../core/plan.js";
import { loadShippedCluster } from "../../core/resolve-cluster.js";
import { loadShippedProfile } from "../../core/resolve-hardware.js";
import { TIERS } from "../../core/tiers.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { loadLpSolvers } from "../../planner/lp/solve-linear-program.js";
import { pipelineTimeline } from "../../planner/pipeline/pipeline-timeline.js";
import { planPipelineSync } from "../../planner/pipeline/plan-pipeline.js";
import { splitLayers } from "../../planner/pipeline/split-layers.js";
import { planSync } from "../../planner/plan.js";
import { simulatePipeline, TRAFFIC_TOLERANCE } from "../../simulator/simulate-pipeline.js";
import { readGoldenPipelinePlans, smallNode, tiny, withoutSearchWork } from "../pipeline-fixtures.js";

const solvers = await loadLpSolvers();
const goldenPipelinePlans = readGoldenPipelinePlans();

const withoutTime = (p: Plan) => ({ ...p, search: { ...p.search, elapsedMs: 0 } });
const goldenWithoutSearchWork = (name: string) => withoutSearchWork(goldenPipelinePlans[name] as Plan);

test("a one-GPU cluster gives exactly the single-GPU plan of its GPU", () => {
  const t4 = loadShippedProfile("t4");
  const one: ClusterProfile = { ...loadShippedCluster("4x1-t4-gcp"), nodes: 1, perGpu: t4 };
  for (const [model, workload] of [
    [findCatalogueModel("opt-125m")!, { promptLen: 512, genLen: 32 }],
    [tiny, { promptLen: 64, genLen: 8 }],
  ] as const) {
    const single = planSync({ model, hardware: t4, workload, maxBlock: 256 }, solvers);
    const cluster = planPipelineSync({ model, cluster: one, workload, maxBlock: 256 }, solvers);
    assert.deepEqual(withoutTime(cluster), withoutTime(single), model.name);
    assert.equal(cluster.pipeline, undefined);
  }
});

test("the pipeline schedule: one stage is the sum of its steps; two stages overlap micro-batches, with fill and drain", () => {
  const one = pipelineTimeline({
    stages: [{ prefillSeconds: 5, decodeSeconds: [1, 2, 3] }],
    links: [],
    microBatches: 1,
    genLen: 4,
    hiddenBytes: () => 0,
    tokenBytes: 0,
  });
  assert.equal(one.totalSeconds, 11);
  assert.equal(one.prefillSeconds, 5);
  // Two stages of 2 s (prompt) and 1 s (decode), two micro-batches, a link of 1 s latency and 1 B/s.
  const two = pipelineTimeline({
    stages: [
      { prefillSeconds: 2, decodeSeconds: [1] },
      { prefillSeconds: 2, decodeSeconds: [1] },
    ],
    links: [
      { bytesPerSecond: 1, latencySeconds: 1 },
      { bytesPerSecond: 1, latencySeconds: 1 },
    ],
    microBatches: 2,
    genLen: 2,
    hiddenBytes: (i) => (i === 0 ? 2 : 1),
    tokenBytes: 1,
    record: true,
  });
  // Stage 0: mb0 prompt [0,2], mb1 prompt [2,4]; link 0: mb0 [2,5], mb1 [5,8]; stage 1: mb0 [5,7], mb1 [8,10].
  // mb0's token returns over link 1 [7,9]; stage 0 decodes it [9,10], sends [10,12]; stage 1 [12,13].
  // mb1's token returns [10,12]; stage 0 [12,13]; link 0 [13,15]; stage 1 [15,16].
  assert.equal(two.prefillSeconds, 10);
  assert.equal(two.totalSeconds, 16);
  assert.deepEqual(two.stageBusySeconds, [6, 6]);
  assert.deepEqual(two.linkBytes, [6, 2]);
  assert.equal(two.stageIdleFraction[0], 1 - 6 / 16);
  assert.equal(two.stageItems?.length, 8);
});

test("layers are split by cost: stages holding the embeddings and the LM head take fewer layers", () => {
  const uniform = splitLayers(12, 4, (_role, n) => n);
  assert.deepEqual(uniform, [3, 3, 3, 3]);
  // The first and last stage carry two layers' worth of extra work.
  assert.deepEqual(
    splitLayers(12, 4, (role, n) => n + (role === "first" || role === "last" ? 2 : 0)),
    [2, 4, 4, 2],
  );
  // A size that does not fit is never chosen.
  assert.deepEqual(
    splitLayers(10, 2, (_role, n) => (n > 6 ? Number.POSITIVE_INFINITY : n)),
    [5, 5],
  );
  assert.deepEqual(
    splitLayers(10, 2, (role, n) => (role === "first" && n > 3 ? Number.POSITIVE_INFINITY : n)),
    [3, 7],
  );
});

test("a pipeline plan: contiguous stages on distinct GPUs, each fitting, faster than one GPU; the simulator agrees on traffic", () => {
  const cluster = smallNode();
  // Short prompts and long generations: the LM head (8 layers' worth of work per token here) weighs.
  const workload = { promptLen: 16, genLen: 32 };
  // One GPU per stage (tensor parallelism has its own tests: tensor-parallel.test.ts).
  const planned = planPipelineSync({ model: tiny, cluster, workload, maxBlock: 64, tensorParallelSize: 1 }, solvers);
  // T = 1 plans exactly as before tensor parallelism was searched (recorded then: test/golden/pipeline-plans.json).
  assert.deepEqual(JSON.parse(JSON.stringify(withoutSearchWork(planned))), goldenWithoutSearchWork("1x4-t4"));
  const pipeline = planned.pipeline;
  assert.ok(pipeline, "a pipeline beats one GPU here");
  assert.ok(pipeline.stages.length > 1);
  assert.equal(planned.hardware, cluster.name);
  let next = 0;
  for (const stage of pipeline.stages) {
    assert.equal(stage.layers.from, next);
    next = stage.layers.to;
    assert.ok(stage.predicted.feasible);
    for (const t of TIERS) assert.ok(stage.predicted.peakBytes[t] <= stage.predicted.capacityBytes[t]);
  }
  assert.equal(next, tiny.numLayers);
  assert.equal(new Set(pipeline.stages.map((s) => `${s.gpu.node}.${s.gpu.index}`)).size, pipeline.stages.length);
  // The first and last stage hold the embedding table and pay the LM head, so they take fewer layers.
  const counts = pipeline.stages.map((s) => s.layers.to - s.layers.from);
  assert.ok(counts[0]! < Math.max(...counts) && counts.at(-1)! < Math.max(...counts), `split ${counts}`);
  const oneGpu = planSync({ model: tiny, hardware: cluster.perGpu, workload, maxBlock: 64 }, solvers);
  assert.ok(oneGpu.policy.weights.gpu < 1, "one GPU must offload");
  assert.ok(planned.predicted.throughputTokensPerSecond > oneGpu.predicted.throughputTokensPerSecond);

  const simulated = simulatePipeline({ ...planned, pipeline }, { schedule: planned.schedule, timeline: true });
  simulated.stages.forEach((s, i) => {
    assert.equal(s.overflow, undefined, `stage ${i} fits`);
    for (const t of TIERS) assert.ok(s.peakBytes[t] <= s.capacityBytes[t]);
    for (const link of LINKS) {
      const planned = s.plannedBytes[link];
      assert.ok(Math.abs(s.bytes[link] - planned) <= TRAFFIC_TOLERANCE * planned + 1, `stage ${i} ${link}`);
    }
  });
  for (const l of simulated.links) assert.equal(l.bytes, l.plannedBytes);
  assert.ok(simulated.links[0]!.bytes > 0);
  assert.deepEqual(
    simulated.disagreements.filter((d) => /traffic|link|memory/.test(d)),
    [],
  );
  // The timeline shows the fill: the last stage waits before its first micro-batch arrives.
  const lastStage = simulated.timeline!.split("\n").find((l) => l.startsWith(`stage ${pipeline.stages.length - 1}`))!;
  assert.match(lastStage, /\|\.+\d/);

  // The plan file stands alone: it validates and parses back as it was written.
  const reread = parsePlan(JSON.parse(JSON.stringify(planned)), "plan.json");
  assert.deepEqual(reread.pipeline, JSON.parse(JSON.stringify(pipeline)));
  const broken = JSON.parse(JSON.stringify(planned));
  broken.pipeline.stages[1].layers.from += 1;
  assert.throws(
    () => parsePlan(broken, "plan.json"),
    (e: unknown) => e instanceof InputError && /pipeline\.stages\[1\]\.layers/.test(e.message),
  );
});
