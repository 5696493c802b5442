/**
 * A segment's GPU kernels and host-side dispatch as priced engine operations, from the profile's
 * kernel-class rates (engines/kernel-rates.ts):
 * - a GEMM through a weight: gpuGemmSeconds (the measured GEMM curve where the profile has one, else
 *   the roofline of GPU FLOP/s and memory bandwidth), plus its launch;
 * - an activation-by-activation matmul (attention): the roofline of its FLOPs at the GPU GEMM rate and
 *   its bytes at GPU memory bandwidth, plus one launch;
 * - an elementwise or copy kernel: its bytes at the elementwise-kernel rate, plus one launch;
 * - every PyTorch operation the host dispatches (views included): eagerDispatchSeconds, and every kernel
 *   it launches: gpuKernelLaunchSeconds on the host thread too (engines/host-dispatch.ts).
 */
import type { EngineOperation } from "../engine-model.js";
import { hostDispatchSeconds, kernelLaunches } from "../host-dispatch.js";
import { gpuGemmSeconds, type KernelRateName, type KernelRates } from "../kernel-rates.js";
import { op } from "../step-time.js";
import type { HfKernel, HfSegment } from "./segment.js";

/** The rates `segmentGpuOps` and `dispatchOp` price with (the GEMM curve too, where the profile has one). */
export const SEGMENT_RATES: readonly KernelRateName[] = [
  "gpuFlopsPerSecond",
  "gpuMemoryBytesPerSecond",
  "gpuKernelLaunchSeconds",
  "gpuElementwiseBytesPerSecond",
  "eagerDispatchSeconds",
];

export const TERM_GEMM = "GPU GEMM";
export const TERM_ATTENTION = "GPU attention";
export const TERM_KV_COPY = "KV cache copies (torch.cat, repeat_kv)";
export const TERM_ELEMENTWISE = "GPU elementwise";
export const TERM_DISPATCH = "framework dispatch";

function kernelTerm(k: HfKernel): string {
  if (k.kind === "gemm") return TERM_GEMM;
  if (k.kind === "matmul") return TERM_ATTENTION;
  return /torch\.cat|repeat_kv/.test(k.name) ? TERM_KV_COPY : TERM_ELEMENTWISE;
}

export function kernelSeconds(rates: KernelRates, k: HfKernel): number {
  if (k.kind === "gemm") return gpuGemmSeconds(rates, k.rows, k.k, k.n);
  if (k.kind === "matmul")
    return (
      Math.max(k.flops / rates.gpuFlopsPerSecond, k.bytes / rates.gpuMemoryBytesPerSecond) +
      rates.gpuKernelLaunchSeconds
    );
  return k.bytes / rates.gpuElementwiseBytesPerSecond + rates.gpuKernelLaunchSeconds;
}

function kernelBytes(k: HfKernel): number {
  return k.kind === "gemm" ? 2 * k.k * k.n + 2 * k.rows * (k.k + k.n) : k.bytes;
}

function kernelFlops(k: HfKernel): number {
  return k.kind === "gemm" ? 2 * k.rows * k.k * k.n : k.kind === "matmul" ? k.flops : 0;
}

/** The segment's kernels on the GPU lane, one operation per term (in order of first appearance). */
export function segmentGpuOps(rates: KernelRates, segment: HfSegment): EngineOperation[] {
  const byTerm = new Map<
    string,
    { names: string[]; seconds: number; bytes: number; flops: number; launches: number }
  >();
  for (const k of segment.kernels) {
    const term = kernelTerm(k);
    const entry = byTerm.get(term) ?? { names: [], seconds: 0, bytes: 0, flops: 0, launches: 0 };
    entry.names.push(k.name);
    entry.seconds += kernelSeconds(rates, k);
    entry.bytes += kernelBytes(k);
    entry.flops += kernelFlops(k);
    entry.launches += 1;
    byTerm.set(term, entry);
  }
  return [...byTerm].map(([term, e]) =>
    op(`${segment.module}: ${e.names.join(", ")}`, "gpu", e.seconds, term, segment.source, {
      bytes: e.bytes,
      flops: e.flops,
      launches: e.launches,
    }),
  );
}

/**
 * `count` PyTorch operations dispatched by the host thread (eager mode), launching the kernels of
 * `gpuOps` (engines/host-dispatch.ts).
 */
export function dispatchOp(
  rates: KernelRates,
  count: number,
  what: string,
  source: string,
  gpuOps: readonly EngineOperation[] = [],
): EngineOperation {
  const launches = kernelLaunches(gpuOps);
  return op(
    `${what}: ${count} eager operations, ${launches} kernel launches`,
    "hostThread",
    hostDispatchSeconds(rates, count, launches),
    TERM_DISPATCH,
    source,
  );
}
