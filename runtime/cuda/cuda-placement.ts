/** Placement on the CUDA backend: every layer and embedding tensor encoded once, where the plan says. */
import { layerWeightTensors } from "../../core/model-spec.js";
import { embeddingTensors, placeTensors } from "../../core/realize-placement.js";
import type { Tier } from "../../core/tiers.js";
import { elementCount } from "../safetensors.js";
import { type Encoding, encodedByteLength } from "../tensor-codec.js";
import { type CudaRunContext, isMatrix, isVector, type Stored } from "./cuda-context.js";

function isTokenTable(name: string): boolean {
  return name.endsWith("embed_tokens.weight");
}

/** Every tensor encoded once and stored where the plan says: resident on the device, pinned on the host, or in an offload file. */
export function placeOnCuda(ctx: CudaRunContext) {
  const { native, model, policy, context, disk, weights, L, host, pinned, alloc } = ctx;
  // Placement: every tensor encoded once, where the plan says.
  /** A resident 4-bit token table's bytes, kept on the host too (tableHostCopy). */
  let residentQ4Table: Uint8Array | undefined;
  // Read from the checkpoint straight into a pinned array (host tier); into a fresh array otherwise.
  const store = (name: string, matrix: boolean, tier: Tier): Stored => {
    const encoding: Encoding = matrix && policy.compressWeight ? "q4" : "f16";
    const values = elementCount(weights.info(name).shape);
    const bytes = encodedByteLength(values, encoding);
    const base = { name, values, encoding, bytes, tier, vector: isVector(name) };
    if (tier === "cpu") return { ...base, host: weights.encoded(name, encoding, pinned(bytes)) };
    const encoded = weights.encoded(name, encoding);
    if (tier === "gpu") {
      const block = alloc(bytes, `resident ${name}`);
      native.memcpyHtoD(block.pointer, encoded, 0);
      if (encoding === "q4" && isTokenTable(name)) residentQ4Table = encoded;
      return { ...base, device: block };
    }
    disk.write(name, encoded);
    return { ...base, diskKey: name };
  };
  const specs = layerWeightTensors(model);
  const layers: Stored[][] = [];
  for (let layer = 0; layer < L; layer++) {
    const names = weights.layerTensorNames(layer);
    layers.push(
      placeTensors(specs, policy.weights).map(({ tensor, tier }, i) => store(names[i]!, isMatrix(tensor.name), tier)),
    );
  }
  const groupTiers = placeTensors(embeddingTensors(model), context.realized.weights);
  const embedding = weights.embeddingTensorNames().map((name) => {
    const table = isTokenTable(name);
    return store(name, table, groupTiers[table ? 0 : 1]?.tier ?? groupTiers[0]!.tier);
  });
  const table = embedding.find((t) => isTokenTable(t.name))!;
  const embedRest = embedding.filter((t) => t !== table);
  // A resident 4-bit table is gathered from on the host (a copy of its bytes) for the input embeddings.
  const tableHostCopy = residentQ4Table;
  if (tableHostCopy) host.add(tableHostCopy.byteLength);
  return { layers, embedding, table, embedRest, tableHostCopy };
}

export type CudaPlacement = ReturnType<typeof placeOnCuda>;
