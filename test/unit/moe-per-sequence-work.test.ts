import assert from "node:assert/strict";
import { test } from "node:test";
import { MOE_ATTENTION_LAUNCHES_PER_SEQUENCE } from "../../planner/moe/evaluate-moe-policy.js";
import { cudaExpertDevice } from "../../runtime/cuda/cuda-expert-device.js";
import { createEmulatedNative } from "../../runtime/cuda/emulated-native.js";
import { runMoe } from "../../runtime/moe/moe-runner.js";
import { countingNative } from "../counting-native.js";
import { BASE_EXPERT_POLICY, TINY_MOE_RUN, tinyMixtralCheckpoint } from "../moe-fixture.js";

// The MoE cost model charges each sequence of a layer the CUDA decoder's attention launches, and each layer
// one routing round trip through the host (planner/moe/evaluate-moe-policy.ts). Here the decoder's own
// calls on the emulated device are counted: what one more sequence, and one more decode step, add.
const { spec, dir } = tinyMixtralCheckpoint("spillway-moe-per-sequence-", BASE_EXPERT_POLICY);

async function calls(batch: number, genLen: number): Promise<Map<string, number>> {
  const { native, calls: counts } = countingNative(createEmulatedNative({ deviceBytes: 32 * 2 ** 20, seed: 1 }));
  await runMoe({
    weightsDir: dir(),
    policy: { ...BASE_EXPERT_POLICY, batch },
    promptLen: TINY_MOE_RUN.promptLen,
    genLen,
    seed: TINY_MOE_RUN.seed,
    deviceCapacityBytes: 8 * 2 ** 20,
    expertDevice: cudaExpertDevice(native),
  });
  return counts;
}

test("the CUDA MoE decoder: per sequence and layer of a decode step, the planner's attention launches; per layer, one synchronised routing read-back", async () => {
  const [a1, a2, b1, b2] = [await calls(1, 2), await calls(1, 3), await calls(2, 2), await calls(2, 3)];
  const step = (x: Map<string, number>, y: Map<string, number>, name: string) =>
    (y.get(name) ?? 0) - (x.get(name) ?? 0);
  const layers = spec.numLayers;
  // One more sequence in one decode step: its attention in every layer, and its row copied to the LM head.
  const attentionCalls = (name: string) => step(b1, b2, name) - step(a1, a2, name);
  assert.equal(
    attentionCalls("gqaAttention") + attentionCalls("memcpyDtoD"),
    layers * MOE_ATTENTION_LAUNCHES_PER_SEQUENCE + 1,
  );
  // Whatever the batch, one decode step synchronises once per layer (the routing read-back) and once for its tokens.
  assert.equal(step(a1, a2, "streamSynchronize"), layers + 1);
  assert.equal(step(b1, b2, "streamSynchronize"), layers + 1);
});
