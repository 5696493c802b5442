/** A small model and a cluster of small GPUs for pipeline tests: plans in a second or two. */
import { readFileSync } from "node:fs";
import type { ClusterProfile } from "../core/cluster-profile.js";
import { withCapacities } from "../core/hardware-profile.js";
import type { ModelSpec } from "../core/model-spec.js";
import type { Plan } from "../core/plan.js";
import { loadShippedCluster } from "../core/resolve-cluster.js";

const GIB = 2 ** 30;

/** A small OPT-shaped model: plans in milliseconds, its embedding table worth several layers. */
export const tiny: ModelSpec = {
  name: "tiny-opt",
  family: "opt",
  numLayers: 12,
  hiddenSize: 512,
  ffnSize: 2048,
  numHeads: 8,
  numKvHeads: 8,
  vocabSize: 50272,
  maxPositions: 2048,
  ffnKind: "relu",
  wordEmbedDim: 512,
  tiedEmbeddings: true,
  bytesPerParam: 2,
};

/** A shipped cluster (default: one node of four T4s) whose GPUs are too small for the model's weights. */
export function smallNode(name = "1x4-t4"): ClusterProfile {
  const c = loadShippedCluster(name);
  return { ...c, perGpu: withCapacities(c.perGpu, { gpu: 0.04 * GIB, cpu: 4 * GIB }) };
}

/**
 * Pipeline plans of `tiny` on smallNode("4x1-t4-gcp") and smallNode("1x4-t4") (prompt 16, generate 32,
 * --max-block 64), recorded from the code before tensor parallelism was searched (search.elapsedMs zeroed):
 * plans of one GPU per stage must not change.
 */
export function readGoldenPipelinePlans(): Record<string, unknown> {
  const path = new URL("../../test/golden/pipeline-plans.json", import.meta.url);
  return (JSON.parse(readFileSync(path, "utf8")) as { plans: Record<string, unknown> }).plans;
}

/** The plan without its search's time and counters: searches that find the same plan with less work compare equal. */
export function withoutSearchWork(p: Plan): Plan {
  return { ...p, search: { ...p.search, elapsedMs: 0, lpSolves: 0, exactEvaluations: 0 } };
}
