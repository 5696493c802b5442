/**
 * Spillway's cost model for one decoder layer: the bytes every link moves and the seconds every
 * resource is busy, for loading a layer's weights (once per block) and for processing one GPU batch.
 * Every figure is an affine function of the placement fractions, so the same expressions give the
 * LP's rows and, evaluated at a realized placement, the exact prediction. Transfers cost a fixed
 * latency plus bytes over bandwidth; every GEMM and attention kernel is a roofline (the larger of
 * FLOPs over peak and bytes over memory bandwidth) plus a launch latency.
 */

import { COMPRESSED_FRACTION_OF_FP16 } from "../../core/compression.js";
import { layerWorkingValues } from "../../core/layer-working-set.js";
import type { Link } from "../../core/links.js";
import { kvDim, type ModelSpec, qDim } from "../../core/model-spec.js";
import type { ComputeDevice } from "../../core/policy.js";
import type { Resource } from "../../core/resources.js";
import { layerAllReduceSeconds } from "../../core/ring-all-reduce.js";
import type { ScheduleName } from "../../core/schedule-name.js";
import type { Tier } from "../../core/tiers.js";
import type { Workload } from "../../core/workload.js";
import { scheduleStrategy } from "../../schedule/strategies.js";
import type { Affine, VariableSpace } from "../lp/affine.js";
import { type HardwareRates, matmulSecondsPerWeight } from "./hardware-rates.js";
import {
  CPU_ATTENTION_DOWN_PIECES_PER_SEQUENCE,
  CPU_ATTENTION_GPU_LAUNCHES_PER_SEQUENCE,
  CPU_ATTENTION_UP_PIECES_PER_SEQUENCE,
  GPU_ATTENTION_LAUNCHES_PER_SEQUENCE,
  KV_COPY_PIECES_PER_SEQUENCE,
} from "./per-sequence-attention-work.js";

export interface CostSettings {
  readonly gbs: number;
  readonly nb: number;
  readonly compressWeight: boolean;
  readonly compressCache: boolean;
  readonly cpuAttention: boolean;
  readonly activationTier: Tier;
  readonly pinWeight: boolean;
  readonly overlap: boolean;
  readonly schedule: ScheduleName;
  /**
   * Where the layer computes (default GPU). A CPU layer reads its weights and KV in place from host
   * memory: no weight or KV traffic, every kernel on the CPU at its roofline.
   */
  readonly compute?: ComputeDevice;
}

/** Placement fractions as affine expressions (LP variables, or constants for a realized placement). */
export interface PlacementTerms {
  readonly wg: Affine;
  readonly wc: Affine;
  readonly wd: Affine;
  readonly cg: Affine;
  readonly cc: Affine;
  readonly cd: Affine;
  /** Bytes of embeddings / LM head on each tier. */
  readonly embedding: Readonly<Record<Tier, Affine>>;
  /** GPU buffer for using the off-GPU embeddings (the token table streamed in chunks). */
  readonly headBuffer: Affine;
  /**
   * Stored bytes of one layer's weights on each tier, where they are known exactly (a realized
   * placement: compressed matrices and uncompressed vectors make the byte split differ from the
   * parameter split); without it, the fraction times the layer's stored bytes (the LP's estimate).
   */
  readonly layerWeightBytes?: Readonly<Record<Tier, Affine>>;
}

export interface StepCosts {
  /** Busy seconds per resource. */
  readonly seconds: Readonly<Record<Resource, Affine>>;
  /** Bytes moved per link. */
  readonly bytes: Readonly<Record<Link, Affine>>;
}

export interface LayerCosts {
  /** Loading one layer's off-GPU weights (and decompressing them): once per layer per block. */
  readonly weights: StepCosts;
  /** One GPU batch through one layer. */
  readonly batch: StepCosts;
  /** Decode steps of a GPU layer with CPU attention: the parts of `batch` its per-batch round trip runs through. */
  readonly cpuAttentionChain?: CpuAttentionChain;
  /** A GPU layer's transfers that run one after another within a step (parts of `batch`). */
  readonly stepTransferChains?: StepTransferChains;
}

/**
 * Per batch, the parts of `batch` whose transfers follow one another within one step: a read from disk
 * before its copy up, a copy down before its write to disk. A schedule that synchronises every step
 * (flexgen, layer-time.ts) waits for the whole chain in the step that issues it; one that streams
 * (spillway) overlaps it with the neighbouring steps.
 */
export interface StepTransferChains {
  /** The layer's CPU-resident weights copied up (part of weights.h2d): ready as the layer's first step starts. */
  readonly weightCopyFromCpuSeconds: Affine;
  /** Decode with attention on the GPU: the off-GPU KV read from disk, then copied up with the CPU-resident KV in one copy. */
  readonly kvLoad: ReadThenCopy;
  /**
   * The KV copy up of kvLoad where no sequence of the batch is on disk, and at most zero where one is:
   * (cc - gbs cd) times one batch's copy, cd being a multiple of 1 / gbs (whole sequences). A copy that
   * waits for no read is ready as its step starts.
   */
  readonly kvCopyWithoutDiskSeconds: Affine;
  /** The new KV of off-GPU sequences copied down, then written to disk for disk sequences (GPU attention). */
  readonly kvStore: CopyThenWrite;
  /** Activations off the GPU: the hidden state read from disk (activations on disk), then copied up. */
  readonly hiddenLoad: ReadThenCopy;
  /** Activations off the GPU: the hidden state copied down, then written to disk (activations on disk). */
  readonly hiddenStore: CopyThenWrite;
}

export interface ReadThenCopy {
  readonly diskReadSeconds: Affine;
  readonly h2dSeconds: Affine;
}

export interface CopyThenWrite {
  readonly d2hSeconds: Affine;
  readonly diskWriteSeconds: Affine;
}

/** Per batch, the parts of a CPU-attention decode step that its chain of dependencies runs through (layer-time.ts). */
export interface CpuAttentionChain {
  /** Reading the batch's disk-resident KV into pinned host staging (part of batch.seconds.diskRead). */
  readonly kvDiskReadSeconds: Affine;
  /** q, k, v of the CPU-attended sequences down to the host (part of batch.seconds.d2h). */
  readonly qkvDownSeconds: Affine;
  /** Their attention output back up (part of batch.seconds.h2d). */
  readonly outputUpSeconds: Affine;
  /** The GPU work after the output is back: batch.seconds.gpu less the q, k, v projection and the GPU-resident sequences' attention. */
  readonly gpuAfterSeconds: Affine;
}

export type Phase = "prefill" | "decode";

/** Model-derived constants the formulas need, computed once per (model, compression). */
export interface ModelCostConstants {
  readonly layerParams: number;
  /** Stored bytes of one layer's weights (compressed when weights are). */
  readonly layerStoredBytes: number;
  readonly layerTensors: number;
  /** Stored bytes of embeddings, final norm and LM head. */
  readonly embeddingStoredBytes: number;
  /** The head buffer when every embedding is off the GPU. */
  readonly headBufferAllOffBytes: number;
}

export class StepCostModel {
  readonly h: number;
  /** Width of Q and of the attention output (hiddenSize unless the head size is decoupled). */
  readonly q: number;
  readonly kv: number;
  readonly f: number;
  readonly nh: number;
  readonly cacheFactor: number;

  constructor(
    readonly model: ModelSpec,
    readonly rates: HardwareRates,
    readonly workload: Workload,
    readonly settings: CostSettings,
    readonly constants: ModelCostConstants,
    readonly space: VariableSpace,
  ) {
    this.h = model.hiddenSize;
    this.q = qDim(model);
    this.kv = kvDim(model);
    this.f = model.ffnSize;
    this.nh = model.numHeads;
    this.cacheFactor = settings.compressCache ? COMPRESSED_FRACTION_OF_FP16 : 1;
  }

  private zero(): Affine {
    return this.space.constant(0);
  }

  /** Stored bytes of one sequence's KV cache (K and V, prompt and generated tokens) in one layer. */
  get kvBytesPerSequenceLayer(): number {
    return 2 * (this.workload.promptLen + this.workload.genLen) * this.kv * 2 * this.cacheFactor;
  }

  private get onCpu(): boolean {
    return this.settings.compute === "cpu";
  }

  /**
   * A CPU GEMM: the roofline of the CPU's fp32 FLOP/s and memory bandwidth over the stored weights
   * (fp16, or 4-bit groups dequantised in registers as llama.cpp's Q4 kernels do).
   */
  cpuGemmSeconds(tokens: number, k: number, n: number): number {
    const r = this.rates;
    const weightBytes = k * n * 2 * (this.settings.compressWeight ? COMPRESSED_FRACTION_OF_FP16 : 1);
    return Math.max(
      (2 * tokens * k * n) / r.cpuFlopsPerSecond,
      (weightBytes + 2 * tokens * (k + n)) / r.cpuMemoryBytesPerSecond,
    );
  }

  /**
   * Time of one GEMM: tokens x k times k x n, fp16 weights of k*n read once. The profile's measured
   * GEMM curve where it has one, else the roofline.
   */
  gemmSeconds(tokens: number, k: number, n: number): number {
    const r = this.rates;
    if (r.matmulCurve) return k * n * matmulSecondsPerWeight(r.matmulCurve, tokens) + r.kernelLaunchSeconds;
    const flops = 2 * tokens * k * n;
    const bytes = 2 * (k * n + tokens * (k + n));
    return Math.max(flops / r.gpuFlopsPerSecond, bytes / r.gpuMemoryBytesPerSecond) + r.kernelLaunchSeconds;
  }

  /** Seconds of a layer's tensor-parallel all-reduces for one batch (none on one GPU): the compute waits for them. */
  allReduceSeconds(tokens: number): number {
    const link = this.rates.tensorParallel;
    return link ? layerAllReduceSeconds(tokens, this.h, link) : 0;
  }

  /** GPU seconds of the dense part of a layer (projections, FFN, norms, residuals) for one batch, with its all-reduces. */
  denseGpuSeconds(tokens: number): number {
    const r = this.rates;
    const seconds = this.denseSeconds(
      tokens,
      (t, k, n) => this.gemmSeconds(t, k, n),
      r.gpuFlopsPerSecond,
      r.gpuMemoryBytesPerSecond,
      r.kernelLaunchSeconds,
    );
    return r.tensorParallel ? seconds + this.allReduceSeconds(tokens) : seconds;
  }

  /** CPU seconds of the same dense part, for layers computed on the CPU (no launch latency), with its all-reduces. */
  denseCpuSeconds(tokens: number): number {
    const r = this.rates;
    const seconds = this.denseSeconds(
      tokens,
      (t, k, n) => this.cpuGemmSeconds(t, k, n),
      r.cpuFlopsPerSecond,
      r.cpuMemoryBytesPerSecond,
      0,
    );
    return r.tensorParallel ? seconds + this.allReduceSeconds(tokens) : seconds;
  }

  private denseSeconds(
    tokens: number,
    gemm: (tokens: number, k: number, n: number) => number,
    flopsPerSecond: number,
    memoryBytesPerSecond: number,
    launchSeconds: number,
  ): number {
    const { h, kv, f } = this;
    const q = this.q;
    let seconds = gemm(tokens, h, q + 2 * kv) + gemm(tokens, q, h);
    const moe = this.model.moe;
    if (moe) {
      const fe = moe.expertFfnSize;
      const touched = moe.numExperts * (1 - (1 - moe.expertsPerToken / moe.numExperts) ** tokens);
      const flops = 2 * tokens * moe.expertsPerToken * 3 * h * fe;
      const bytes = touched * 3 * h * fe * 2 + 2 * tokens * moe.expertsPerToken * (2 * h + 3 * fe);
      seconds += Math.max(flops / flopsPerSecond, bytes / memoryBytesPerSecond) + touched * 3 * launchSeconds;
      // Shared experts run on every token like a dense SwiGLU FFN; their scalar sigmoid gate rides with the router GEMM.
      const shared = moe.sharedExperts && moe.sharedExpertFfnSize ? moe.sharedExperts * moe.sharedExpertFfnSize : 0;
      if (shared > 0) seconds += gemm(tokens, h, 2 * shared) + gemm(tokens, shared, h);
      seconds += gemm(tokens, h, moe.numExperts + (shared > 0 ? 1 : 0));
    } else if (this.model.ffnKind === "swiglu") {
      seconds += gemm(tokens, h, 2 * f) + gemm(tokens, f, h);
    } else {
      seconds += gemm(tokens, h, f) + gemm(tokens, f, h);
    }
    // Norms, residual adds, bias and activation: memory-bound elementwise passes, eight launches.
    const elementwiseBytes = tokens * (10 * h + 4 * f) * 2;
    seconds += elementwiseBytes / memoryBytesPerSecond + 8 * launchSeconds;
    return seconds;
  }

  /** CPU attention seconds per sequence over the prompt (prefill of a CPU-computed layer). */
  cpuPrefillAttentionSecondsPerSequence(): number {
    const { q, nh } = this;
    const r = this.rates;
    const s = this.workload.promptLen;
    return Math.max(
      (4 * s * s * q) / r.cpuFlopsPerSecond,
      (4 * nh * s * s * 4 + 4 * s * q * 4) / r.cpuMemoryBytesPerSecond,
    );
  }

  /** GPU attention seconds per sequence (prefill over the prompt, or one decode step over `context`). */
  gpuAttentionSecondsPerSequence(phase: Phase, context: number): number {
    const { q, kv, nh } = this;
    const r = this.rates;
    const s = this.workload.promptLen;
    if (phase === "prefill") {
      const flops = 4 * s * s * q;
      const bytes = 4 * nh * s * s * 2 + 4 * s * q * 2;
      return Math.max(flops / (r.gpuAttentionFlopsPerSecond ?? r.gpuFlopsPerSecond), bytes / r.gpuMemoryBytesPerSecond);
    }
    const flops = 4 * context * q;
    let bytes = 2 * context * kv * 2 + 2 * q * 2 + 2 * nh * context * 2;
    // Compressed KV is dequantised on the fly: at the profile's measured rate where it has one, else as
    // traffic (read 4.5-bit values, write fp16 working copies).
    const measuredDequantize = this.settings.compressCache && r.dequantizeValuesPerSecond !== undefined;
    if (this.settings.compressCache && !measuredDequantize)
      bytes += 2 * context * kv * 2 * (1 + COMPRESSED_FRACTION_OF_FP16);
    const dequantize = measuredDequantize ? (2 * context * kv) / r.dequantizeValuesPerSecond! : 0;
    return Math.max(flops / r.gpuFlopsPerSecond, bytes / r.gpuMemoryBytesPerSecond) + dequantize;
  }

  /** One sequence's attention step on the GPU as the runtime runs it: the work and the kernels it launches for that sequence alone. */
  gpuAttendSequenceSeconds(phase: Phase, context: number): number {
    return (
      this.gpuAttentionSecondsPerSequence(phase, context) +
      GPU_ATTENTION_LAUNCHES_PER_SEQUENCE[phase] * this.rates.kernelLaunchSeconds
    );
  }

  /** Seconds to dequantise `values` 4-bit values: the measured rate, else `bytes` of memory traffic. */
  dequantizeSeconds(values: number, bytes: number): number {
    const r = this.rates;
    return r.dequantizeValuesPerSecond ? values / r.dequantizeValuesPerSecond : bytes / r.gpuMemoryBytesPerSecond;
  }

  /** CPU attention seconds per sequence for one decode step over `context` (fp32 compute, fp16 KV read). */
  cpuAttentionSecondsPerSequence(context: number): number {
    const { q, kv, nh } = this;
    const r = this.rates;
    const flops = 4 * context * q;
    let bytes = 2 * context * kv * 2 * this.cacheFactor + nh * context * 4 * 2;
    if (this.settings.compressCache) bytes += 2 * context * kv * 4; // dequantised fp32 copy
    return Math.max(flops / r.cpuFlopsPerSecond, bytes / r.cpuMemoryBytesPerSecond);
  }

  /** Costs for one decoder layer at a given phase; `context` is the KV length a decode step attends to. */
  layer(phase: Phase, context: number, p: PlacementTerms): LayerCosts {
    const { batch, cpuAttentionChain, stepTransferChains } = this.batchStep(phase, context, p);
    return {
      weights: this.weightLoad(p),
      batch,
      ...(cpuAttentionChain ? { cpuAttentionChain } : {}),
      // Only a schedule that synchronises every step waits for these chains (layer-time.ts stepLanes).
      ...(stepTransferChains && scheduleStrategy(this.settings.schedule).barrierAfterEachStep
        ? { stepTransferChains: { ...stepTransferChains, weightCopyFromCpuSeconds: this.weightCopyFromCpuSeconds(p) } }
        : {}),
    };
  }

  private none(): StepCosts {
    const z = this.zero();
    return {
      seconds: { gpu: z, cpu: z, h2d: z, d2h: z, diskRead: z, diskWrite: z },
      bytes: { h2d: z, d2h: z, diskRead: z, diskWrite: z },
    };
  }

  /** Host-to-GPU rate of weights held in CPU memory: pinned, or pageable where the profile measured it. */
  private cpuWeightCopyBytesPerSecond(): number {
    const r = this.rates;
    return this.settings.pinWeight ? r.h2dBytesPerSecond : (r.h2dPageableBytesPerSecond ?? r.h2dBytesPerSecond);
  }

  /** The CPU-resident part of weights.h2d: those weights' copy, which waits for no disk read. */
  private weightCopyFromCpuSeconds(p: PlacementTerms): Affine {
    const c = this.constants;
    return p.wc.times(
      c.layerStoredBytes / this.cpuWeightCopyBytesPerSecond() + c.layerTensors * this.rates.h2dLatencySeconds,
    );
  }

  private weightLoad(p: PlacementTerms): StepCosts {
    if (this.onCpu) return this.none();
    const r = this.rates;
    const c = this.constants;
    const W = c.layerStoredBytes;
    const offGpu = p.wc.plus(p.wd);
    const h2dBytes = offGpu.times(W);
    const diskBytes = p.wd.times(W);
    const h2dSeconds = p.wc
      .times(W / this.cpuWeightCopyBytesPerSecond())
      .plus(p.wd.times(W / r.h2dBytesPerSecond), offGpu.times(c.layerTensors * r.h2dLatencySeconds));
    let cpuSeconds = this.zero();
    if (!this.settings.pinWeight && r.h2dPageableBytesPerSecond === undefined) {
      // Pageable weights are first copied into a pinned staging buffer by the CPU.
      cpuSeconds = p.wc.times(W / r.cpuMemoryBytesPerSecond);
    }
    const diskSeconds = p.wd.times(W / r.diskReadBytesPerSecond + c.layerTensors * r.diskLatencySeconds);
    let gpuSeconds = this.zero();
    if (this.settings.compressWeight) {
      // Every weight is stored compressed; each block dequantises the layer once into an fp16 buffer.
      gpuSeconds = this.space.constant(
        this.dequantizeSeconds(c.layerParams, c.layerParams * 2 + W) + c.layerTensors * r.kernelLaunchSeconds,
      );
    }
    return {
      seconds: {
        gpu: gpuSeconds,
        cpu: cpuSeconds,
        h2d: h2dSeconds,
        d2h: this.zero(),
        diskRead: diskSeconds,
        diskWrite: this.zero(),
      },
      bytes: { h2d: h2dBytes, d2h: this.zero(), diskRead: diskBytes, diskWrite: this.zero() },
    };
  }

  /** One batch through a CPU-computed layer: every kernel on the CPU, weights and KV read in place. */
  private cpuBatchStep(phase: Phase, context: number): StepCosts {
    const gbs = this.settings.gbs;
    const tokens = phase === "prefill" ? gbs * this.workload.promptLen : gbs;
    const attention =
      phase === "prefill" ? this.cpuPrefillAttentionSecondsPerSequence() : this.cpuAttentionSecondsPerSequence(context);
    const steps = this.none();
    return {
      ...steps,
      seconds: { ...steps.seconds, cpu: this.space.constant(this.denseCpuSeconds(tokens) + gbs * attention) },
    };
  }

  private batchStep(
    phase: Phase,
    context: number,
    p: PlacementTerms,
  ): {
    batch: StepCosts;
    cpuAttentionChain?: CpuAttentionChain;
    stepTransferChains?: Omit<StepTransferChains, "weightCopyFromCpuSeconds">;
  } {
    if (this.onCpu) return { batch: this.cpuBatchStep(phase, context) };
    const r = this.rates;
    const { h, kv } = this;
    const { gbs, cpuAttention, activationTier } = this.settings;
    const s = this.workload.promptLen;
    const tokensPerSequence = phase === "prefill" ? s : 1;
    const tokens = gbs * tokensPerSequence;
    const cf = this.cacheFactor;
    const offCache = p.cc.plus(p.cd);

    const denseGpuSeconds = this.denseGpuSeconds(tokens) + 6 * r.kernelLaunchSeconds;
    let gpu = this.space.constant(denseGpuSeconds);
    let cpu = this.zero();
    let h2d = this.zero();
    let d2h = this.zero();
    let diskRead = this.zero();
    let diskWrite = this.zero();
    let h2dSeconds = this.zero();
    let d2hSeconds = this.zero();
    let diskReadSeconds = this.zero();
    let diskWriteSeconds = this.zero();
    let cpuAttentionChain: CpuAttentionChain | undefined;
    const z = this.zero();
    let kvLoad: ReadThenCopy = { diskReadSeconds: z, h2dSeconds: z };
    let kvCopyWithoutDiskSeconds = z;
    let kvStore: CopyThenWrite = { d2hSeconds: z, diskWriteSeconds: z };
    let hiddenLoad: ReadThenCopy = { diskReadSeconds: z, h2dSeconds: z };
    let hiddenStore: CopyThenWrite = { d2hSeconds: z, diskWriteSeconds: z };

    const launch = r.kernelLaunchSeconds;
    if (phase === "prefill") {
      gpu = gpu.plus(this.space.constant(gbs * this.gpuAttendSequenceSeconds("prefill", s)));
      if (this.settings.compressCache)
        gpu = gpu.plus(this.space.constant((gbs * 2 * s * kv * 2 * (1 + cf)) / r.gpuMemoryBytesPerSecond));
      // The prompt's KV of off-GPU sequences goes down to the CPU, and on to disk for disk sequences.
      const kvBytesPerSequence = 2 * s * kv * 2 * cf;
      d2h = offCache.times(gbs * kvBytesPerSequence);
      d2hSeconds = offCache.times(
        gbs * (kvBytesPerSequence / r.d2hBytesPerSecond + KV_COPY_PIECES_PER_SEQUENCE * r.d2hLatencySeconds),
      );
      diskWrite = p.cd.times(gbs * kvBytesPerSequence);
      diskWriteSeconds = p.cd.times((gbs * kvBytesPerSequence) / r.diskWriteBytesPerSecond + 2 * r.diskLatencySeconds);
      kvStore = { d2hSeconds, diskWriteSeconds };
    } else {
      // The cache holds context - 1 tokens before this step's token is appended on the GPU.
      const kvReadPerSequence = 2 * (context - 1) * kv * 2 * cf;
      const kvNewPerSequence = 2 * kv * 2 * cf;
      const gpuAttention = this.gpuAttendSequenceSeconds("decode", context);
      if (cpuAttention) {
        gpu = gpu.plus(
          p.cg.times(gbs * gpuAttention),
          offCache.times(gbs * CPU_ATTENTION_GPU_LAUNCHES_PER_SEQUENCE * launch),
        );
        cpu = offCache.times(gbs * this.cpuAttentionSecondsPerSequence(context));
        // q, k, v of the CPU-attended sequences go down; their attention output comes back up.
        const q = this.q;
        d2h = offCache.times(gbs * (q + 2 * kv) * 2);
        d2hSeconds = offCache.times(
          gbs *
            (((q + 2 * kv) * 2) / r.d2hBytesPerSecond + CPU_ATTENTION_DOWN_PIECES_PER_SEQUENCE * r.d2hLatencySeconds),
        );
        h2d = offCache.times(gbs * q * 2);
        h2dSeconds = offCache.times(
          gbs * ((q * 2) / r.h2dBytesPerSecond + CPU_ATTENTION_UP_PIECES_PER_SEQUENCE * r.h2dLatencySeconds),
        );
      } else {
        gpu = gpu.plus(this.space.constant(gbs * gpuAttention));
        // Off-GPU KV is loaded for attention on the GPU, and the new token's KV is stored back, sequence by sequence.
        const kvCopySeconds =
          gbs * (kvReadPerSequence / r.h2dBytesPerSecond + KV_COPY_PIECES_PER_SEQUENCE * r.h2dLatencySeconds);
        h2d = offCache.times(gbs * kvReadPerSequence);
        h2dSeconds = offCache.times(kvCopySeconds);
        kvCopyWithoutDiskSeconds = p.cc.minus(p.cd.times(gbs)).times(kvCopySeconds);
        d2h = offCache.times(gbs * kvNewPerSequence);
        d2hSeconds = offCache.times(
          gbs * (kvNewPerSequence / r.d2hBytesPerSecond + KV_COPY_PIECES_PER_SEQUENCE * r.d2hLatencySeconds),
        );
      }
      diskRead = p.cd.times(gbs * kvReadPerSequence);
      diskReadSeconds = p.cd.times((gbs * kvReadPerSequence) / r.diskReadBytesPerSecond + 2 * r.diskLatencySeconds);
      if (!cpuAttention) kvLoad = { diskReadSeconds, h2dSeconds };
      if (cpuAttention)
        cpuAttentionChain = {
          kvDiskReadSeconds: diskReadSeconds,
          qkvDownSeconds: d2hSeconds,
          outputUpSeconds: h2dSeconds,
          gpuAfterSeconds: this.space.constant(denseGpuSeconds - this.gemmSeconds(gbs, h, this.q + 2 * kv)),
        };
      diskWrite = p.cd.times(gbs * kvNewPerSequence);
      diskWriteSeconds = p.cd.times((gbs * kvNewPerSequence) / r.diskWriteBytesPerSecond + 2 * r.diskLatencySeconds);
      if (!cpuAttention) kvStore = { d2hSeconds, diskWriteSeconds };
    }

    if (activationTier !== "gpu") {
      // The batch's hidden state is loaded before the layer and stored after it.
      const hiddenBytes = tokens * h * 2;
      hiddenLoad = {
        ...hiddenLoad,
        h2dSeconds: this.space.constant(hiddenBytes / r.h2dBytesPerSecond + r.h2dLatencySeconds),
      };
      hiddenStore = {
        ...hiddenStore,
        d2hSeconds: this.space.constant(hiddenBytes / r.d2hBytesPerSecond + r.d2hLatencySeconds),
      };
      h2d = h2d.plus(this.space.constant(hiddenBytes));
      h2dSeconds = h2dSeconds.plus(hiddenLoad.h2dSeconds);
      d2h = d2h.plus(this.space.constant(hiddenBytes));
      d2hSeconds = d2hSeconds.plus(hiddenStore.d2hSeconds);
      if (activationTier === "disk") {
        hiddenLoad = {
          ...hiddenLoad,
          diskReadSeconds: this.space.constant(hiddenBytes / r.diskReadBytesPerSecond + r.diskLatencySeconds),
        };
        hiddenStore = {
          ...hiddenStore,
          diskWriteSeconds: this.space.constant(hiddenBytes / r.diskWriteBytesPerSecond + r.diskLatencySeconds),
        };
        diskRead = diskRead.plus(this.space.constant(hiddenBytes));
        diskReadSeconds = diskReadSeconds.plus(hiddenLoad.diskReadSeconds);
        diskWrite = diskWrite.plus(this.space.constant(hiddenBytes));
        diskWriteSeconds = diskWriteSeconds.plus(hiddenStore.diskWriteSeconds);
      }
    }
    const batch = {
      seconds: { gpu, cpu, h2d: h2dSeconds, d2h: d2hSeconds, diskRead: diskReadSeconds, diskWrite: diskWriteSeconds },
      bytes: { h2d, d2h, diskRead, diskWrite },
    };
    const stepTransferChains = { kvLoad, kvCopyWithoutDiskSeconds, kvStore, hiddenLoad, hiddenStore };
    return { batch, stepTransferChains, ...(cpuAttentionChain ? { cpuAttentionChain } : {}) };
  }

  /**
   * The LM head (and streaming its weights when they are off the GPU), once per block per token
   * step; the input embedding lookup is negligible. Prefill computes logits for the last position.
   */
  head(p: PlacementTerms): StepCosts {
    const r = this.rates;
    const { gbs, nb } = this.settings;
    const vocab = this.model.vocabSize;
    // A 4-bit token table is dequantised once per token step (for the lookup and the LM head).
    const tableValues = vocab * this.model.wordEmbedDim;
    const dequantize = this.settings.compressWeight
      ? this.dequantizeSeconds(tableValues, tableValues * 2 * (1 + COMPRESSED_FRACTION_OF_FP16))
      : 0;
    const gpu = this.space.constant(nb * this.gemmSeconds(gbs, this.h, vocab) + dequantize);
    const offGpu = p.embedding.cpu.plus(p.embedding.disk);
    return {
      seconds: {
        gpu,
        cpu: this.zero(),
        h2d: offGpu.times(1 / r.h2dBytesPerSecond).plus(this.space.constant(r.h2dLatencySeconds)),
        d2h: this.space.constant((nb * gbs * 4) / r.d2hBytesPerSecond + nb * r.d2hLatencySeconds),
        diskRead: p.embedding.disk.times(1 / r.diskReadBytesPerSecond),
        diskWrite: this.zero(),
      },
      bytes: {
        h2d: offGpu,
        d2h: this.space.constant(nb * gbs * 4),
        diskRead: p.embedding.disk,
        diskWrite: this.zero(),
      },
    };
  }

  /**
   * GPU working space of one batch through one layer (layer-working-set.ts, at the device's bytes per
   * value) plus the fp32 logits of the LM head.
   */
  workingBytes(tokensPerSequence: number, context: number): number {
    const gbs = this.settings.gbs;
    return (
      this.rates.workingBytesPerValue * layerWorkingValues(this.model, gbs, tokensPerSequence, context) +
      gbs * this.model.vocabSize * 4
    );
  }

  /**
   * Peak bytes on each tier (GPU and CPU for both phases; the larger one is the peak) with `layerCount`
   * layers of this placement (default: every layer). Terms that do not scale with the layer count
   * (buffers, embeddings, working space) are those at `layerCount` 0. `part` "global" keeps only what
   * every layer group shares (embeddings, the LM head's buffer, the hidden states between layers).
   */
  memory(
    p: PlacementTerms,
    layerCount = this.model.numLayers,
    part: "all" | "global" = "all",
  ): { gpu: Affine[]; cpu: Affine[]; disk: Affine } {
    const { h, kv, nh } = this;
    const { gbs, nb, activationTier, compressCache, pinWeight } = this.settings;
    const onCpu = this.onCpu;
    // A CPU layer streams nothing to the GPU and attends on the CPU.
    const cpuAttention = this.settings.cpuAttention || onCpu;
    const compressWeight = this.settings.compressWeight && !onCpu;
    const { promptLen: s, genLen: n } = this.workload;
    const globalOnly = part === "global";
    const L = globalOnly ? 0 : layerCount;
    const c = this.constants;
    const W = c.layerStoredBytes;
    const layerBytes = {
      gpu: p.layerWeightBytes?.gpu ?? p.wg.times(W),
      cpu: p.layerWeightBytes?.cpu ?? p.wc.times(W),
      disk: p.layerWeightBytes?.disk ?? p.wd.times(W),
    };
    const kvPerSequence = this.kvBytesPerSequenceLayer; // one layer, whole sequence, as stored
    const kvFp16PerSequence = 2 * (s + n) * kv * 2;
    const offCache = p.cc.plus(p.cd);
    const zero = this.space.constant(0);
    /** A term of this group's own (its layers, its buffers, its working space): none in the global part. */
    const own = (term: Affine) => (globalOnly ? zero : term);
    const working = (tokensPerSequence: number, context: number) =>
      this.space.constant(this.workingBytes(tokensPerSequence, context));
    const gpuWorking = onCpu || globalOnly ? () => zero : working;
    const cpuWorking = onCpu && !globalOnly ? working : () => zero;
    const gpuCommon = layerBytes.gpu.times(L).plus(
      p.embedding.gpu,
      p.headBuffer, // off-GPU norms whole, the off-GPU token table streamed in two chunks
      onCpu ? zero : own(layerBytes.cpu.plus(layerBytes.disk).times(2)), // double buffer for off-GPU layer weights
      own(this.space.constant(compressWeight ? c.layerParams * 2 : 0)), // one dequantised layer
      // A GPU layer's working space holds the LM head's fp32 logits too; a CPU layer's has them on the CPU.
      onCpu ? own(this.space.constant(gbs * this.model.vocabSize * 4)) : zero,
      p.cg.times(L * nb * gbs * kvPerSequence),
    );
    const activation = (tokensPerSequence: number) => {
      const perBatch = gbs * tokensPerSequence * h * 2;
      return activationTier === "gpu" ? this.space.constant((nb + 1) * perBatch) : this.space.constant(2 * perBatch);
    };
    const kvStagingGpu = cpuAttention ? zero : own(offCache.times(2 * gbs * kvFp16PerSequence));
    const kvDequantGpu = compressCache ? own(p.cg.times(gbs * kvFp16PerSequence)) : zero;
    const prefillStaging = onCpu ? zero : own(offCache.times(gbs * 2 * s * kv * 2));
    const gpuPrefill = gpuCommon.plus(activation(s), prefillStaging, gpuWorking(s, s));
    const gpuDecode = gpuCommon.plus(activation(1), kvStagingGpu, kvDequantGpu, gpuWorking(1, s + n));

    const cpuCommon = layerBytes.cpu.times(L).plus(
      p.embedding.cpu,
      own(layerBytes.disk.times(2)), // pinned staging for disk weights
      p.embedding.disk,
      pinWeight || onCpu || this.rates.h2dPageableBytesPerSecond !== undefined ? zero : own(layerBytes.cpu.times(2)),
      p.cc.times(L * nb * gbs * kvPerSequence),
    );
    const cpuActivation = (tokensPerSequence: number) => {
      const perBatch = gbs * tokensPerSequence * h * 2;
      if (activationTier === "cpu") return this.space.constant(nb * perBatch);
      if (activationTier === "disk") return this.space.constant(2 * perBatch);
      return zero;
    };
    const cpuAttentionWorking = cpuAttention
      ? own(offCache.times(gbs * (nh * (s + n) * 4 * 2 + (compressCache ? 2 * (s + n) * kv * 4 : 0))))
      : zero;
    const kvStagingCpu = own(p.cd.times(2 * gbs * kvPerSequence));
    const cpuPrefill = cpuCommon.plus(cpuActivation(s), kvStagingCpu, cpuWorking(s, s));
    const cpuDecode = cpuCommon.plus(cpuActivation(1), kvStagingCpu, cpuAttentionWorking, cpuWorking(1, s + n));
    const disk = layerBytes.disk
      .times(L)
      .plus(
        p.embedding.disk,
        p.cd.times(L * nb * gbs * kvPerSequence),
        this.space.constant(activationTier === "disk" ? nb * gbs * s * h * 2 : 0),
      );
    return { gpu: [gpuPrefill, gpuDecode], cpu: [cpuPrefill, cpuDecode], disk };
  }
}
