/** A small model and a cluster of small GPUs for pipeline tests: plans in a second or two. */
import type { ClusterProfile } from "../core/cluster-profile.js";
import { withCapacities } from "../core/hardware-profile.js";
import type { ModelSpec } from "../core/model-spec.js";
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
