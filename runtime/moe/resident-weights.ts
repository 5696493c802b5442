/**
 * Where an MoE checkpoint's weights go for a run: everything but the routed experts placed once (in the
 * device arena, by the caller's `place`), and every routed expert's home copy packed gate | up | down in
 * shared host memory (one block per expert, so fetching an expert is one copy the copy engine's
 * workers can read). Qwen2-MoE's shared expert stays resident, one block per matrix like the rest.
 */
import type { ExpertBits } from "../../core/expert-policy.js";
import type { ModelSpec } from "../../core/model-spec.js";
import { sharedBytes } from "../transfer-engine.js";
import type { MixtralResidentWeights } from "./mixtral-model.js";
import type { MoeCheckpoint } from "./moe-checkpoint.js";
import { expertTensorNames, routerTensorName } from "./moe-tensor-shapes.js";
import { PRE_GATE_TENSOR } from "./pre-gated.js";
import { expertStoredBytes, nonExpertTensorBits, storedTensor } from "./quantized-weights.js";

/** Places `bytes` (stored: fp16 or quantised) under `name` and returns the placed values. */
export type PlaceWeights = (name: string, bytes: Uint8Array) => Uint16Array;

/** Concatenates tensors' stored bytes (at `bits`) into one buffer over shared memory. */
function packed(checkpoint: MoeCheckpoint, names: readonly string[], bits: ExpertBits): Uint8Array {
  const parts = names.map((n) => storedTensor(checkpoint, n, bits));
  const total = parts.reduce((sum, p) => sum + p.byteLength, 0);
  const out = sharedBytes(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.byteLength;
  }
  return out;
}

/** Reads and places every non-expert weight: embeddings, attention (with Qwen2-MoE's biases), routers, shared experts, norms, LM head. */
export function placeResidentWeights(
  checkpoint: MoeCheckpoint,
  attentionBits: ExpertBits,
  place: PlaceWeights,
): MixtralResidentWeights {
  const model = checkpoint.config.model;
  const put = (name: string) => place(name, storedTensor(checkpoint, name, nonExpertTensorBits(name, attentionBits)));
  const qwen = model.family === "qwen2_moe";
  const preGated = checkpoint.config.preGated;
  const embed = put("model.embed_tokens.weight");
  return {
    embed,
    layers: Array.from({ length: model.numLayers }, (_, l) => {
      const p = `model.layers.${l}.`;
      const shared = `${p}mlp.shared_expert.`;
      return {
        inputNorm: put(`${p}input_layernorm.weight`),
        q: put(`${p}self_attn.q_proj.weight`),
        k: put(`${p}self_attn.k_proj.weight`),
        v: put(`${p}self_attn.v_proj.weight`),
        o: put(`${p}self_attn.o_proj.weight`),
        postNorm: put(`${p}post_attention_layernorm.weight`),
        // A pre-gated Mixtral routes layer l > 0 with layer l - 1's pre-gate (pre-gated.ts).
        gate: preGated && l > 0 ? new Uint16Array(0) : put(routerTensorName(model, l)),
        ...(preGated && l < model.numLayers - 1 ? { preGate: put(`${p}${PRE_GATE_TENSOR}`) } : {}),
        ...(qwen
          ? {
              attentionBiases: {
                q: put(`${p}self_attn.q_proj.bias`),
                k: put(`${p}self_attn.k_proj.bias`),
                v: put(`${p}self_attn.v_proj.bias`),
              },
            }
          : {}),
        ...(model.moe!.sharedExperts
          ? {
              sharedExpert: {
                gateProj: put(`${shared}gate_proj.weight`),
                upProj: put(`${shared}up_proj.weight`),
                downProj: put(`${shared}down_proj.weight`),
                ffnSize: model.moe!.sharedExpertFfnSize!,
                gate: put(`${p}mlp.shared_expert_gate.weight`),
              },
            }
          : {}),
      };
    }),
    finalNorm: put("model.norm.weight"),
    lmHead: model.tiedEmbeddings ? embed : put("lm_head.weight"),
  };
}

/** Every routed expert's home copy at `bits`, [layer][expert], packed gate | up | down over shared memory. */
export function expertHomeCopies(
  checkpoint: MoeCheckpoint,
  bits: ExpertBits,
  model: ModelSpec = checkpoint.config.model,
): Uint16Array[][] {
  const expertBytes = expertStoredBytes(model, bits);
  return Array.from({ length: model.numLayers }, (_, l) =>
    Array.from({ length: model.moe!.numExperts }, (_, e) => {
      const bytes = packed(checkpoint, expertTensorNames(model, l, e), bits);
      if (bytes.byteLength !== expertBytes)
        throw new Error(`expert ${e} of layer ${l} stores ${bytes.byteLength} bytes, expected ${expertBytes}`);
      return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
    }),
  );
}
