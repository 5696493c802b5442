/**
 * Which precision each tensor of a Mixtral checkpoint is stored at under an expert policy, and the
 * stored bytes, as the planner counts them (core/moe-weight-bytes.ts): routed experts at `bits`; every
 * other tensor of a decoder layer (attention projections, the two RMSNorm weights, the router) at
 * `attentionBits` (Qwen2-MoE's biases and shared expert too); the embeddings, the final norm and the LM
 * head fp16. Stored tensors use expert-quantization.ts's format; an expert is its three matrices stored
 * back to back, gate | up | down (w1 | w3 | w2: resident-weights.ts).
 */
import type { ExpertBits } from "../../core/expert-policy.js";
import type { ModelSpec } from "../../core/model-spec.js";
import { fromFloat16Array } from "../fp16.js";
import { quantizedByteLength, quantizeGroupwise } from "./expert-quantization.js";
import type { MoeCheckpoint } from "./moe-checkpoint.js";

/** The precision of a non-expert tensor of the checkpoint (`model.layers.*`: attentionBits; the rest fp16). */
export function nonExpertTensorBits(name: string, attentionBits: ExpertBits): ExpertBits {
  return name.startsWith("model.layers.") ? attentionBits : 16;
}

/** Stored bytes of one of an expert's three matrices (hidden x expert FFN values). */
export function expertMatrixBytes(model: ModelSpec, bits: ExpertBits): number {
  return quantizedByteLength(model.hiddenSize * model.moe!.expertFfnSize, bits);
}

/** Stored bytes of one routed expert: what a device slot and a host copy hold. */
export function expertStoredBytes(model: ModelSpec, bits: ExpertBits): number {
  return 3 * expertMatrixBytes(model, bits);
}

/** A checkpoint tensor stored at `bits`: its fp16 bytes as they are (16), or quantised from them. */
export function storedTensor(checkpoint: MoeCheckpoint, name: string, bits: ExpertBits): Uint8Array {
  const fp16 = checkpoint.fp16Bytes(name);
  if (bits === 16) return fp16;
  const aligned = fp16.byteOffset % 2 === 0 ? fp16 : fp16.slice();
  return quantizeGroupwise(
    fromFloat16Array(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2)),
    bits,
  );
}
