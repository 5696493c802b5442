import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { InputError } from "../core/input-error.js";
import type { ModelSpec } from "../core/model-spec.js";

export const CLI = fileURLToPath(new URL("../cli/main.js", import.meta.url));

export function runCli(args: string[], input?: string): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    encoding: "utf8",
    input: input ?? "",
    timeout: 120_000,
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Deterministic PRNG (mulberry32) so property tests are reproducible. */
export { mulberry32 as random } from "../core/random.js";

/** out[m, n] = x[m, k] . w[n, k]^T + bias, in float64: the reference for linear kernels. */
export function naiveLinear(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | undefined,
  m: number,
  k: number,
  n: number,
): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = bias ? bias[j]! : 0;
      for (let p = 0; p < k; p++) s += x[i * k + p]! * w[j * k + p]!;
      out[i * n + j] = s;
    }
  }
  return out;
}

/** A two-layer OPT small enough that a checkpoint, a plan and a run take well under a second. */
export const TINY_OPT: ModelSpec = {
  name: "opt-tiny",
  family: "opt",
  numLayers: 2,
  hiddenSize: 64,
  ffnSize: 256,
  numHeads: 4,
  numKvHeads: 4,
  vocabSize: 512,
  maxPositions: 256,
  ffnKind: "relu",
  wordEmbedDim: 64,
  tiedEmbeddings: true,
  bytesPerParam: 2,
};

/** For assert.throws: the error is an InputError whose message matches `pattern`. */
export function expectInputError(pattern: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof InputError, `expected an InputError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  };
}
