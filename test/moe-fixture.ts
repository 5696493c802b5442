/**
 * Shared by the MoE tests: a base expert policy, and a seeded tiny Mixtral checkpoint written to a
 * temporary folder for a test file's lifetime with runMoe over it (batch 2, 8-token prompts, 24 tokens).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import type { ExpertPolicy } from "../core/expert-policy.js";
import { type MoeRunOptions, runMoe } from "../runtime/moe/moe-runner.js";
import { synthesizeMixtralWeights, tinyMixtralSpec } from "../runtime/moe/synth-mixtral-weights.js";

/** Two LRU slots per layer, 4-bit experts and attention, no prefetch, misses fetched to the GPU. */
export const BASE_EXPERT_POLICY: ExpertPolicy = {
  cacheSize: 2,
  eviction: "lru",
  offloadTier: "cpu",
  bits: 4,
  attentionBits: 4,
  prefetchExperts: 0,
  prefetchLayers: 1,
  pregated: false,
  compute: "gpu",
  cpuThresholdTokens: 0,
};

export const TINY_MOE_RUN = { batch: 2, promptLen: 8, genLen: 24, seed: 3, weightsSeed: 7 } as const;

/** Registers the checkpoint's before/after hooks; `run` runs runMoe over it with `base` overridden by `x`. */
export function tinyMixtralCheckpoint(prefix: string, base: ExpertPolicy) {
  const spec = tinyMixtralSpec();
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    synthesizeMixtralWeights(spec, dir, TINY_MOE_RUN.weightsSeed);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  return {
    spec,
    dir: () => dir,
    run: (
      x: Partial<ExpertPolicy>,
      extra: Partial<Pick<MoeRunOptions, "threads" | "deviceCapacityBytes" | "expertDevice" | "genLen" | "trace">> = {},
    ) =>
      runMoe({
        weightsDir: dir,
        policy: { ...base, ...x, batch: TINY_MOE_RUN.batch },
        promptLen: TINY_MOE_RUN.promptLen,
        genLen: TINY_MOE_RUN.genLen,
        seed: TINY_MOE_RUN.seed,
        ...extra,
      }),
  };
}
