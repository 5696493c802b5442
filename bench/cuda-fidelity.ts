/**
 * `npm run bench:cuda` (needs a GPU and `npm run build:cuda`): the CUDA backend measured against its
 * own predictions. Profiles the GPU (spillway profile --backend cuda --quick, or --profile FILE),
 * writes a synthetic OPT checkpoint (default OPT-1.3B), plans with a GPU capacity small enough to force
 * offloading, runs each plan on the GPU under the spillway and the FlexGen schedule, and prints:
 * predicted vs measured throughput per plan; the host→device bandwidth reached while streaming
 * weights (bytes moved over the copy engine's busy time) against the measured pinned peak (aim ≥ 85%);
 * the spillway/flexgen speed-up; the spillway run's setup (run() until its schedule starts: reading,
 * quantising and pinning the weights; npm run bench:setup splits it into phases); and whether a short greedy run gives the CPU backend's tokens.
 *
 * Flags: --model opt-1.3b|opt-6.7b|…  --gpu-mem GiB (default: a third of the fp16 weights)
 *        --prompt-len 256 --gen-len 32  --max-block 256 (sequences per block, gbs x nb)
 *        --profile FILE  --out FILE (JSON of every number, written after every row)  --keep DIR
 *        --emulated: a dry run of this script on the emulated device (no GPU; use a small --model, and
 *        the shipped t4 profile unless --profile is given); its numbers mean nothing.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type HardwareProfile, parseHardwareProfile, withCapacities } from "../core/hardware-profile.js";
import { resolveHardware } from "../core/resolve-hardware.js";
import { GIB } from "../core/units.js";
import { findCatalogueModel } from "../models/catalogue.js";
import { type FixedPolicy, plan } from "../planner/plan.js";
import { createEmulatedNative } from "../runtime/cuda/emulated-native.js";
import { usableCuda } from "../runtime/cuda/load-native.js";
import { cudaProfileFromSamples, measureCudaBackend } from "../runtime/cuda/profile-cuda.js";
import { defaultCapacities } from "../runtime/profile-cpu.js";
import { type RunResult, run } from "../runtime/run.js";
import { synthesizeOptWeights } from "../runtime/synth-weights.js";

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const emulated = process.argv.includes("--emulated");
const cuda = emulated ? { native: createEmulatedNative({ deviceBytes: 1 << 30 }) } : usableCuda();
if ("reason" in cuda) {
  console.log(`bench:cuda needs a usable GPU: ${cuda.reason}`);
  process.exit(0);
}
const native = cuda.native;
const onDevice = emulated ? { cudaNative: native } : {};
native.setDevice(0);
const device = native.deviceProperties(0).name;
const modelName = flag("model") ?? "opt-1.3b";
const model = findCatalogueModel(modelName);
if (model?.family !== "opt") throw new Error(`--model: expected an OPT catalogue model, got ${modelName}`);
const weightBytes = 2 * model.numLayers * (4 * model.hiddenSize ** 2 + 2 * model.hiddenSize * model.ffnSize);
const gpuBytes = Number(flag("gpu-mem") ?? (weightBytes / 3 / GIB).toFixed(2)) * GIB;
const workload = { promptLen: Number(flag("prompt-len") ?? 256), genLen: Number(flag("gen-len") ?? 32) };
// Blocks of at most this many sequences: unbounded, the planner's choice on an H200 with --gpu-mem 0.75
// was 32 x 132 = 4224 sequences, 73 s predicted per run (twice per row), longer than a GPU session.
const maxBlock = Number(flag("max-block") ?? 256);
if (!Number.isInteger(maxBlock) || maxBlock < 1)
  throw new Error(`--max-block: expected a whole number >= 1, got ${flag("max-block")}`);
const out: Record<string, unknown> = { device, model: modelName, gpuBytes, workload, maxBlock };

let profile: HardwareProfile;
const profilePath = flag("profile");
if (profilePath) profile = parseHardwareProfile(JSON.parse(readFileSync(profilePath, "utf8")), profilePath);
else if (emulated) profile = resolveHardware("t4");
else {
  console.log(`Profiling ${device} (spillway profile --backend cuda --quick) ...`);
  const samples = measureCudaBackend(native, { quick: true });
  profile = parseHardwareProfile(
    JSON.parse(
      JSON.stringify(cudaProfileFromSamples(samples, defaultCapacities(native.memGetInfo().freeBytes), device)),
    ),
    "measured profile",
  );
}
const pinnedPeak =
  profile.hostToDevice.pinnedBytesPerSecond.measured?.value ??
  profile.hostToDevice.pinnedBytesPerSecond.datasheet!.value;
console.log(
  `pinned host->device peak ${(pinnedPeak / 1e9).toFixed(2)} GB/s; GEMM ${((profile.gpu.fp16MatmulFlopsPerSecond.measured?.value ?? 0) / 1e12).toFixed(1)} TFLOP/s; device copy ${((profile.gpu.memoryBandwidthBytesPerSecond.measured?.value ?? 0) / 1e9).toFixed(0)} GB/s`,
);
out.profile = profile;
const hardware = withCapacities(profile, { gpu: gpuBytes });

const work = flag("keep") ?? mkdtempSync(join(tmpdir(), "spillway-cuda-bench-"));
try {
  const weightsDir = join(work, modelName);
  console.log(`Writing synthetic ${modelName} weights to ${weightsDir} ...`);
  const t0 = performance.now();
  synthesizeOptWeights(model, weightsDir, { seed: 0 });
  console.log(`  ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // Correctness on the real weights: a short greedy run on the GPU against the CPU backend's reference.
  {
    const short = await plan({
      model,
      hardware,
      workload: { promptLen: 16, genLen: 4 },
      fixed: { gbs: 2, nb: 1, percent: [0, 100, 100, 0, 100, 0] },
    });
    const r = await run(short, hardware, {
      weightsDir,
      capacityBytes: short.predicted.capacityBytes,
      backend: "cuda",
      ...onDevice,
    });
    console.log(
      `greedy tokens, GPU vs CPU backend (prompt 16, gen 4, weights on host): ${r.matchesReference ? "identical" : `DIFFER: ${JSON.stringify(r.tokens)} vs ${JSON.stringify(r.referenceTokens)}`}`,
    );
    out.tokensMatchCpu = r.matchesReference;
  }

  const cases: { name: string; fixed?: FixedPolicy }[] = [
    { name: "planner's choice" },
    // The 16-bit rows fix compressWeight off: left free, the search compresses them too (4-bit on the
    // H200 won, making "weights on host" the same run as "4-bit weights on host").
    { name: "weights on host", fixed: { percent: [0, 100, 100, 0, 100, 0], compressWeight: false } },
    { name: "weights half on host", fixed: { percent: [50, 50, 100, 0, 100, 0], compressWeight: false } },
    { name: "weights on disk", fixed: { percent: [0, 0, 100, 0, 100, 0], compressWeight: false } },
    { name: "4-bit weights on host", fixed: { percent: [0, 100, 100, 0, 100, 0], compressWeight: true } },
    { name: "KV on host", fixed: { percent: [0, 100, 0, 100, 100, 0], compressWeight: false } },
  ];
  const rows: Record<string, unknown>[] = [];
  console.log(
    `\n${"policy".padEnd(24)}${"gbs x nb".padStart(10)}${"predicted".padStart(11)}${"measured".padStart(11)}${"error".padStart(9)}${"flexgen".padStart(10)}${"speed-up".padStart(10)}${"h2d GB/s".padStart(10)}${"of peak".padStart(9)}   (token/s; ${modelName}, --gpu-mem ${(gpuBytes / GIB).toFixed(2)}, prompt ${workload.promptLen}, gen ${workload.genLen})`,
  );
  const outPath = flag("out");
  // Written after every row, so a run cut short still leaves what it measured.
  const save = () => {
    out.rows = rows;
    if (outPath) writeFileSync(outPath, JSON.stringify(out, null, 2) + "\n");
  };
  for (const c of cases) {
    let p: Awaited<ReturnType<typeof plan>>;
    try {
      p = await plan({ model, hardware, workload, maxBlock, ...(c.fixed ? { fixed: c.fixed } : {}) });
    } catch (error) {
      // A fixed policy that fits nowhere (a small --gpu-mem): say so and go on to the next one.
      console.log(`${c.name.padEnd(24)} does not fit: ${(error as Error).message}`);
      rows.push({ name: c.name, error: (error as Error).message });
      save();
      continue;
    }
    if (!p.predicted.feasible) {
      console.log(`${c.name.padEnd(24)} does not fit: ${p.predicted.infeasibleReasons.join("; ")}`);
      continue;
    }
    const options = {
      weightsDir,
      capacityBytes: p.predicted.capacityBytes,
      reference: false,
      backend: "cuda" as const,
      ...onDevice,
      tracePath: join(work, `${c.name.replace(/\W+/g, "-")}.trace.json`),
    };
    let spillway: RunResult;
    let flexgen: RunResult;
    const started = performance.now();
    // Setup: run() until its schedule starts (placement: reading, quantising, pinning the weights).
    let setupSeconds = Number.NaN;
    try {
      spillway = await run(p, hardware, {
        ...options,
        onProgress: (e) => {
          if (e.phase === "run" && e.done === 0) setupSeconds = (performance.now() - started) / 1000;
        },
      });
      flexgen = await run(p, hardware, { ...options, schedule: "flexgen", tracePath: undefined });
    } catch (error) {
      console.log(`${c.name.padEnd(24)} failed: ${(error as Error).message}`);
      rows.push({ name: c.name, error: (error as Error).message });
      save();
      continue;
    }
    const predicted = p.predicted.throughputTokensPerSecond;
    const measured = spillway.throughputTokensPerSecond;
    const error = (measured - predicted) / predicted;
    // Bandwidth while the copy engine streamed: bytes over its busy time.
    const h2dRate = spillway.busySeconds.h2d > 0 ? spillway.bytes.h2d / spillway.busySeconds.h2d : 0;
    const rate = (x: number) => x.toPrecision(4).padStart(11);
    console.log(
      `${c.name.padEnd(24)}${`${p.policy.gpuBatchSize}x${p.policy.numGpuBatches}`.padStart(10)}${rate(predicted)}${rate(measured)}${`${error >= 0 ? "+" : ""}${(error * 100).toFixed(1)}%`.padStart(9)}${flexgen.throughputTokensPerSecond.toPrecision(4).padStart(10)}${`${(measured / flexgen.throughputTokensPerSecond).toFixed(2)}x`.padStart(10)}${(h2dRate / 1e9).toFixed(2).padStart(10)}${`${((100 * h2dRate) / pinnedPeak).toFixed(0)}%`.padStart(9)}   (${((performance.now() - started) / 1000).toFixed(1)} s; setup ${setupSeconds.toFixed(1)} s)`,
    );
    rows.push({
      name: c.name,
      policy: p.policy,
      predicted,
      measured,
      error,
      flexgen: flexgen.throughputTokensPerSecond,
      speedup: measured / flexgen.throughputTokensPerSecond,
      h2dBytesPerSecond: h2dRate,
      ofPinnedPeak: h2dRate / pinnedPeak,
      setupSeconds,
      busySeconds: spillway.busySeconds,
      bytes: spillway.bytes,
      peakBytes: spillway.peakBytes,
    });
    save();
  }
  save();
} finally {
  if (!flag("keep")) rmSync(work, { recursive: true, force: true });
}
