import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { type HardwareProfile, withCapacities } from "../../core/hardware-profile.js";
import type { ModelSpec } from "../../core/model-spec.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { plan } from "../../planner/plan.js";
import {
  CPU_ATTENTION_DOWN_PIECES_PER_SEQUENCE,
  CPU_ATTENTION_GPU_LAUNCHES_PER_SEQUENCE,
  CPU_ATTENTION_UP_PIECES_PER_SEQUENCE,
  GPU_ATTENTION_LAUNCHES_PER_SEQUENCE,
  KV_COPY_PIECES_PER_SEQUENCE,
} from "../../planner/spillway/per-sequence-attention-work.js";
import { createEmulatedNative } from "../../runtime/cuda/emulated-native.js";
import { CUDA_NATIVE_FUNCTIONS } from "../../runtime/cuda/native-api.js";
import { run } from "../../runtime/run.js";
import { synthesizeOptWeights } from "../../runtime/synth-weights.js";
import { countingNative } from "../counting-native.js";
import { TINY_OPT } from "../helpers.js";

// The planner charges each sequence of a step the kernel launches and copy pieces the CUDA runtime
// spends on it alone (planner/spillway/per-sequence-attention-work.ts). Here the runtime's own calls on
// the emulated device are counted: what one more sequence in one more layer adds, per phase.

const dir = mkdtempSync(join(tmpdir(), "spillway-per-sequence-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Calls that launch no kernel: the addon's functions up to memset (device, memory, streams, events, copies)
 * and the size queries. `attention` launches three.
 */
const NOT_LAUNCHES = new Set<string>([
  ...CUDA_NATIVE_FUNCTIONS.slice(0, CUDA_NATIVE_FUNCTIONS.indexOf("memset") + 1),
  "attentionScratchFloats",
  "q4Bytes",
  "groupwiseBytes",
]);
const KERNELS_PER_CALL: Record<string, number> = { attention: 3 };

interface Counts {
  readonly launches: number;
  readonly h2d: number;
  readonly d2h: number;
}

/** The CUDA backend's working space is fp32 (its profile says so): a prefill step then computes its batch in one chunk. */
const hardware: HardwareProfile = (() => {
  const t4 = resolveHardware("t4");
  return withCapacities(
    { ...t4, gpu: { ...t4.gpu, workingBytesPerValue: { value: 4, source: "the CUDA backend's fp32 activations" } } },
    { gpu: 8 * 2 ** 20, cpu: 2 ** 30, disk: 2 ** 30 },
  );
})();

const weights = new Map<number, { model: ModelSpec; dir: string }>();
function checkpoint(layers: number) {
  let w = weights.get(layers);
  if (!w) {
    const model = { ...TINY_OPT, name: `opt-tiny-${layers}`, numLayers: layers };
    const path = join(dir, `layers-${layers}`);
    synthesizeOptWeights(model, path, { seed: 1 });
    w = { model, dir: path };
    weights.set(layers, w);
  }
  return w;
}

interface Shape {
  readonly compress: boolean;
  readonly cacheOffGpu: boolean;
  readonly cpuAttention: boolean;
}

async function count(shape: Shape, layers: number, gbs: number, genLen: number): Promise<Counts> {
  const { model, dir: weightsDir } = checkpoint(layers);
  const cache = shape.cacheOffGpu ? [0, 100] : [100, 0];
  const planned = await plan({
    model,
    hardware,
    workload: { promptLen: 8, genLen },
    fixed: {
      gbs,
      nb: 1,
      percent: [0, 100, cache[0]!, cache[1]!, 100, 0],
      compressWeight: false,
      compressCache: shape.compress,
      cpuAttention: shape.cpuAttention,
    },
  });
  const { native, calls } = countingNative(createEmulatedNative({ deviceBytes: 64 * 2 ** 20 }));
  await run(planned, hardware, {
    weightsDir,
    capacityBytes: planned.predicted.capacityBytes,
    backend: "cuda",
    cudaNative: native,
    reference: false,
  });
  let launches = 0;
  for (const [name, n] of calls) if (!NOT_LAUNCHES.has(name)) launches += n * (KERNELS_PER_CALL[name] ?? 1);
  return { launches, h2d: calls.get("memcpyHtoD") ?? 0, d2h: calls.get("memcpyDtoH") ?? 0 };
}

/** What one more sequence adds in one more layer: prefill (genLen 1), or one decode step (genLen 2 less genLen 1). */
async function perSequencePerLayer(shape: Shape, phase: "prefill" | "decode"): Promise<Counts> {
  const at = async (layers: number, gbs: number) => {
    const one = await count(shape, layers, gbs, 1);
    if (phase === "prefill") return one;
    const two = await count(shape, layers, gbs, 2);
    return { launches: two.launches - one.launches, h2d: two.h2d - one.h2d, d2h: two.d2h - one.d2h };
  };
  const [a, b, c, d] = [await at(2, 2), await at(2, 4), await at(4, 2), await at(4, 4)];
  const slope = (k: keyof Counts) => (d[k] - c[k] - (b[k] - a[k])) / (2 * 2);
  return { launches: slope("launches"), h2d: slope("h2d"), d2h: slope("d2h") };
}

for (const compress of [false, true]) {
  const encoding = compress ? "4-bit" : "fp16";
  test(`GPU attention over an off-GPU ${encoding} cache: the runtime's launches and copy pieces per sequence and layer are the planner's`, async () => {
    const shape = { compress, cacheOffGpu: true, cpuAttention: false };
    const prefill = await perSequencePerLayer(shape, "prefill");
    assert.deepEqual(prefill, {
      launches: GPU_ATTENTION_LAUNCHES_PER_SEQUENCE.prefill,
      h2d: 0,
      d2h: KV_COPY_PIECES_PER_SEQUENCE,
    });
    const decode = await perSequencePerLayer(shape, "decode");
    assert.deepEqual(decode, {
      launches: GPU_ATTENTION_LAUNCHES_PER_SEQUENCE.decode,
      h2d: KV_COPY_PIECES_PER_SEQUENCE,
      d2h: KV_COPY_PIECES_PER_SEQUENCE,
    });
  });
}

test("GPU attention over a GPU-resident cache: the same launches per sequence, no copies", async () => {
  const shape = { compress: true, cacheOffGpu: false, cpuAttention: false };
  assert.deepEqual(await perSequencePerLayer(shape, "decode"), {
    launches: GPU_ATTENTION_LAUNCHES_PER_SEQUENCE.decode,
    h2d: 0,
    d2h: 0,
  });
});

test("CPU attention: each off-GPU sequence's launches (its new rows encoded) and copy pieces down and up are the planner's", async () => {
  const shape = { compress: true, cacheOffGpu: true, cpuAttention: true };
  assert.deepEqual(await perSequencePerLayer(shape, "decode"), {
    launches: CPU_ATTENTION_GPU_LAUNCHES_PER_SEQUENCE,
    h2d: CPU_ATTENTION_UP_PIECES_PER_SEQUENCE,
    d2h: CPU_ATTENTION_DOWN_PIECES_PER_SEQUENCE,
  });
});
