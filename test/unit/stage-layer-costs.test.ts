import assert from "node:assert/strict";
import test from "node:test";
import { stageModel } from "../../planner/pipeline/stage-model.js";
import { shardModel, tensorParallelLink } from "../../planner/pipeline/tensor-parallel.js";
import { evaluatePolicy } from "../../planner/spillway/evaluate-policy.js";
import { hardwareRates } from "../../planner/spillway/hardware-rates.js";
import { LayerCostCache } from "../../planner/spillway/layer-cost-cache.js";
import { policy, W } from "../offload-engine-helpers.js";
import { smallNode, tiny } from "../pipeline-fixtures.js";

// The pipeline search costs every stage model of a split (each layer count and role) with one memo of
// layer costs (plan-pipeline.ts): that is sound only while the stage models' layer costs are the same,
// which this checks against evaluations without the memo.
test("stage models of every layer count and role share their layer costs: a shared memo changes no prediction", () => {
  const workload = { promptLen: 16, genLen: 8 };
  const base = policy(4, W(0.3, 0.5, 0.2), { numGpuBatches: 2, cache: W(0.5, 0.5, 0) });
  const cluster = smallNode("1x4-t4");
  const policies = [base, { ...base, compressWeight: true, cpuAttention: true }];
  let compared = 0;
  for (const T of [1, 2]) {
    const link = tensorParallelLink(cluster, T);
    const rates = { ...hardwareRates(cluster.perGpu), ...(link ? { tensorParallel: link } : {}) };
    for (const stagePolicy of policies) {
      const shared = new LayerCostCache();
      for (const role of ["first", "middle", "last"] as const)
        for (let count = 1; count <= tiny.numLayers; count++) {
          const model = shardModel(stageModel(tiny, count, role), T);
          const alone = evaluatePolicy(model, rates, workload, stagePolicy, "spillway");
          assert.deepEqual(
            evaluatePolicy(model, rates, workload, stagePolicy, "spillway", shared),
            alone,
            `${role} ${count}`,
          );
          compared++;
        }
    }
  }
  assert.equal(compared, 2 * 2 * 3 * tiny.numLayers);
});
