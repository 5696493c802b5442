/**
 * The rules a policy obeys beyond its fields' types and ranges (which the plan schema states): each
 * placement sums to 1, CPU-computed layer groups keep their weights in host memory, the layer groups
 * cover the model's layers, and the expert policy's own rules. Readers of plan and comparison files
 * apply them after the schema check; the planner applies checkLayerGroups() to what it is given.
 */
import { checkExpertPolicyRules } from "./expert-policy.js";
import { child, type FieldContext, fail } from "./fields.js";
import { InputError } from "./input-error.js";
import type { ModelSpec } from "./model-spec.js";
import { PLACEMENT_TOLERANCE, type Placement, type Policy } from "./policy.js";
import { realizePlacement } from "./realize-placement.js";

export function checkPlacementSum(placement: Placement, ctx: FieldContext): void {
  const sum = placement.gpu + placement.cpu + placement.disk;
  if (Math.abs(sum - 1) > PLACEMENT_TOLERANCE) fail(ctx, undefined, `gpu + cpu + disk must be 1, got ${sum}`);
}

/** The rules of a policy on its own (`ctx` is where the policy is: a file and "policy"). */
export function checkPolicyRules(policy: Policy, ctx: FieldContext): void {
  policy.layerGroups?.forEach((group, i) => {
    const gc = child(child(ctx, "layerGroups"), i);
    checkPlacementSum(group.weights, child(gc, "weights"));
    if (group.compute === "cpu" && group.weights.cpu < 1 - PLACEMENT_TOLERANCE) {
      fail(
        gc,
        "weights",
        "CPU-computed layers read their weights in place from host memory: expected { gpu: 0, cpu: 1, disk: 0 }",
      );
    }
  });
  if (policy.embeddings) checkPlacementSum(policy.embeddings, child(ctx, "embeddings"));
  if (policy.experts) checkExpertPolicyRules(policy.experts, child(ctx, "experts"));
  for (const key of ["weights", "cache", "activations"] as const) checkPlacementSum(policy[key], child(ctx, key));
}

/** Layer groups cover the model's layers, and CPU-computed layers hand their hidden state to the GPU's. */
export function checkLayerGroups(model: ModelSpec, policy: Policy, source = "policy"): void {
  const groups = policy.layerGroups;
  if (!groups) return;
  const layers = groups.reduce((sum, g) => sum + g.layers, 0);
  if (layers !== model.numLayers)
    throw new InputError(
      source,
      "policy.layerGroups",
      `the groups cover ${layers} layers; ${model.name} has ${model.numLayers}`,
    );
  if (groups.some((g) => g.compute === "cpu") && realizePlacement(model, policy).activationTier !== "gpu") {
    throw new InputError(
      source,
      "policy.activations",
      "layers computed on the CPU hand their hidden state to the GPU's layers directly: expected activations on the GPU",
    );
  }
}

/** The rules that tie a policy to its model (`source` names the file; the policy is at "policy"). */
export function checkPolicyFitsModel(model: ModelSpec, policy: Policy, source: string): void {
  checkLayerGroups(model, policy, source);
  if (policy.experts && model.moe)
    checkExpertPolicyRules(policy.experts, { source, path: "policy.experts" }, model.moe.numExperts);
}
