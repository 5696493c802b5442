/**
 * Run setup, phase by phase: what `run()` spends placing a checkpoint's weights before its first layer
 * computes, in seconds per GiB of the checkpoint's tensor bytes, on a synthetic OPT checkpoint. Phases
 * (each one pass over every tensor): reading the file into fresh memory (the host tier's first touch
 * included), decoding fp16 to fp32, encoding fp32 to fp16, quantising fp32 to 4-bit; then the whole
 * placement of one tensor as run() does it (weights.encoded() into a fresh shared array) beside the
 * fp32 round trip that placement used to take (weights.tensor() then encode()), for fp16 and 4-bit,
 * with their ratio; 4-bit quantisation of every matrix on the parallel encoder's threads against the
 * main thread (the machine's cores, at most 16); then run() itself up to its first computed layer (setup) for the two policies of the
 * H200 session, weights on host in 16 bits and 4-bit weights and KV on host, on the CPU backend.
 *
 * In `npm run bench` on opt-125m; `npm run bench:setup -- --model opt-1.3b [--weights DIR]` on a larger
 * one (a DIR holding a checkpoint of that model is reused, otherwise one is written to a temporary folder).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { withCapacities } from "../core/hardware-profile.js";
import { resolveHardware } from "../core/resolve-hardware.js";
import { GIB } from "../core/units.js";
import { findCatalogueModel } from "../models/catalogue.js";
import { type FixedPolicy, plan } from "../planner/plan.js";
import { ENCODE_CHUNK_VALUES } from "../runtime/encode-tensor.js";
import { fromFloat16Array, toFloat16Array } from "../runtime/fp16.js";
import { loadOptCheckpoint, type OptWeights } from "../runtime/opt-checkpoint.js";
import { ParallelEncoder } from "../runtime/parallel-encoder.js";
import { run } from "../runtime/run.js";
import { elementCount } from "../runtime/safetensors.js";
import { synthesizeOptWeights } from "../runtime/synth-weights.js";
import { encode, encodedByteLength } from "../runtime/tensor-codec.js";
import { sharedBytes } from "../runtime/transfer-engine.js";

/** Values converted per call in the conversion-only phases (encode-tensor.ts's chunk). */
const PHASE_CHUNK_VALUES = ENCODE_CHUNK_VALUES;

interface Tensor {
  readonly name: string;
  readonly values: number;
  readonly matrix: boolean;
}

function tensorsOf(weights: OptWeights): Tensor[] {
  const names = [
    ...weights.embeddingTensorNames(),
    ...Array.from({ length: weights.model.numLayers }, (_, l) => weights.layerTensorNames(l)).flat(),
  ];
  return names.map((name) => ({
    name,
    values: elementCount(weights.info(name).shape),
    matrix: name.endsWith(".weight") && !name.includes("norm"),
  }));
}

function seconds(work: () => void): number {
  const start = performance.now();
  work();
  return (performance.now() - start) / 1000;
}

/** Each phase's seconds per GiB of stored tensor bytes, and the placement before/after ratios. */
export function benchSetupPhases(weights: OptWeights, print: (line: string) => void = console.log): void {
  const tensors = tensorsOf(weights);
  const storedBytes = tensors.reduce((sum, t) => sum + weights.info(t.name).byteLength, 0);
  const perGib = (s: number) => `${((s * GIB) / storedBytes).toFixed(2).padStart(6)} s/GiB`;
  // The conversion phases run over the first chunk of the largest matrix (its values, not zeros: a
  // group of equal values quantises without dividing).
  const largest = tensors.reduce((a, b) => (b.values > a.values ? b : a));
  const fp32 = weights.tensor(largest.name).slice(0, PHASE_CHUNK_VALUES);
  const fp16 = toFloat16Array(fp32);
  const scratch = new Float32Array(PHASE_CHUNK_VALUES);
  const scratchBits = new Uint16Array(PHASE_CHUNK_VALUES);
  const chunks = (work: (count: number) => void) => {
    for (const t of tensors)
      for (let first = 0; first < t.values; first += PHASE_CHUNK_VALUES)
        work(Math.min(PHASE_CHUNK_VALUES, t.values - first));
  };
  const info = (name: string) => weights.info(name);
  const rows: [string, number][] = [
    [
      "read into fresh memory",
      seconds(() => {
        for (const t of tensors) weights.encoded(t.name, "f16", sharedBytes(info(t.name).byteLength));
      }),
    ],
    ["fp16 -> fp32", seconds(() => chunks((n) => fromFloat16Array(fp16.subarray(0, n), scratch)))],
    ["fp32 -> fp16", seconds(() => chunks((n) => toFloat16Array(fp32.subarray(0, n), scratchBits)))],
    ["fp32 -> 4-bit", seconds(() => chunks((n) => encode(fp32.subarray(0, n), "q4")))],
  ];
  print(`  checkpoint: ${(storedBytes / GIB).toFixed(2)} GiB in ${tensors.length} tensors`);
  for (const [name, s] of rows) print(`  ${name.padEnd(40)} ${perGib(s)}`);
  for (const compress of [false, true]) {
    const encodingOf = (t: Tensor) => (compress && t.matrix ? "q4" : "f16");
    const after = seconds(() => {
      for (const t of tensors) {
        const encoding = encodingOf(t);
        weights.encoded(t.name, encoding, sharedBytes(encodedByteLength(t.values, encoding)));
      }
    });
    const before = seconds(() => {
      for (const t of tensors) {
        const encoding = encodingOf(t);
        encode(weights.tensor(t.name), encoding, sharedBytes(encodedByteLength(t.values, encoding)));
      }
    });
    const what = compress ? "4-bit matrices" : "fp16";
    print(
      `  placement, ${what.padEnd(15)} read into place ${perGib(after)}   fp32 round trip ${perGib(before)}   ${(before / after).toFixed(2)}x`,
    );
  }
}

/** 4-bit quantisation of every matrix, layer by layer as placement does it: on the encoder's threads against the main thread. */
export async function benchParallelQuantisation(
  weights: OptWeights,
  print: (line: string) => void = console.log,
): Promise<void> {
  const threads = ParallelEncoder.threadsAvailable();
  const encoder = await ParallelEncoder.start(threads);
  if (!encoder) {
    print("  4-bit on threads: one core, the main thread quantises");
    return;
  }
  try {
    const matrices = tensorsOf(weights).filter((t) => t.matrix);
    const bytes = matrices.reduce((sum, t) => sum + weights.info(t.name).byteLength, 0);
    const isMatrix = new Set(matrices.map((t) => t.name));
    const layers = [
      ...Array.from({ length: weights.model.numLayers }, (_, l) => weights.layerTensorNames(l)),
      weights.embeddingTensorNames(),
    ].map((names) => names.filter((name) => isMatrix.has(name)));
    let start = performance.now();
    for (const layer of layers)
      await encoder.encode(
        weights,
        layer.map((name) => ({ name, encoding: "q4" as const })),
      );
    const threaded = (performance.now() - start) / 1000;
    start = performance.now();
    for (const t of matrices) weights.encoded(t.name, "q4", sharedBytes(encodedByteLength(t.values, "q4")));
    const single = (performance.now() - start) / 1000;
    const perGib = (s: number) => `${((s * GIB) / bytes).toFixed(2).padStart(6)} s/GiB`;
    print(
      `  4-bit matrices, ${threads} threads ${perGib(threaded)}   main thread ${perGib(single)}   ${(single / threaded).toFixed(2)}x`,
    );
  } finally {
    await encoder.close();
  }
}

/** run() up to its first computed layer (placement, buffers, workers) for the H200 session's two policies, CPU backend. */
export async function benchRunSetup(weightsDir: string, print: (line: string) => void = console.log): Promise<void> {
  const weights = loadOptCheckpoint(weightsDir);
  const model = weights.model;
  const storedBytes = tensorsOf(weights).reduce((sum, t) => sum + weights.info(t.name).byteLength, 0);
  weights.close();
  const hardware = withCapacities(resolveHardware("t4"), { gpu: storedBytes / 3 });
  const policies: { name: string; fixed: FixedPolicy }[] = [
    { name: "weights on host (16-bit)", fixed: { percent: [0, 100, 100, 0, 100, 0], compressWeight: false } },
    {
      name: "4-bit weights and KV on host",
      fixed: { percent: [0, 100, 0, 100, 0, 100], compressWeight: true, compressCache: true },
    },
  ];
  for (const p of policies) {
    const planned = await plan({
      model,
      hardware,
      workload: { promptLen: 16, genLen: 1 },
      fixed: { gbs: 1, nb: 1, ...p.fixed },
    });
    const start = performance.now();
    let setup = 0;
    await run(planned, hardware, {
      weightsDir,
      capacityBytes: planned.predicted.capacityBytes,
      reference: false,
      onProgress: (e) => {
        if (e.phase === "run" && e.done === 0 && setup === 0) setup = (performance.now() - start) / 1000;
      },
    });
    const total = (performance.now() - start) / 1000;
    print(
      `  run() setup, ${p.name.padEnd(29)} ${setup.toFixed(2).padStart(6)} s = ${((setup * GIB) / storedBytes).toFixed(2)} s/GiB   (whole run ${total.toFixed(2)} s, prompt 16, gen 1)`,
    );
  }
}

/** The bench section: a synthetic checkpoint of `modelName` (or the one in `weightsDir`), phases then run(). */
export async function benchSetupTime(modelName = "opt-125m", weightsDir?: string): Promise<void> {
  const model = findCatalogueModel(modelName);
  if (model?.family !== "opt") throw new Error(`--model: expected an OPT catalogue model, got ${modelName}`);
  const work =
    weightsDir && existsSync(join(weightsDir, "config.json"))
      ? undefined
      : mkdtempSync(join(tmpdir(), "spillway-setup-bench-"));
  const dir = work ? join(work, modelName) : weightsDir!;
  try {
    if (work) synthesizeOptWeights(model, dir, { seed: 0 });
    const weights = loadOptCheckpoint(dir);
    try {
      benchSetupPhases(weights);
      await benchParallelQuantisation(weights);
    } finally {
      weights.close();
    }
    await benchRunSetup(dir);
  } finally {
    if (work) rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const flag = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const modelName = flag("model") ?? "opt-125m";
  console.log(`Run setup (${modelName}, seconds per GiB of checkpoint tensors; phases on one thread)`);
  await benchSetupTime(modelName, flag("weights"));
}
