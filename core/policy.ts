/**
 * An offloading policy in FlexGen's space: GPU batch size × number of GPU batches per block, where
 * weights, KV cache and activations live, compression and CPU attention.
 */
import type { ExpertPolicy } from "./expert-policy.js";

/** Fractions on each tier; each triple sums to 1. */
export interface Placement {
  readonly gpu: number;
  readonly cpu: number;
  readonly disk: number;
}

/** Where a layer's kernels run. */
export const COMPUTE_DEVICES = ["gpu", "cpu"] as const;
export type ComputeDevice = (typeof COMPUTE_DEVICES)[number];

/**
 * Consecutive decoder layers that share one weight placement and one compute device. A policy's groups
 * cover the layers first to last. GPU-computed groups stream their off-GPU weights in as a uniform
 * policy does and keep KV by the policy's `cache` split; CPU-computed groups (llama.cpp's layers beyond
 * `-ngl`) compute in place from host memory: their weights and KV cache live on the CPU.
 */
export interface LayerGroup {
  readonly layers: number;
  readonly weights: Placement;
  readonly compute: ComputeDevice;
}

export interface Policy {
  readonly gpuBatchSize: number;
  readonly numGpuBatches: number;
  readonly weights: Placement;
  readonly cache: Placement;
  readonly activations: Placement;
  /** 4-bit group-wise (group 64, asymmetric) weights. */
  readonly compressWeight: boolean;
  /** 4-bit group-wise (group 64, asymmetric) KV cache. */
  readonly compressCache: boolean;
  /** Decode attention over CPU-resident KV runs on the CPU (FlexGen's cpu_cache_compute). */
  readonly cpuAttention: boolean;
  /** Overlap I/O with compute (FlexGen's --overlap, default on). */
  readonly overlap: boolean;
  /** CPU-resident weights live in pinned memory (FlexGen's --pin-weight, default on). */
  readonly pinWeight: boolean;
  /**
   * Per-layer placement (Accelerate's device_map, llama.cpp's -ngl): groups of consecutive layers, first
   * layer first, covering every layer. Absent: every layer is split by `weights` and computed on the GPU.
   * With groups, `weights` is their average by parameters (what the totals and charts show).
   */
  readonly layerGroups?: readonly LayerGroup[];
  /** Where embeddings, final norm and LM head live; absent: by the midpoint rule over `weights`. */
  readonly embeddings?: Placement;
  /**
   * Mixture-of-Experts models: how routed experts are cached, prefetched and computed. With it, `weights`
   * summarises where all weights are (experts' home copies included) and `cache` is the KV split.
   */
  readonly experts?: ExpertPolicy;
}

export const PLACEMENT_TOLERANCE = 1e-6;

export function placementFromPercents(gpuPercent: number, cpuPercent: number): Placement {
  return { gpu: gpuPercent / 100, cpu: cpuPercent / 100, disk: Math.max(0, 1 - gpuPercent / 100 - cpuPercent / 100) };
}

/** The policy's layer groups; a uniform policy is one GPU group of every layer. */
export function layerGroupsOf(policy: Policy, numLayers: number): readonly LayerGroup[] {
  return policy.layerGroups ?? [{ layers: numLayers, weights: policy.weights, compute: "gpu" }];
}

/** Whether every layer has the same placement and runs on the GPU (what FlexGen and the runtime express). */
export function isUniform(policy: Policy): boolean {
  const g = policy.layerGroups;
  if (!g) return true;
  const same = (a: Placement, b: Placement) =>
    Math.abs(a.gpu - b.gpu) < PLACEMENT_TOLERANCE && Math.abs(a.cpu - b.cpu) < PLACEMENT_TOLERANCE;
  return g.every((x) => x.compute === "gpu" && same(x.weights, g[0]!.weights));
}

/** FlexGen's six --percent integers (wg wc cg cc hg hc), rounded. */
export function toFlexgenPercent(policy: Policy): [number, number, number, number, number, number] {
  const r = (x: number) => Math.round(x * 100);
  return [
    r(policy.weights.gpu),
    r(policy.weights.cpu),
    r(policy.cache.gpu),
    r(policy.cache.cpu),
    r(policy.activations.gpu),
    r(policy.activations.cpu),
  ];
}
