import assert from "node:assert/strict";
import test from "node:test";
import type { Policy } from "../../core/policy.js";
import { stageModel } from "../../planner/pipeline/stage-model.js";
import { StageSearchMemo } from "../../planner/pipeline/stage-search-memo.js";
import { shardModel } from "../../planner/pipeline/tensor-parallel.js";
import { tiny } from "../pipeline-fixtures.js";

const policy = (gpuBatchSize: number) => ({ gpuBatchSize, numGpuBatches: 1 }) as unknown as Policy;

test("a stage search runs once per distinct question; first and last stages of equal layer count share it", () => {
  const memo = new StageSearchMemo();
  let searches = 0;
  const ask = (model: typeof tiny, fixed: { gbs?: number; nb: number }, T = 1, maxGbs?: number) =>
    memo.policy({ tensorParallelSize: T, model, fixed, maxGbs }, () => policy(++searches));
  const first = ask(stageModel(tiny, 3, "first"), { nb: 4 });
  assert.equal(searches, 1);
  // The last stage of three layers is the same model, built anew: the answer found for the first.
  assert.equal(ask(stageModel(tiny, 3, "last"), { nb: 4 }), first);
  assert.equal(searches, 1);
  // Anything else that changes the search's inputs is searched.
  ask(stageModel(tiny, 3, "middle"), { nb: 4 });
  ask(stageModel(tiny, 4, "last"), { nb: 4 });
  ask(stageModel(tiny, 3, "last"), { nb: 8 });
  ask(stageModel(tiny, 3, "last"), { gbs: 2, nb: 4 });
  ask(stageModel(tiny, 3, "last"), { nb: 4 }, 1, 16);
  ask(shardModel(stageModel(tiny, 3, "last"), 2), { nb: 4 }, 2);
  assert.equal(searches, 7);
  // A search that finds nothing is remembered too.
  let empty = 0;
  const none = () => {
    empty++;
    return undefined;
  };
  const key = { tensorParallelSize: 1, model: tiny, fixed: { nb: 64 }, maxGbs: undefined };
  assert.equal(memo.policy(key, none), undefined);
  assert.equal(memo.policy(key, none), undefined);
  assert.equal(empty, 1);
});
