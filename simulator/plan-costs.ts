/**
 * The schedule's costs for a real plan: bytes counted from the realized placement (whole tensors,
 * whole sequences, one activation tier, token by token), transfer times from the hardware profile
 * (its measured size curve where it has one), kernel times from the same roofline the planner uses.
 */

import { compressedBytes } from "../core/compression.js";
import type { HardwareProfile } from "../core/hardware-profile.js";
import type { Link } from "../core/links.js";
import { kvDim, type ModelSpec } from "../core/model-spec.js";
import type { Policy } from "../core/policy.js";
import type { TensorParallelLink } from "../core/ring-all-reduce.js";
import type { ScheduleName } from "../core/schedule-name.js";
import type { Tier } from "../core/tiers.js";
import type { Workload } from "../core/workload.js";
import { type GroupCostContext, groupCostContexts } from "../planner/spillway/evaluate-policy.js";
import { hardwareRates } from "../planner/spillway/hardware-rates.js";
import {
  CPU_ATTENTION_DOWN_PIECES_PER_SEQUENCE,
  CPU_ATTENTION_GPU_LAUNCHES_PER_SEQUENCE,
  CPU_ATTENTION_UP_PIECES_PER_SEQUENCE,
  KV_COPY_PIECES_PER_SEQUENCE,
} from "../planner/spillway/per-sequence-attention-work.js";
import {
  type BatchCosts,
  type HeadCosts,
  NO_TRANSFER,
  type ScheduleCostSource,
  type Transfer,
  type WeightLoadCosts,
} from "./schedule-costs.js";
import { TransferTimes } from "./transfer-time.js";

export class PlanCosts implements ScheduleCostSource {
  readonly numLayers: number;
  readonly numGpuBatches: number;
  readonly genLen: number;
  readonly cpuAttention: boolean;
  readonly overlap: boolean;
  readonly activationTier: Tier;
  readonly residentBytes: Readonly<Record<Tier, number>>;
  /** One cost context per group of layers sharing a placement (one for a uniform policy). */
  readonly groups: readonly GroupCostContext[];
  private readonly groupOfLayer: Uint32Array;
  private readonly times: TransferTimes;
  private readonly batchCache = new Map<number, BatchCosts>();
  private readonly weightCosts: WeightLoadCosts[];
  private readonly headCosts: HeadCosts;
  /** Stored bytes of one token's K and V for one sequence in one layer. */
  private readonly kvTokenBytes: number;

  constructor(
    private readonly model: ModelSpec,
    profile: HardwareProfile,
    private readonly workload: Workload,
    private readonly policy: Policy,
    schedule: ScheduleName,
    /** A GPU of a tensor-parallel group: `model` is its shard, and every layer step waits for its all-reduces. */
    tensorParallel?: TensorParallelLink,
  ) {
    const rates = hardwareRates(profile);
    this.groups = groupCostContexts(
      model,
      tensorParallel ? { ...rates, tensorParallel } : rates,
      workload,
      policy,
      schedule,
    );
    this.times = new TransferTimes(profile);
    this.groupOfLayer = new Uint32Array(model.numLayers);
    this.groups.forEach((g, i) => this.groupOfLayer.fill(i, g.firstLayer, g.firstLayer + g.layers));
    const r = this.groups[0]!.realized;
    this.numLayers = model.numLayers;
    this.numGpuBatches = policy.numGpuBatches;
    this.genLen = workload.genLen;
    this.cpuAttention = policy.cpuAttention;
    this.overlap = policy.overlap;
    this.activationTier = r.activationTier;
    const layerBytes = (tier: Tier) =>
      this.groups.reduce((sum, g) => sum + g.layers * g.realized.layerWeightBytes[tier], 0);
    this.residentBytes = {
      gpu: layerBytes("gpu") + r.embeddingBytes.gpu,
      cpu: layerBytes("cpu") + r.embeddingBytes.cpu,
      disk: layerBytes("disk") + r.embeddingBytes.disk,
    };
    const kv = kvDim(model);
    this.kvTokenBytes = policy.compressCache ? 2 * compressedBytes(kv) : 2 * kv * 2;
    this.weightCosts = this.groups.map((g) => this.computeWeights(g));
    this.headCosts = this.computeHead();
  }

  private group(layer: number): number {
    return this.groupOfLayer[layer]!;
  }

  private transfer(link: Link, bytes: number, count = 1): Transfer {
    if (bytes <= 0) return NO_TRANSFER;
    return { bytes, seconds: this.times.seconds(link, bytes, count) };
  }

  private computeWeights(group: GroupCostContext): WeightLoadCosts {
    const r = group.realized;
    const { costModel, terms, values } = group;
    if (group.compute === "cpu") {
      return {
        readDisk: NO_TRANSFER,
        loadFromCpu: NO_TRANSFER,
        loadFromDisk: NO_TRANSFER,
        dequantizeSeconds: 0,
        gpuBufferBytes: 0,
        dequantBufferBytes: 0,
        cpuStagingBytes: 0,
      };
    }
    const cpuBytes = r.layerWeightBytes.cpu;
    const diskBytes = r.layerWeightBytes.disk;
    let fromCpu = this.transfer("h2d", cpuBytes, r.layerWeightTensors.cpu);
    const rates = costModel.rates;
    if (!this.policy.pinWeight && cpuBytes > 0) {
      // Pageable weights: the profile's pageable rate, or a CPU copy into a pinned buffer first.
      const seconds =
        rates.h2dPageableBytesPerSecond !== undefined
          ? r.layerWeightTensors.cpu * rates.h2dLatencySeconds + cpuBytes / rates.h2dPageableBytesPerSecond
          : fromCpu.seconds + cpuBytes / rates.cpuMemoryBytesPerSecond;
      fromCpu = { bytes: cpuBytes, seconds };
    }
    return {
      readDisk: this.transfer("diskRead", diskBytes, r.layerWeightTensors.disk),
      loadFromCpu: fromCpu,
      loadFromDisk: this.transfer("h2d", diskBytes, r.layerWeightTensors.disk),
      dequantizeSeconds: costModel
        .layer("decode", this.workload.promptLen + 1, terms)
        .weights.seconds.gpu.evaluate(values),
      gpuBufferBytes: cpuBytes + diskBytes,
      dequantBufferBytes: this.policy.compressWeight ? group.constants.layerParams * 2 : 0,
      cpuStagingBytes: diskBytes,
    };
  }

  private computeHead(): HeadCosts {
    const { realized: r, costModel, terms, values } = this.groups[0]!;
    const gbs = this.policy.gpuBatchSize;
    const offGpu = r.embeddingBytes.cpu + r.embeddingBytes.disk;
    return {
      gpuSecondsPerBatch: costModel.head(terms).seconds.gpu.evaluate(values) / this.numGpuBatches,
      readWeights: this.transfer("diskRead", r.embeddingBytes.disk),
      loadWeights: this.transfer("h2d", offGpu),
      storeTokensPerBatch: this.transfer("d2h", gbs * 4),
      bufferBytes: r.headBufferBytes,
      logitsBytes: gbs * this.model.vocabSize * 4,
    };
  }

  weights(layer: number): WeightLoadCosts {
    return this.weightCosts[this.group(layer)]!;
  }

  crossIn(token: number, layer: number): { link: "h2d" | "d2h"; transfer: Transfer } | undefined {
    const device = (l: number) => (l < 0 || l >= this.numLayers ? "gpu" : this.groups[this.group(l)]!.compute);
    if (device(layer) === device(layer - 1)) return undefined;
    const link = device(layer) === "cpu" ? "d2h" : "h2d";
    const tokens = this.policy.gpuBatchSize * (token === 0 ? this.workload.promptLen : 1);
    return { link, transfer: this.transfer(link, tokens * this.model.hiddenSize * 2) };
  }

  head(): HeadCosts {
    return this.headCosts;
  }

  batch(token: number, layer: number): BatchCosts {
    const g = this.group(layer);
    const G = this.groups.length;
    let c = this.batchCache.get(token * G + g);
    if (!c) {
      c = this.computeBatch(token, this.groups[g]!);
      this.batchCache.set(token * G + g, c);
      this.batchCache.delete((token - 2) * G + g);
    }
    return c;
  }

  private computeBatch(token: number, group: GroupCostContext): BatchCosts {
    if (group.compute === "cpu") return this.computeCpuBatch(token, group);
    const { costModel, terms, values, realized } = group;
    const s = this.workload.promptLen;
    const prefill = token === 0;
    const context = s + token;
    const step = costModel.layer(prefill ? "prefill" : "decode", context, terms).batch;
    const gbs = this.policy.gpuBatchSize;
    const h = this.model.hiddenSize;
    const kv = kvDim(this.model);
    const seqs = realized.cacheSequences;
    const off = seqs.cpu + seqs.disk;
    const tokensPerSequence = prefill ? s : 1;
    const hiddenBytes = gbs * tokensPerSequence * h * 2;
    const cpuAttention = this.policy.cpuAttention && !prefill && off > 0;
    const past = (context - 1) * this.kvTokenBytes;
    const appended = tokensPerSequence * this.kvTokenBytes;
    const gpuSeconds = step.seconds.gpu.evaluate(values);
    const gpuBeforeCpu = cpuAttention
      ? Math.min(
          gpuSeconds,
          costModel.gemmSeconds(gbs, h, costModel.q + 2 * kv) +
            seqs.gpu * costModel.gpuAttendSequenceSeconds("decode", context) +
            off * CPU_ATTENTION_GPU_LAUNCHES_PER_SEQUENCE * costModel.rates.kernelLaunchSeconds,
        )
      : 0;
    const hiddenOff = realized.activationTier !== "gpu";
    const hiddenOnDisk = realized.activationTier === "disk";
    return {
      gpuSeconds,
      gpuBeforeCpuSeconds: gpuBeforeCpu,
      cpuSeconds: cpuAttention ? step.seconds.cpu.evaluate(values) : 0,
      readCache: prefill ? NO_TRANSFER : this.transfer("diskRead", seqs.disk * past, 2),
      // K and V rows move sequence by sequence (planner/spillway/per-sequence-attention-work.ts).
      loadCache:
        prefill || cpuAttention ? NO_TRANSFER : this.transfer("h2d", off * past, off * KV_COPY_PIECES_PER_SEQUENCE),
      storeCache: cpuAttention ? NO_TRANSFER : this.transfer("d2h", off * appended, off * KV_COPY_PIECES_PER_SEQUENCE),
      writeCache: this.transfer("diskWrite", seqs.disk * appended, 2),
      readHidden: hiddenOnDisk ? this.transfer("diskRead", hiddenBytes) : NO_TRANSFER,
      loadHidden: hiddenOff ? this.transfer("h2d", hiddenBytes) : NO_TRANSFER,
      storeHidden: hiddenOff ? this.transfer("d2h", hiddenBytes) : NO_TRANSFER,
      writeHidden: hiddenOnDisk ? this.transfer("diskWrite", hiddenBytes) : NO_TRANSFER,
      sendQkv: cpuAttention
        ? this.transfer("d2h", off * (costModel.q + 2 * kv) * 2, off * CPU_ATTENTION_DOWN_PIECES_PER_SEQUENCE)
        : NO_TRANSFER,
      returnAttention: cpuAttention
        ? this.transfer("h2d", off * costModel.q * 2, off * CPU_ATTENTION_UP_PIECES_PER_SEQUENCE)
        : NO_TRANSFER,
      workingBytes: costModel.workingBytes(tokensPerSequence, prefill ? s : context),
      newCacheBytes: { gpu: seqs.gpu * appended, cpu: seqs.cpu * appended, disk: seqs.disk * appended },
      cacheStagingGpuBytes: prefill || cpuAttention ? 0 : off * past,
      cacheStagingCpuBytes: prefill ? 0 : seqs.disk * past,
      hiddenBytes,
      cpuAttentionWorkingBytes: cpuAttention ? off * this.model.numHeads * context * 4 * 2 : 0,
    };
  }

  /** A CPU-computed layer: all its work on the CPU, its weights and KV read in place. */
  private computeCpuBatch(token: number, group: GroupCostContext): BatchCosts {
    const { costModel, terms, values } = group;
    const s = this.workload.promptLen;
    const prefill = token === 0;
    const context = s + token;
    const tokensPerSequence = prefill ? s : 1;
    const gbs = this.policy.gpuBatchSize;
    const step = costModel.layer(prefill ? "prefill" : "decode", context, terms).batch;
    return {
      computeDevice: "cpu",
      gpuSeconds: 0,
      gpuBeforeCpuSeconds: 0,
      cpuSeconds: step.seconds.cpu.evaluate(values),
      readCache: NO_TRANSFER,
      loadCache: NO_TRANSFER,
      storeCache: NO_TRANSFER,
      writeCache: NO_TRANSFER,
      readHidden: NO_TRANSFER,
      loadHidden: NO_TRANSFER,
      storeHidden: NO_TRANSFER,
      writeHidden: NO_TRANSFER,
      sendQkv: NO_TRANSFER,
      returnAttention: NO_TRANSFER,
      workingBytes: costModel.workingBytes(tokensPerSequence, prefill ? s : context),
      newCacheBytes: { gpu: 0, cpu: gbs * tokensPerSequence * this.kvTokenBytes, disk: 0 },
      cacheStagingGpuBytes: 0,
      cacheStagingCpuBytes: 0,
      hiddenBytes: gbs * tokensPerSequence * this.model.hiddenSize * 2,
      cpuAttentionWorkingBytes: 0,
    };
  }
}
