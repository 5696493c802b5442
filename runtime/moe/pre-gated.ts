/**
 * Pre-gated Mixtral-style checkpoints, as Pre-gated MoE (Hwang et al., ISCA 2024, arXiv 2308.12066)
 * defines the architecture: the gate in MoE block N selects the experts of block N + 1, reading block
 * N's MoE input, so block N + 1's experts are known (and can be fetched) while block N's run. The first
 * block keeps its own gate as well; the last has no pre-gate.
 *
 * Layout here: Mixtral's tensors, except the routers. Layer 0 holds `block_sparse_moe.gate.weight`
 * (its own routing) and every layer l < L - 1 holds `block_sparse_moe.pre_gate.weight`
 * ([numExperts, hidden]: layer l + 1's router, applied to layer l's router input, the post-attention
 * RMSNorm of the residual stream). config.json says `"pre_gated": true`. Same tensor count and bytes as
 * the standard model.
 */
import { describeValue, InputError } from "../../core/input-error.js";

export const PRE_GATED_CONFIG_KEY = "pre_gated";
export const GATE_TENSOR = "block_sparse_moe.gate.weight";
export const PRE_GATE_TENSOR = "block_sparse_moe.pre_gate.weight";

/** The router tensors (names relative to the layer) a layer holds in place of Mixtral's gate. */
export function layerRouterTensors(layer: number, numLayers: number, preGated: boolean): string[] {
  if (!preGated) return [GATE_TENSOR];
  const names: string[] = [];
  if (layer === 0) names.push(GATE_TENSOR);
  if (layer < numLayers - 1) names.push(PRE_GATE_TENSOR);
  return names;
}

/**
 * The [numExperts, hidden] weights whose product with a router input gives layer t's routing logits:
 * layer t - 1's pre-gate when it has one, else layer t's own gate (MixtralModel routes by the same rule).
 */
export function routerOf<T>(layers: readonly { readonly gate: T; readonly preGate?: T }[], t: number): T {
  return (t > 0 ? layers[t - 1]!.preGate : undefined) ?? layers[t]!.gate;
}

/** Whether a config.json marks a pre-gated checkpoint (absent: no). */
export function readPreGatedMarker(config: Record<string, unknown>, path: string): boolean {
  const value = config[PRE_GATED_CONFIG_KEY];
  if (value === undefined) return false;
  if (typeof value !== "boolean")
    throw new InputError(path, PRE_GATED_CONFIG_KEY, `expected true or false, got ${describeValue(value)}`);
  return value;
}
