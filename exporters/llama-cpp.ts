/**
 * llama.cpp export: `llama-server` flags. llama.cpp keeps whole layers on the GPU (`-ngl`, counted from
 * the last layer; n_layer + 1 also offloads the output layer), computes the others on the CPU from the
 * memory-mapped GGUF, and for MoE models can keep the routed experts of the first N layers in host
 * memory (`--n-cpu-moe N`, or `-ot exps=CPU` for all of them).
 */

import type { HardwareProfile } from "../core/hardware-profile.js";
import { lastTrue } from "../core/last-true.js";
import type { Plan } from "../core/plan.js";
import { PLACEMENT_TOLERANCE } from "../core/policy.js";
import { activationTierOf, cacheSequences } from "../core/realize-placement.js";
import { formatBytes } from "../core/units.js";
import type { EngineKnobs } from "../engines/engine-model.js";
import { EngineUnsupportedError } from "../engines/engine-unsupported-error.js";
import { ggufQuantisation } from "../engines/llama-cpp/gguf-file-types.js";
import { UBATCH_TOKENS } from "../engines/llama-cpp.js";
import { predictOnEngine } from "../engines/plan-for-engine.js";
import type { ExportResult } from "./export-result.js";
import {
  blockSize,
  commentLines,
  commonHeader,
  type ExportOptions,
  moeAdvice,
  planWeightBytes,
} from "./export-source.js";

/** llama.cpp refuses more parallel sequences than this (`LLAMA_MAX_SEQ`, src/llama-cparams.h; 64 before mid-2025). */
export const LLAMA_MAX_SEQ = 256;
/** Logical and physical batch caps (llama.cpp's defaults are 2048 and 512). */
const MAX_BATCH = 8192;
const MAX_UBATCH = 2048;

/** llama.cpp cannot load OPT models. */
export const LLAMA_NO_OPT =
  "llama.cpp has no OPT architecture (src/llama-model.cpp maps none; convert_hf_to_gguf.py registers no OPTForCausalLM): these flags show the plan in llama.cpp's terms but no GGUF of this model exists to run them";

/**
 * llama-server's batch flags for `sequences` parallel sequences whose micro-batches hold `ubatchSequences`: -c,
 * -np, -b, -ub, -n. `options.parallel` caps -np below LLAMA_MAX_SEQ (the caller says why); `options.ubatch`
 * fixes -ub (a plan scored by the llama.cpp engine model at its own -ub).
 */
export function llamaBatchFlags(
  workload: { promptLen: number; genLen: number },
  sequences: number,
  ubatchSequences: number,
  options: { readonly parallel?: number; readonly ubatch?: number } = {},
): { flags: string[]; block: number; batch: number; ubatch: number; warnings: string[] } {
  const warnings: string[] = [];
  const block = Math.min(sequences, LLAMA_MAX_SEQ, options.parallel ?? LLAMA_MAX_SEQ);
  // (A -np lowered further, for memory, is the caller's warning, with its own count of rounds.)
  if (sequences > LLAMA_MAX_SEQ && block === LLAMA_MAX_SEQ)
    warnings.push(
      `the plan's block of ${sequences} sequences exceeds llama.cpp's ${LLAMA_MAX_SEQ} parallel sequences (LLAMA_MAX_SEQ, src/llama-cparams.h): -np is capped at ${LLAMA_MAX_SEQ}; run the block as ${Math.ceil(sequences / LLAMA_MAX_SEQ)} rounds`,
    );
  const batch = Math.max(1, Math.min(MAX_BATCH, workload.promptLen * block));
  const ubatch =
    options.ubatch ?? Math.max(1, Math.min(MAX_UBATCH, workload.promptLen * Math.min(ubatchSequences, block), batch));
  const flags = [
    `-c ${block * (workload.promptLen + workload.genLen)}`,
    `-np ${block}`,
    `-b ${batch}`,
    `-ub ${ubatch}`,
    `-n ${workload.genLen}`,
  ];
  return { flags, block, batch, ubatch, warnings };
}

/** The header line explaining llama-server's batch flags. */
export function llamaBatchNote(workload: { promptLen: number; genLen: number }, block: number): string {
  return `-c ${block * (workload.promptLen + workload.genLen)}: ${block} parallel sequences (-np) x (${workload.promptLen} + ${workload.genLen}) tokens; -b/-ub: prompt tokens of the block / of one GPU batch, capped at ${MAX_BATCH}/${MAX_UBATCH}`;
}

export function exportLlamaCpp(plan: Plan, options: ExportOptions = {}): ExportResult {
  const { modelSpec: model, policy, workload } = plan;
  const L = model.numLayers;
  const warnings: string[] = [];
  const notes: string[] = [];
  const w = planWeightBytes(model, policy);
  const embeddingsOnGpu = w.embeddings.gpu >= w.embeddings.cpu + w.embeddings.disk;
  let quant: string = ggufQuantisation(plan);
  let layersOnGpu: number;
  let ngl: number;
  /** Layers whose routed experts stay in host memory (--n-cpu-moe; L: -ot exps=CPU); undefined: none written. */
  let cpuMoe: number | undefined;
  if (policy.experts && model.moe) {
    const { advice, note } = moeAdvice(plan, options);
    if (note) notes.push(note);
    ngl = advice?.nGpuLayers ?? L + 1;
    layersOnGpu = L;
    if (advice) {
      if (quant !== "Q4_K_M" && advice.bits === 4)
        notes.push(`--n-cpu-moe was costed for a 4-bit GGUF; the plan keeps experts at ${policy.experts.bits} bits`);
      quant = advice.bits <= 4 ? "Q4_K_M" : advice.bits === 8 ? "Q8_0" : "F16";
      if (advice.nCpuMoe === undefined)
        warnings.push(
          `llama.cpp cannot fit this MoE model's attention, routers and embeddings on the GPU even with every expert on the CPU: ${advice.reason ?? "lower -ngl"}`,
        );
      else if (advice.nCpuMoe > 0) cpuMoe = Math.min(advice.nCpuMoe, L);
      if (advice.nCpuMoe !== undefined)
        notes.push(
          `MoE: the plan's llama.cpp advice keeps the routed experts of the first ${advice.nCpuMoe} of ${L} layers in host memory${advice.decodeTokensPerSecond ? ` (predicted decode ${advice.decodeTokensPerSecond.toFixed(1)} token/s for one sequence)` : ""}`,
        );
    } else {
      warnings.push("no llama.cpp MoE advice: add --n-cpu-moe by hand (the layers whose experts stay in host memory)");
    }
    warnings.push(
      `the plan caches ${policy.experts.cacheSize} of ${model.moe.numExperts} experts per layer with ${policy.experts.eviction} eviction; llama.cpp has no expert cache: experts of a layer are all on the GPU or all in host memory`,
    );
  } else if (policy.layerGroups) {
    const gpuGroups = policy.layerGroups.filter((g) => g.compute === "gpu");
    layersOnGpu = gpuGroups.reduce((s, g) => s + g.layers, 0);
    if (gpuGroups.some((g) => g.weights.gpu < 1 - PLACEMENT_TOLERANCE))
      warnings.push(
        "some GPU-computed layers stream weights from CPU or disk in the plan; llama.cpp keeps every -ngl layer's weights resident on the GPU",
      );
    const firstGpu = policy.layerGroups.findIndex((g) => g.compute === "gpu");
    const lastCpu = policy.layerGroups.map((g) => g.compute).lastIndexOf("cpu");
    if (firstGpu >= 0 && lastCpu > firstGpu)
      warnings.push(
        "llama.cpp offloads the last -ngl layers; the plan's GPU layers are not all after its CPU layers, so the GPU gets the same number of layers at the end of the model",
      );
    ngl = layersOnGpu + (layersOnGpu === L && embeddingsOnGpu ? 1 : 0);
  } else {
    layersOnGpu = Math.floor(policy.weights.gpu * L + 1e-9);
    if (layersOnGpu < L && policy.weights.gpu * L - layersOnGpu > 1e-6) {
      warnings.push(
        `the plan splits every layer (${(100 * policy.weights.gpu).toFixed(1)}% of each on the GPU, streamed in per step); llama.cpp cannot stream weights, so ${layersOnGpu} whole layers (floor(${policy.weights.gpu.toFixed(3)} x ${L})) go on the GPU and the rest compute on the CPU`,
      );
    }
    ngl = layersOnGpu + (layersOnGpu === L && embeddingsOnGpu ? 1 : 0);
  }
  // A plan made for llama.cpp (`plan --engine llama.cpp`) carries the settings it was scored with: export
  // those, so that the exported flags run what the plan predicted.
  const own = plan.engine === "llama.cpp" ? plan.engineKnobs : undefined;
  if (own?.nGpuLayers !== undefined) {
    ngl = own.nGpuLayers;
    layersOnGpu = Math.min(L, ngl);
  }
  if (own?.ggufType !== undefined) quant = own.ggufType;
  if (own?.nCpuMoe !== undefined) cpuMoe = own.nCpuMoe > 0 ? Math.min(own.nCpuMoe, L) : undefined;
  if (own && (own.nGpuLayers !== undefined || own.ggufType !== undefined || own.nCpuMoe !== undefined))
    notes.push(
      "-ngl, the GGUF type and --n-cpu-moe are the llama.cpp settings the plan was made with (plan --engine llama.cpp)",
    );
  const seqs = cacheSequences(policy.gpuBatchSize, policy.cache);
  // The plan keeps the KV cache off the GPU: llama.cpp's -nkvo (every layer's KV in host memory, attention on
  // the CPU); a plan made for llama.cpp exports the -nkvo it was scored with.
  const hostKv = own ? own.noKvOffload === true : !policy.experts && seqs.gpu === 0;
  // llama-server's batch: -np at most LLAMA_MAX_SEQ (a larger block runs in rounds); a plan scored by the
  // llama.cpp engine model keeps the -np and -ub it was scored at.
  const sequences = blockSize(policy);
  let parallel = Math.min(sequences, LLAMA_MAX_SEQ, own?.parallelSequences ?? LLAMA_MAX_SEQ);
  const ubatch = own ? (own.ubatchTokens ?? UBATCH_TOKENS) : undefined;
  const batchingAt = (np: number) =>
    llamaBatchFlags(workload, sequences, policy.gpuBatchSize, {
      parallel: np,
      ...(ubatch !== undefined ? { ubatch } : {}),
    });
  const knobsAt = (n: number, np: number, moe = cpuMoe): EngineKnobs => {
    const ub = batchingAt(np).ubatch;
    return {
      nGpuLayers: n,
      ggufType: quant,
      ...(moe !== undefined ? { nCpuMoe: moe } : {}),
      ...(hostKv ? { noKvOffload: true } : {}),
      ...(np !== sequences ? { parallelSequences: np } : {}),
      ...(ub !== UBATCH_TOKENS ? { ubatchTokens: ub } : {}),
    };
  };
  // The plan's placement in llama.cpp's own memory (its KV and compute buffers are not Spillway's): where it
  // overflows on the hardware given, fewer parallel sequences for host memory, then (MoE) more layers' experts
  // on the host and fewer -ngl layers for the GPU.
  if (!own && options.hardware) {
    const fit = fitLlamaServer(
      plan,
      options.hardware,
      ngl,
      parallel,
      policy.experts ? (cpuMoe ?? 0) : undefined,
      knobsAt,
    );
    if (fit?.parallel !== undefined && fit.parallel < parallel) {
      warnings.push(
        `${parallel} parallel sequences do not fit llama.cpp's host memory on ${options.hardware.name} (${fit.parallelReason}); -np lowered to ${fit.parallel}, the most that fit by the llama.cpp engine model: run the block of ${sequences} as ${Math.ceil(sequences / fit.parallel)} rounds`,
      );
      parallel = fit.parallel;
    }
    if (fit?.cpuMoe !== undefined && fit.cpuMoe > (cpuMoe ?? 0)) {
      warnings.push(
        `--n-cpu-moe ${cpuMoe ?? 0} does not fit llama.cpp's GPU memory on ${options.hardware.name} with ${parallel} parallel sequences and -ub ${batchingAt(parallel).ubatch} (${fit.cpuMoeReason}); raised to ${fit.cpuMoe}, the fewest host-expert layers that fit by the llama.cpp engine model (the advice was costed for one sequence)`,
      );
      cpuMoe = fit.cpuMoe;
    }
    if (fit?.ngl !== undefined && fit.ngl < ngl) {
      warnings.push(
        `-ngl ${ngl} (the plan's ${layersOnGpu} GPU layers${ngl > layersOnGpu ? " and the output layer" : ""}) does not fit llama.cpp's GPU memory on ${options.hardware.name} (${fit.nglReason}); lowered to -ngl ${fit.ngl}, the most that fit by the llama.cpp engine model`,
      );
      ngl = fit.ngl;
      layersOnGpu = Math.min(L, ngl);
    }
  }
  if (embeddingsOnGpu && layersOnGpu < L && !policy.experts)
    warnings.push(
      `llama.cpp offloads the output layer only with every layer (-ngl ${L + 1}); the plan's GPU-resident LM head stays on the CPU`,
    );
  if (w.total.disk > 0)
    warnings.push(
      "llama.cpp has no disk tier: weights that do not fit in RAM page in from the memory-mapped GGUF (keep mmap on, do not pass --mlock)",
    );
  if (policy.layerGroups?.some((g) => g.compute === "cpu") || layersOnGpu < L)
    notes.push(`layers beyond -ngl compute on the CPU from host memory`);

  if (model.family === "opt") warnings.push(LLAMA_NO_OPT);
  if (policy.cache.disk > 0)
    warnings.push(
      `the plan keeps ${(100 * policy.cache.disk).toFixed(0)}% of the KV cache on disk; llama.cpp has no disk tier for the KV cache, so it must fit in GPU or host memory`,
    );
  const batching = batchingAt(parallel);
  warnings.push(...batching.warnings);
  const block = batching.block;
  const moeFlags = cpuMoe === undefined ? [] : cpuMoe >= L ? ["-ot exps=CPU"] : [`--n-cpu-moe ${cpuMoe}`];
  const flags = ["llama-server", `-m ${model.name}-${quant}.gguf`, `-ngl ${ngl}`, ...moeFlags, ...batching.flags];
  if (hostKv) {
    flags.push("-nkvo");
    notes.push(
      own
        ? "KV cache in host memory (-nkvo), the plan's llama.cpp setting"
        : "KV cache in host memory (-nkvo), as the plan keeps it off the GPU",
    );
  } else if (!own && seqs.gpu < policy.gpuBatchSize) {
    warnings.push(
      `the plan keeps ${seqs.gpu} of every ${policy.gpuBatchSize} sequences' KV cache on the GPU; llama.cpp keeps each offloaded layer's KV on the GPU (or all of it in host memory with -nkvo)`,
    );
  }
  if (policy.compressCache) {
    flags.push("-ctk q4_0");
    warnings.push(
      "4-bit KV cache: only the K cache is quantised (-ctk q4_0); a quantised V cache (-ctv) needs flash attention, whose flag differs between llama.cpp versions",
    );
  }
  if (policy.cpuAttention && seqs.gpu > 0)
    warnings.push(
      "the plan computes decode attention over CPU-resident KV on the CPU; llama.cpp computes attention where the layer's KV lives",
    );
  if (activationTierOf(policy.activations) !== "gpu")
    warnings.push("the plan keeps activations off the GPU; llama.cpp keeps them with the compute");
  if (!policy.pinWeight) notes.push("unpinned weights: llama.cpp's host buffers are its own choice");

  const header = [
    ...commonHeader(plan, "llama.cpp (llama-server; the same flags work for llama-cli)", options),
    `-m: a GGUF of ${model.name} quantised ${quant} (${own?.ggufType !== undefined ? "the plan's llama.cpp setting" : quant === "F16" ? "the plan keeps fp16 weights" : quant === "Q8_0" ? "8-bit plan" : "4-bit plan"}); the file name is a placeholder`,
    `-ngl ${ngl}: ${layersOnGpu} of ${L} layers on the GPU${ngl > layersOnGpu ? " plus the output layer (n_layer + 1)" : ""}`,
    llamaBatchNote(workload, block),
    "--threads: add --threads <physical cores of your CPU> (llama.cpp's default guesses it; hyper-threads do not help)",
    ...notes,
  ];
  const text =
    [
      commentLines(header),
      ...(warnings.length ? [commentLines(warnings, "# warning: ")] : []),
      flags.join(" \\\n  "),
    ].join("\n") + "\n";
  return {
    target: "llama.cpp",
    text,
    warnings,
    engineKnobs: knobsAt(ngl, parallel),
  };
}

/** What fitLlamaServer changed, each with why the asked value did not fit. */
interface LlamaServerFit {
  readonly parallel?: number;
  readonly parallelReason?: string;
  readonly cpuMoe?: number;
  readonly cpuMoeReason?: string;
  readonly ngl?: number;
  readonly nglReason?: string;
}

/**
 * Where the exported settings overflow llama.cpp's memory by its engine model on `hardware`: the most parallel
 * sequences (up to `parallel`) whose host memory fits; then, for an MoE model (`cpuMoe` defined), the fewest
 * layers with their routed experts on the host (from `cpuMoe` up) whose GPU memory fits; then the most -ngl (up
 * to `ngl`) whose GPU memory fits, each with why the asked value does not. Undefined fields: the asked value fits, or nothing does (the
 * prediction's DOES NOT FIT says so). Undefined: llama.cpp cannot run the model.
 */
function fitLlamaServer(
  plan: Plan,
  hardware: HardwareProfile,
  ngl: number,
  parallel: number,
  cpuMoe: number | undefined,
  knobsAt: (ngl: number, parallel: number, cpuMoe?: number) => EngineKnobs,
): LlamaServerFit | undefined {
  const peak = (n: number, np: number, tier: "gpu" | "cpu", moe = cpuMoe) => {
    const p = predictOnEngine({
      engine: "llama.cpp",
      model: plan.modelSpec,
      hardware,
      workload: plan.workload,
      policy: plan.policy,
      knobs: knobsAt(n, np, moe),
    });
    return {
      fits: p.peakBytes[tier] <= p.capacityBytes[tier],
      peak: p.peakBytes[tier],
      capacity: p.capacityBytes[tier],
    };
  };
  /** The largest value in [min, max) for which `fits` holds (`max` does not); undefined when `min` fails too. */
  const largest = (min: number, max: number, fits: (v: number) => boolean): number | undefined =>
    fits(min) ? lastTrue(min, max, fits) : undefined;
  const why = (p: { peak: number; capacity: number }, tier: string) =>
    `${tier} peak ${formatBytes(p.peak)} of ${formatBytes(p.capacity)}`;
  const result: { -readonly [K in keyof LlamaServerFit]: LlamaServerFit[K] } = {};
  try {
    const host = peak(ngl, parallel, "cpu");
    if (!host.fits) {
      const np = largest(1, parallel, (v) => peak(ngl, v, "cpu").fits);
      if (np !== undefined) Object.assign(result, { parallel: np, parallelReason: why(host, "host") });
    }
    const np = result.parallel ?? parallel;
    let gpu = peak(ngl, np, "gpu");
    // An MoE model first keeps more layers' routed experts in host memory (llama.cpp's --fit raises --n-cpu-moe
    // before it lowers -ngl), then lowers -ngl if even every layer's experts on the host do not fit.
    if (!gpu.fits && cpuMoe !== undefined) {
      const L = plan.modelSpec.numLayers;
      const fitsAt = (moe: number) => peak(ngl, np, "gpu", moe).fits;
      if (fitsAt(L)) {
        // The last count that overflows (cpuMoe does), plus one.
        const fewest = largest(cpuMoe, L, (v) => !fitsAt(v))! + 1;
        Object.assign(result, { cpuMoe: fewest, cpuMoeReason: why(gpu, "GPU") });
        gpu = peak(ngl, np, "gpu", fewest);
      }
    }
    if (!gpu.fits) {
      const moe = result.cpuMoe ?? cpuMoe;
      const n = largest(0, ngl, (v) => peak(v, np, "gpu", moe).fits);
      if (n !== undefined) Object.assign(result, { ngl: n, nglReason: why(gpu, "GPU") });
    }
  } catch (error) {
    if (error instanceof EngineUnsupportedError) return undefined;
    throw error;
  }
  return result;
}
