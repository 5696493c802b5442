import assert from "node:assert/strict";
import { test } from "node:test";
import type { ScheduleStep } from "../../schedule/steps.js";
import { scheduleNames, scheduleStrategy } from "../../schedule/strategies.js";
import { globalStep, type ZigzagConsumer, type ZigzagShape, zigzag } from "../../schedule/zigzag.js";

const SHAPES: ZigzagShape[] = [
  { numLayers: 3, numGpuBatches: 1, genLen: 3 },
  { numLayers: 2, numGpuBatches: 2, genLen: 2 },
  { numLayers: 4, numGpuBatches: 3, genLen: 3 },
];
const CONSUMERS: ZigzagConsumer[] = ["task-graph", "executor"];

const key = (s: ScheduleStep) => `${s.kind} ${s.at.token}/${s.at.layer}/${s.at.batch}`;

for (const name of scheduleNames()) {
  for (const consumer of CONSUMERS) {
    test(`zig-zag (${name}, ${consumer}): every step computes once in zig-zag order, after its loads and its input's store`, () => {
      const strategy = scheduleStrategy(name);
      for (const shape of SHAPES) {
        const steps = [...zigzag(shape, strategy, consumer)];
        const position = new Map<string, number>();
        steps.forEach((s, i) => {
          assert.ok(!position.has(key(s)) || s.kind === "barrier" || s.kind === "token-end", `${key(s)} yielded twice`);
          position.set(key(s), i);
        });
        const computes = steps.filter((s) => s.kind === "compute");
        assert.deepEqual(
          computes.map((s) => globalStep(shape, s.at)),
          Array.from({ length: shape.genLen * shape.numLayers * shape.numGpuBatches }, (_, q) => q),
        );
        for (const c of computes) {
          const { token, layer, batch } = c.at;
          const at = position.get(key(c))!;
          const before = (kind: string, l: number, b: number) => {
            const i = position.get(`${kind} ${token}/${l}/${b}`);
            assert.ok(
              i !== undefined && i < at,
              `${kind} ${token}/${l}/${b} before compute ${token}/${layer}/${batch} (${name}, ${consumer}, ${JSON.stringify(shape)})`,
            );
            return i;
          };
          before("issue-kv", layer, batch);
          before("issue-weights", layer, -1);
          before("ready-weights", layer, -1);
          const hidden = before("issue-hidden", layer, batch);
          // A hidden state is loaded after the store of the output it reads.
          if (layer > 0)
            assert.ok(
              position.get(`store ${token}/${layer - 1}/${batch}`)! < hidden,
              `hidden ${token}/${layer}/${batch} loaded before its input was stored`,
            );
          const store = position.get(`store ${token}/${layer}/${batch}`);
          assert.ok(store !== undefined && store > at, `store after compute ${token}/${layer}/${batch}`);
          assert.equal(steps[store]!.outputToNextLayer, layer < shape.numLayers - 1);
        }
        for (let token = 0; token < shape.genLen; token++) {
          for (let batch = 0; batch < shape.numGpuBatches; batch++) {
            const head = position.get(`lm-head ${token}/${shape.numLayers}/${batch}`);
            assert.ok(
              head !== undefined && head > position.get(`compute ${token}/${shape.numLayers - 1}/${batch}`)!,
              `LM head of ${token}/${batch} after the last layer`,
            );
          }
        }
        assert.equal(steps.filter((s) => s.kind === "token-end").length, shape.genLen);
        assert.equal(
          steps.some((s) => s.kind === "barrier"),
          strategy.barrierAfterEachStep,
        );
      }
    });
  }
}

test("zig-zag: with one GPU batch a layer's hidden state is issued right before it computes, with more beside the KV one step ahead", () => {
  const strategy = scheduleStrategy("spillway");
  const next = (shape: ZigzagShape) => {
    const steps = [...zigzag(shape, strategy, "executor")].map(key);
    return steps[steps.indexOf("compute 1/1/0") - 1];
  };
  assert.equal(next({ numLayers: 3, numGpuBatches: 1, genLen: 2 }), "issue-hidden 1/1/0");
  assert.notEqual(next({ numLayers: 3, numGpuBatches: 2, genLen: 2 }), "issue-hidden 1/1/0");
});

test("strategies: spillway's loads wait for the buffer two back, FlexGen's for the barrier", () => {
  const shape = { numLayers: 2, numGpuBatches: 2, genLen: 2 };
  const first = (name: string, kind: string) =>
    [...zigzag(shape, scheduleStrategy(name), "task-graph")].find((s) => s.kind === kind)!;
  assert.deepEqual([...first("spillway", "issue-kv").after].sort(), [
    "kv-staging-free",
    "kv-stored",
    "step-buffer-free",
  ]);
  assert.deepEqual([...first("flexgen", "issue-kv").after].sort(), ["barrier", "kv-stored"]);
  assert.ok(first("spillway", "issue-weights").after.includes("head-buffer-free"));
  assert.throws(() => scheduleStrategy("eager"), /unknown schedule "eager" \(known: spillway, flexgen\b/);
});
