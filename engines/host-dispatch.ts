/**
 * The host thread's cost of an eager framework (PyTorch) issuing GPU work: every framework operation
 * the engine's Python code calls (views included) costs `eagerDispatchSeconds` (Python binding,
 * argument parsing, dispatcher: the wall time of an operation on a tensor too small to compute), and
 * every GPU kernel those operations launch adds the launch call itself, `gpuKernelLaunchSeconds`, which
 * the host thread makes as well (the profile's eagerDispatchSeconds source: "a CUDA operation adds its
 * kernel launch on top"). The GPU lane keeps its own launch gap per kernel; launches are asynchronous,
 * so the two lanes overlap and the GPU waits only when the host is behind.
 */
import type { EngineOperation } from "./engine-model.js";
import type { KernelRates } from "./kernel-rates.js";

/** Kernels the GPU-lane operations among `ops` launch. */
export function kernelLaunches(ops: readonly EngineOperation[]): number {
  return ops.reduce((a, o) => a + (o.lane === "gpu" ? (o.launches ?? 0) : 0), 0);
}

/** Host seconds of dispatching `frameworkOps` eager operations that launch `launches` GPU kernels. */
export function hostDispatchSeconds(rates: KernelRates, frameworkOps: number, launches: number): number {
  return frameworkOps * rates.eagerDispatchSeconds + launches * rates.gpuKernelLaunchSeconds;
}
