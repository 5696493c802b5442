/**
 * An engine model: how one inference engine (Spillway's own runtime, FlexGen, llama.cpp,
 * mixtral-offloading, Accelerate, DeepSpeed) runs a policy, counted from that engine's source code.
 *
 * A model says how the engine realizes a policy into tensors per tier (its own rule), which operations
 * each step performs (bytes, FLOPs, the lane that runs them and the source file and function they come
 * from), how its steps are ordered (chains of operations that run one after another; chains of one step
 * run side by side; a step ends when all of them end, as after FlexGen's per-step `sync()`), and, where
 * the engine reports its numbers a particular way, its measurement protocol. Every rate comes from the
 * hardware profile (engines/kernel-rates.ts), never from an engine's published end-to-end throughput.
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import type { ModelSpec } from "../core/model-spec.js";
import type { Policy } from "../core/policy.js";
import type { Tier } from "../core/tiers.js";
import type { Workload } from "../core/workload.js";
import type { RoutingProfile } from "../planner/moe/routing-profile.js";
import type { EngineName } from "./engine-names.js";
import type { RateUse } from "./kernel-rates.js";

/**
 * Who performs an operation. Operations on one lane never overlap; lanes run side by side.
 * - gpu: kernels on the GPU's compute units (one stream's worth; engines with one stream put all here)
 * - cpu: compute kernels on the host cores (BLAS, ggml threads)
 * - hostThread: the engine's main host thread doing synchronous work (pageable copies, pin_memory(),
 *   framework dispatch, host synchronisation)
 * - h2d / d2h: the PCIe copy engines
 * - diskRead / diskWrite: the drive
 * - copyThreads: an engine's helper threads relaying copies through pinned buffers
 */
export const LANES = ["gpu", "cpu", "hostThread", "h2d", "d2h", "diskRead", "diskWrite", "copyThreads"] as const;
export type Lane = (typeof LANES)[number];

/** One operation of one step, with its cost already priced from the profile's rates. */
export interface EngineOperation {
  /** What it is, in the engine's words (e.g. "CPU attention: fp16 KV -> fp32 workspace"). */
  readonly name: string;
  readonly lane: Lane;
  readonly seconds: number;
  /** Memory or link traffic the operation moves (0 when none). */
  readonly bytes: number;
  /** Arithmetic it performs (0 when none). */
  readonly flops: number;
  /**
   * GPU kernels the operation launches (absent: none). Each launch is a driver call the host thread
   * makes besides the GPU's own launch gap, so an eager engine's dispatch charges it to the host too
   * (engines/host-dispatch.ts).
   */
  readonly launches?: number;
  /** The chart term it is charged to: "weights I/O", "KV I/O", "CPU attention", "decompression", ... */
  readonly term: string;
  /** Engine source file and function the operation is counted from, e.g. "flexgen/pytorch_backend.py mha_gen". */
  readonly source: string;
  /** Names this operation so that an operation of another chain of the step can wait for it. */
  readonly id?: string;
  /** The `id` of an operation of the same step that must end before this one starts (beside its chain order). */
  readonly after?: string;
}

/**
 * A step the engine repeats `count` times with the same costs: e.g. (decode token, decoder layer, GPU
 * batch). Each chain runs its operations one after another; the chains of a step run side by side
 * (sharing lanes: an operation waits for its lane), an operation with `after` also waits for the
 * operation of that `id`, and the step ends when every chain has ended.
 */
export interface EngineStep {
  readonly phase: "prefill" | "decode";
  /** Short label: "decode layer, GPU batch 0 (loads next layer's weights)". */
  readonly label: string;
  readonly count: number;
  readonly chains: readonly (readonly EngineOperation[])[];
}

/** Engine-specific settings fixed to score one configuration (each engine reads its own). */
export interface EngineKnobs {
  /** llama.cpp: `-ngl N`, layers offloaded to the GPU. */
  readonly nGpuLayers?: number;
  /** llama.cpp: `--n-cpu-moe N`, layers whose routed experts stay on the CPU. */
  readonly nCpuMoe?: number;
  /** llama.cpp: GGUF file type, e.g. "Q4_K_M", "Q8_0", "F16". */
  readonly ggufType?: string;
  /** llama.cpp: `-nkvo` (`--no-kv-offload`), every layer's KV cache in host memory and attention on the CPU. */
  readonly noKvOffload?: boolean;
  /** llama.cpp: `-np`, sequences decoded as one batch (default: the policy's gpuBatchSize x numGpuBatches). */
  readonly parallelSequences?: number;
  /** llama.cpp: `-ub`, tokens of one physical batch (one graph; default 512). */
  readonly ubatchTokens?: number;
  /** FlexGen: the benchmark's `--debug-mode fewer_batch` protocol (decode projected from a few layer steps). */
  readonly fewerBatch?: boolean;
}

export interface EngineRequest {
  readonly model: ModelSpec;
  readonly hardware: HardwareProfile;
  readonly workload: Workload;
  /** The policy as the user asked for it; the engine realizes it by its own rule. */
  readonly policy: Policy;
  readonly knobs?: EngineKnobs;
  /** Routing statistics for expert-cache engines (default: the model's synthetic routing). */
  readonly routing?: RoutingProfile;
}

export interface EnginePrediction {
  readonly engine: EngineName;
  readonly throughputTokensPerSecond: number;
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly totalSeconds: number;
  readonly feasible: boolean;
  readonly infeasibleReasons: readonly string[];
  /** The policy as this engine realizes it (its placement rule, its granularity). */
  readonly realizedPolicy: Policy;
  readonly peakBytes: Readonly<Record<Tier, number>>;
  readonly capacityBytes: Readonly<Record<Tier, number>>;
  /** Wall seconds over the whole run charged to each term (sums to totalSeconds). */
  readonly termSeconds: Readonly<Record<string, number>>;
  /** Busy seconds per lane over the whole run. */
  readonly laneSeconds: Readonly<Record<Lane, number>>;
  /** The term that costs the most wall time. */
  readonly bottleneck: string;
  /** The steps, for the simulator to replay (empty for engines whose simulator is Spillway's own). */
  readonly steps: readonly EngineStep[];
  /** The profile rates the prediction used, and whether each is a datasheet bound, a measurement or fitted. */
  readonly rates: readonly RateUse[];
  /** How the engine reports the numbers this prediction stands for (e.g. FlexGen's fewer_batch projection). */
  readonly protocol?: string;
  readonly notes: readonly string[];
}

/** A prediction as a plan file carries it: everything but the steps (which the simulator rebuilds). */
export type PlanEnginePrediction = Omit<EnginePrediction, "steps">;

export interface EngineModel {
  readonly name: EngineName;
  /** One line: what the engine is and what the model covers. */
  readonly summary: string;
  /** Why this engine cannot run the model or policy (undefined when it can). */
  unsupported(model: ModelSpec, policy?: Policy): string | undefined;
  predict(request: EngineRequest): EnginePrediction;
  /**
   * Whether the request's allocations fit the profile by the engine's memory rule alone (cheaper than
   * predict), where the engine can tell: searches drop what does not fit before timing it.
   */
  fits?(request: EngineRequest): boolean;
  /**
   * A cheaper request to rank candidates by (the engine's own reduced benchmark protocol), where the
   * engine has one; searches predict only the best few in full.
   */
  rankingRequest?(request: EngineRequest): EngineRequest | undefined;
}
