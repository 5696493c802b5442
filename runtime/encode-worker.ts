/**
 * A worker thread of the parallel encoder (parallel-encoder.ts): reads a chunk of a checkpoint tensor
 * (its own handle on the file), converts and encodes it into its place in a shared destination, as
 * readEncodedTensor does on the main thread, and answers with the chunk's id (or the error's message).
 */
import { parentPort } from "node:worker_threads";
import { ENCODE_CHUNK_VALUES } from "./encode-tensor.js";
import { openSafetensors, type SafetensorsFile } from "./safetensors.js";
import { type Encoding, encodeRange } from "./tensor-codec.js";

export interface EncodeChunk {
  readonly id: number;
  readonly path: string;
  readonly name: string;
  readonly encoding: Encoding;
  readonly totalValues: number;
  readonly firstValue: number;
  readonly count: number;
  /** The whole tensor's stored bytes, on a SharedArrayBuffer. */
  readonly out: Uint8Array;
}

const files = new Map<string, SafetensorsFile>();
let scratch = new Float32Array(ENCODE_CHUNK_VALUES);

parentPort!.on("message", (chunk: EncodeChunk | "close") => {
  if (chunk === "close") {
    for (const file of files.values()) file.close();
    files.clear();
    parentPort!.close();
    return;
  }
  try {
    let file = files.get(chunk.path);
    if (!file) {
      file = openSafetensors(chunk.path);
      files.set(chunk.path, file);
    }
    if (scratch.length < chunk.count) scratch = new Float32Array(chunk.count);
    const values = scratch.subarray(0, chunk.count);
    file.readFloat32Range(chunk.name, chunk.firstValue, values);
    encodeRange(values, chunk.encoding, chunk.out, chunk.totalValues, chunk.firstValue);
    parentPort!.postMessage({ id: chunk.id });
  } catch (error) {
    parentPort!.postMessage({ id: chunk.id, error: error instanceof Error ? error.message : String(error) });
  }
});
