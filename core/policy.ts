/**
 * An offloading policy in FlexGen's space: GPU batch size × number of GPU batches per block, where
 * weights, KV cache and activations live, compression and CPU attention.
 */
import { asObject, child, type FieldContext, fail, readBoolean, readNumber, readObject, rejectUnknownKeys } from "./fields.js";

/** Fractions on each tier; each triple sums to 1. */
export interface Placement {
  readonly gpu: number;
  readonly cpu: number;
  readonly disk: number;
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
}

export const PLACEMENT_TOLERANCE = 1e-6;

export function placementFromPercents(gpuPercent: number, cpuPercent: number): Placement {
  return { gpu: gpuPercent / 100, cpu: cpuPercent / 100, disk: Math.max(0, 1 - gpuPercent / 100 - cpuPercent / 100) };
}

function readPlacement(o: Record<string, unknown>, key: string, ctx: FieldContext): Placement {
  const c = child(ctx, key);
  const p = readObject(o, key, ctx);
  rejectUnknownKeys(p, c, ["gpu", "cpu", "disk"]);
  const placement = {
    gpu: readNumber(p, "gpu", c, { min: 0, max: 1 }),
    cpu: readNumber(p, "cpu", c, { min: 0, max: 1 }),
    disk: readNumber(p, "disk", c, { min: 0, max: 1 }),
  };
  const sum = placement.gpu + placement.cpu + placement.disk;
  if (Math.abs(sum - 1) > PLACEMENT_TOLERANCE) fail(c, undefined, `gpu + cpu + disk must be 1, got ${sum}`);
  return placement;
}

export function parsePolicy(data: unknown, ctx: FieldContext): Policy {
  const o = asObject(data, ctx);
  return {
    gpuBatchSize: readNumber(o, "gpuBatchSize", ctx, { min: 1, integer: true }),
    numGpuBatches: readNumber(o, "numGpuBatches", ctx, { min: 1, integer: true }),
    weights: readPlacement(o, "weights", ctx),
    cache: readPlacement(o, "cache", ctx),
    activations: readPlacement(o, "activations", ctx),
    compressWeight: readBoolean(o, "compressWeight", ctx, false),
    compressCache: readBoolean(o, "compressCache", ctx, false),
    cpuAttention: readBoolean(o, "cpuAttention", ctx, false),
    overlap: readBoolean(o, "overlap", ctx, true),
    pinWeight: readBoolean(o, "pinWeight", ctx, true),
  };
}

/** FlexGen's six --percent integers (wg wc cg cc hg hc), rounded. */
export function toFlexgenPercent(policy: Policy): [number, number, number, number, number, number] {
  const r = (x: number) => Math.round(x * 100);
  return [r(policy.weights.gpu), r(policy.weights.cpu), r(policy.cache.gpu), r(policy.cache.cpu), r(policy.activations.gpu), r(policy.activations.cpu)];
}
