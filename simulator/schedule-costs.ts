import type { Tier } from "../core/tiers.js";
/**
 * What each piece of the zig-zag schedule costs: seconds and bytes of every transfer and kernel, and
 * the memory it holds. The schedule builder reads only this interface, so a test can give it round
 * numbers and check the simulator's timeline by hand; plan-costs.ts derives it from a plan.
 */

export interface Transfer {
  readonly seconds: number;
  readonly bytes: number;
}

export const NO_TRANSFER: Transfer = { seconds: 0, bytes: 0 };

export interface WeightLoadCosts {
  /** Disk-resident weights into pinned CPU staging. */
  readonly readDisk: Transfer;
  /** CPU-resident weights to the GPU. */
  readonly loadFromCpu: Transfer;
  /** Staged disk weights to the GPU. */
  readonly loadFromDisk: Transfer;
  /** Dequantising compressed weights into an fp16 buffer (0 when uncompressed). */
  readonly dequantizeSeconds: number;
  readonly gpuBufferBytes: number;
  readonly dequantBufferBytes: number;
  readonly cpuStagingBytes: number;
}

export interface BatchCosts {
  /** Where the layer computes (default GPU); a CPU layer's work is all in cpuSeconds. */
  readonly computeDevice?: "gpu" | "cpu";
  /** All GPU work of one batch through one layer. */
  readonly gpuSeconds: number;
  /** With CPU attention: the part of gpuSeconds before it (projections, attention of GPU-resident sequences). */
  readonly gpuBeforeCpuSeconds: number;
  /** CPU attention (0 when attention runs on the GPU). */
  readonly cpuSeconds: number;
  readonly readCache: Transfer;
  readonly loadCache: Transfer;
  readonly storeCache: Transfer;
  readonly writeCache: Transfer;
  readonly readHidden: Transfer;
  readonly loadHidden: Transfer;
  readonly storeHidden: Transfer;
  readonly writeHidden: Transfer;
  readonly sendQkv: Transfer;
  readonly returnAttention: Transfer;
  readonly workingBytes: number;
  /** KV appended by this step on each tier (it stays until the end). */
  readonly newCacheBytes: Readonly<Record<Tier, number>>;
  readonly cacheStagingGpuBytes: number;
  readonly cacheStagingCpuBytes: number;
  readonly hiddenBytes: number;
  readonly cpuAttentionWorkingBytes: number;
}

export interface HeadCosts {
  readonly gpuSecondsPerBatch: number;
  readonly readWeights: Transfer;
  readonly loadWeights: Transfer;
  readonly storeTokensPerBatch: Transfer;
  readonly bufferBytes: number;
  readonly logitsBytes: number;
}

export interface ScheduleCostSource {
  readonly numLayers: number;
  readonly numGpuBatches: number;
  /** Tokens generated per sequence; token 0 is the prefill. */
  readonly genLen: number;
  readonly cpuAttention: boolean;
  /** False: no two tasks at once (FlexGen's --overlap False); default true. */
  readonly overlap?: boolean;
  /** Hidden states between layers live on the GPU ("gpu"), or are stored to and loaded from the host. */
  readonly activationTier: Tier;
  /** Allocated for the whole run (resident weights). */
  readonly residentBytes: Readonly<Record<Tier, number>>;
  weights(layer: number): WeightLoadCosts;
  batch(token: number, layer: number): BatchCosts;
  head(): HeadCosts;
  /**
   * The hidden state's move into `layer` (numLayers: the LM head) from the device that computed the
   * layer before it, per batch, where the two differ; undefined where they do not.
   */
  crossIn?(token: number, layer: number): { readonly link: "h2d" | "d2h"; readonly transfer: Transfer } | undefined;
}
