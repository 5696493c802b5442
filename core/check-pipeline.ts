/**
 * What a plan file's `pipeline` must satisfy beyond its schema: its cluster is a valid cluster profile,
 * the stages cover the model's layers contiguously, one per GPU of the cluster (or, with
 * tensorParallelSize T, per T GPUs of one node, listed in `gpus`), each with a valid policy, and the
 * links join consecutive stages.
 */
import { gpuCount, parseClusterProfile } from "./cluster-profile.js";
import { child, type FieldContext, fail } from "./fields.js";
import type { Plan } from "./plan.js";
import { checkPolicyRules } from "./policy-rules.js";

export function checkPipeline(plan: Plan, source: string): void {
  const pipeline = plan.pipeline;
  if (!pipeline) return;
  const ctx: FieldContext = { source, path: "pipeline" };
  const cluster = parseClusterProfile(pipeline.cluster, source, "pipeline.cluster");
  const stages = pipeline.stages;
  const T = pipeline.tensorParallelSize ?? 1;
  if (T > 1 && (cluster.gpusPerNode % T !== 0 || plan.modelSpec.numHeads % T !== 0))
    fail(
      ctx,
      "tensorParallelSize",
      `expected a divisor of ${cluster.name}'s ${cluster.gpusPerNode} GPUs per node and of ${plan.modelSpec.name}'s ${plan.modelSpec.numHeads} heads, got ${T}`,
    );
  if (stages.length * T > gpuCount(cluster))
    fail(
      ctx,
      "stages",
      `${stages.length} stages of ${T} GPU${T > 1 ? "s" : ""} for ${gpuCount(cluster)} GPUs in ${cluster.name}`,
    );
  const used = new Set<string>();
  let next = 0;
  stages.forEach((stage, i) => {
    const sc = child(child(ctx, "stages"), i);
    if (stage.layers.from !== next || stage.layers.to <= stage.layers.from)
      fail(
        sc,
        "layers",
        `expected layers from ${next} (stages are contiguous, first layer first), got [${stage.layers.from}, ${stage.layers.to})`,
      );
    next = stage.layers.to;
    const gpus = stage.gpus ?? [stage.gpu];
    const field = stage.gpus ? "gpus" : "gpu";
    if (gpus.length !== T)
      fail(sc, field, `expected ${T} GPU${T > 1 ? "s" : ""} (tensorParallelSize), got ${gpus.length}`);
    if (gpus[0]!.node !== stage.gpu.node || gpus[0]!.index !== stage.gpu.index)
      fail(sc, "gpus", `expected the stage's gpu (${stage.gpu.node}.${stage.gpu.index}) first`);
    for (const { node, index } of gpus) {
      if (node >= cluster.nodes || index >= cluster.gpusPerNode)
        fail(
          sc,
          field,
          `GPU ${node}.${index} is not in ${cluster.name} (${cluster.nodes} nodes of ${cluster.gpusPerNode} GPUs)`,
        );
      if (node !== stage.gpu.node)
        fail(
          sc,
          field,
          `GPU ${node}.${index} is not on node ${stage.gpu.node}: a tensor-parallel stage spans one node`,
        );
      if (used.has(`${node}.${index}`)) fail(sc, field, `GPU ${node}.${index} holds two stages`);
      used.add(`${node}.${index}`);
    }
    checkPolicyRules(stage.policy, child(sc, "policy"));
  });
  if (next !== plan.modelSpec.numLayers)
    fail(ctx, "stages", `the stages cover ${next} layers; ${plan.modelSpec.name} has ${plan.modelSpec.numLayers}`);
  const expectedLinks = stages.length > 1 ? stages.length : 0;
  if (pipeline.links.length !== expectedLinks)
    fail(ctx, "links", `expected ${expectedLinks} links for ${stages.length} stages, got ${pipeline.links.length}`);
  pipeline.links.forEach((l, i) => {
    if (l.from !== i || l.to !== (i + 1) % stages.length)
      fail(
        child(child(ctx, "links"), i),
        "to",
        `expected the link from stage ${i} to stage ${(i + 1) % stages.length}`,
      );
  });
  if (pipeline.stageIdleFraction.length !== stages.length)
    fail(ctx, "stageIdleFraction", `expected one per stage (${stages.length})`);
}
