/**
 * Which precision each tensor of a Mixtral checkpoint is stored at under an expert policy, and the
 * stored bytes, as the planner counts them (core/moe-weight-bytes.ts): routed experts at `bits`; every
 * other tensor of a decoder layer (attention projections, the two RMSNorm weights, the router) at
 * `attentionBits`; the embeddings, the final norm and the LM head fp16. Stored tensors use
 * expert-quantization.ts's format; an expert is its three matrices stored back to back, w1 | w3 | w2.
 */
import type { ExpertBits } from "../../core/expert-policy.js";
import type { ModelSpec } from "../../core/model-spec.js";
import type { SafetensorsFile } from "../safetensors.js";
import { quantizedByteLength, quantizeGroupwise } from "./expert-quantization.js";

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
export function storedTensor(file: SafetensorsFile, name: string, bits: ExpertBits): Uint8Array {
  if (bits === 16) return file.readRaw(name);
  return quantizeGroupwise(file.readFloat32(name), bits);
}

/** Writes expert `expert` of layer `layer` stored at `bits` into `out` (expertStoredBytes bytes): w1 | w3 | w2. */
export function storeExpert(
  file: SafetensorsFile,
  model: ModelSpec,
  layer: number,
  expert: number,
  bits: ExpertBits,
  out: Uint8Array,
): void {
  const matrixBytes = expertMatrixBytes(model, bits);
  ["w1", "w3", "w2"].forEach((m, i) => {
    const stored = storedTensor(file, `model.layers.${layer}.block_sparse_moe.experts.${expert}.${m}.weight`, bits);
    if (stored.byteLength !== matrixBytes)
      throw new Error(
        `${file.path}: expert ${expert} ${m} of layer ${layer} stores ${stored.byteLength} bytes, expected ${matrixBytes}`,
      );
    out.set(stored, i * matrixBytes);
  });
}
