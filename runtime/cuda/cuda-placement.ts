/** Placement on the CUDA backend: every layer and embedding tensor encoded once, where the plan says. */
import { layerWeightTensors } from "../../core/model-spec.js";
import { embeddingTensors, placeTensors } from "../../core/realize-placement.js";
import type { Tier } from "../../core/tiers.js";
import { type Encoding, encode } from "../tensor-codec.js";
import { type CudaRunContext, isMatrix, isVector, type Stored } from "./cuda-context.js";

/** Every tensor encoded once and stored where the plan says: resident on the device, pinned on the host, or in an offload file. */
export function placeOnCuda(ctx: CudaRunContext) {
  const { native, model, policy, context, disk, weights, L, host, pinned, alloc } = ctx;
  // Placement: every tensor encoded once, where the plan says.
  const store = (name: string, matrix: boolean, tier: Tier): Stored => {
    const encoding: Encoding = matrix && policy.compressWeight ? "q4" : "f16";
    const values = weights.tensor(name);
    const encoded = encode(values, encoding);
    const base = { name, values: values.length, encoding, bytes: encoded.byteLength, tier, vector: isVector(name) };
    if (tier === "gpu") {
      const block = alloc(encoded.byteLength, `resident ${name}`);
      native.memcpyHtoD(block.pointer, encoded, 0);
      return { ...base, device: block };
    }
    if (tier === "cpu") {
      const bytes = pinned(encoded.byteLength);
      bytes.set(encoded);
      return { ...base, host: bytes };
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
    const table = name.endsWith("embed_tokens.weight");
    return store(name, table, groupTiers[table ? 0 : 1]?.tier ?? groupTiers[0]!.tier);
  });
  const table = embedding.find((t) => t.name.endsWith("embed_tokens.weight"))!;
  const embedRest = embedding.filter((t) => t !== table);
  // A resident 4-bit table is gathered from on the host (a copy of its bytes) for the input embeddings.
  let tableHostCopy: Uint8Array | undefined;
  if (table.tier === "gpu" && table.encoding === "q4") {
    tableHostCopy = encode(weights.tensor(table.name), "q4");
    host.add(tableHostCopy.byteLength);
  }
  return { layers, embedding, table, embedRest, tableHostCopy };
}

export type CudaPlacement = ReturnType<typeof placeOnCuda>;
