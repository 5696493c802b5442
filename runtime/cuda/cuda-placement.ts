/** Placement on the CUDA backend: every layer and embedding tensor encoded once, where the plan says. */
import { layerWeightTensors } from "../../core/model-spec.js";
import { embeddingTensors, placeTensors } from "../../core/realize-placement.js";
import type { Tier } from "../../core/tiers.js";
import { encodeQuantized, type ParallelEncoder } from "../parallel-encoder.js";
import { elementCount } from "../safetensors.js";
import { type Encoding, encodedByteLength } from "../tensor-codec.js";
import { type CudaRunContext, isMatrix, isVector, type Stored } from "./cuda-context.js";

function isTokenTable(name: string): boolean {
  return name.endsWith("embed_tokens.weight");
}

/**
 * Every tensor encoded once and stored where the plan says: resident on the device, pinned on the host,
 * or in an offload file; 4-bit ones quantised on the encoder's threads, a layer at a time, when given one.
 */
export async function placeOnCuda(ctx: CudaRunContext, encoder?: ParallelEncoder) {
  const { native, model, policy, context, disk, weights, L, host, pinned, alloc } = ctx;
  /** A resident 4-bit token table's bytes, kept on the host too (tableHostCopy). */
  let residentQ4Table: Uint8Array | undefined;
  // Read from the checkpoint straight into a pinned array (host tier) unless encoded already; into a fresh array otherwise.
  const store = (name: string, encoding: Encoding, tier: Tier, encoded?: Uint8Array): Stored => {
    const values = elementCount(weights.info(name).shape);
    const bytes = encodedByteLength(values, encoding);
    const base = { name, values, encoding, bytes, tier, vector: isVector(name) };
    if (tier === "cpu") {
      const host = pinned(bytes);
      if (encoded) host.set(encoded);
      else weights.encoded(name, encoding, host);
      return { ...base, host };
    }
    const stored = encoded ?? weights.encoded(name, encoding);
    if (tier === "gpu") {
      const block = alloc(bytes, `resident ${name}`);
      native.memcpyHtoD(block.pointer, stored, 0);
      if (encoding === "q4" && isTokenTable(name)) residentQ4Table = stored;
      return { ...base, device: block };
    }
    disk.write(name, stored);
    return { ...base, diskKey: name };
  };
  const placeAll = async (tensors: { name: string; encoding: Encoding; tier: Tier }[]) => {
    const encoded = await encodeQuantized(encoder, weights, tensors);
    return tensors.map((t) => store(t.name, t.encoding, t.tier, encoded.get(t.name)));
  };
  const encodingOf = (matrix: boolean): Encoding => (matrix && policy.compressWeight ? "q4" : "f16");
  const specs = layerWeightTensors(model);
  const layers: Stored[][] = [];
  for (let layer = 0; layer < L; layer++) {
    const names = weights.layerTensorNames(layer);
    const tensors = placeTensors(specs, policy.weights).map(({ tensor, tier }, i) => ({
      name: names[i]!,
      encoding: encodingOf(isMatrix(tensor.name)),
      tier,
    }));
    layers.push(await placeAll(tensors));
  }
  const groupTiers = placeTensors(embeddingTensors(model), context.realized.weights);
  const embedding = await placeAll(
    weights.embeddingTensorNames().map((name) => {
      const table = isTokenTable(name);
      return { name, encoding: encodingOf(table), tier: groupTiers[table ? 0 : 1]?.tier ?? groupTiers[0]!.tier };
    }),
  );
  const table = embedding.find((t) => isTokenTable(t.name))!;
  const embedRest = embedding.filter((t) => t !== table);
  // A resident 4-bit table is gathered from on the host (a copy of its bytes) for the input embeddings.
  const tableHostCopy = residentQ4Table;
  if (tableHostCopy) host.add(tableHostCopy.byteLength);
  return { layers, embedding, table, embedRest, tableHostCopy };
}

export type CudaPlacement = Awaited<ReturnType<typeof placeOnCuda>>;
