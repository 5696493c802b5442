/**
 * `compare()`: plan (or score) a policy, simulate it and run it for real (CPU backend, or a GPU), and put the
 * three side by side; `compareRuns()` is the pure part that lines up figures already in hand.
 */
import type { HardwareProfile } from "../core/hardware-profile.js";
import type { ModelSpec } from "../core/model-spec.js";
import type { Plan } from "../core/plan.js";
import type { Workload } from "../core/workload.js";
import { PlanError, type PlanRequest, plan } from "../planner/plan.js";
import { MemoryTraceSink } from "../simulator/memory-trace-sink.js";
import { type SimulationResult, simulate } from "../simulator/simulate.js";
import { type MoeSimulationResult, simulateMoe } from "../simulator/simulate-moe.js";
import { compareTraceSlices, type SliceComparison } from "../simulator/trace-slices.js";
import type { CudaNative } from "./cuda/native-api.js";
import { type ExpertSummary, simulatedExpertSummary } from "./moe/expert-summary.js";
import { executeMoePlan, type MoePlanRunResult } from "./moe/run-moe-plan.js";
import { type RunResult, run } from "./run.js";

export interface Figures {
  readonly throughputTokensPerSecond: number;
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly busySeconds: Readonly<Record<string, number>>;
  readonly peakBytes: { readonly gpu: number; readonly cpu: number; readonly disk: number };
}

export interface Comparison {
  readonly model: string;
  /**
   * The run's workload, model and profile name, so that the file can be scored again against any
   * profile (`spillway calibrate`). Always written; absent from comparison files written before them.
   */
  readonly workload?: Workload;
  readonly modelSpec?: ModelSpec;
  readonly hardware?: string;
  readonly policy: Plan["policy"];
  readonly predicted: Figures;
  readonly simulated: Figures;
  readonly measured: Figures;
  /** (measured - predicted) / predicted, signed, per figure; `throughput` is the headline. */
  readonly relativeError: {
    readonly throughput: number;
    readonly prefill: number;
    readonly decode: number;
    readonly simulatedThroughput: number;
  };
  readonly matchesReference: boolean | undefined;
  /**
   * Mixture-of-Experts plans: the expert figures over the decode steps, as the plan predicted them, as the
   * simulator replayed the routing the run recorded, and as the run counted and timed them.
   */
  readonly experts?: {
    readonly predicted?: ExpertSummary;
    readonly simulated: ExpertSummary;
    readonly measured: ExpertSummary;
  };
  /**
   * Dense plans compared with `slices`: each kind of trace slice (compute, load-cache, ...) per phase, as
   * the simulation timed it and as the run measured it, the largest measured total first.
   */
  readonly slices?: readonly SliceComparison[];
}

const figures = (x: {
  throughputTokensPerSecond: number;
  prefillSeconds: number;
  decodeSeconds: number;
  busySeconds?: Readonly<Record<string, number>>;
  peakBytes: Figures["peakBytes"];
}): Figures => ({
  throughputTokensPerSecond: x.throughputTokensPerSecond,
  prefillSeconds: x.prefillSeconds,
  decodeSeconds: x.decodeSeconds,
  busySeconds: x.busySeconds ?? {},
  peakBytes: x.peakBytes,
});

/**
 * `simulated` is the stream simulation of a dense plan, or the expert-cache replay of an MoE plan, which
 * times layers but keeps no memory ledger: its peak memory is the plan's.
 */
export function compareRuns(
  plan: Plan,
  simulated: SimulationResult | MoeSimulationResult,
  measured: RunResult,
  experts?: Comparison["experts"],
): Comparison {
  const rel = (m: number, p: number) => (m - p) / p;
  return {
    model: plan.model,
    workload: plan.workload,
    modelSpec: plan.modelSpec,
    hardware: plan.hardware,
    policy: plan.policy,
    predicted: figures(plan.predicted),
    simulated: figures("peakBytes" in simulated ? simulated : { ...simulated, peakBytes: plan.predicted.peakBytes }),
    measured: figures(measured),
    relativeError: {
      throughput: rel(measured.throughputTokensPerSecond, plan.predicted.throughputTokensPerSecond),
      prefill: rel(measured.prefillSeconds, plan.predicted.prefillSeconds),
      decode: rel(measured.decodeSeconds, plan.predicted.decodeSeconds),
      simulatedThroughput: rel(simulated.throughputTokensPerSecond, plan.predicted.throughputTokensPerSecond),
    },
    matchesReference: measured.matchesReference,
    ...(experts ? { experts } : {}),
  };
}

export interface CompareOptions extends PlanRequest {
  /** Folder with config.json and safetensors weights (spillway synth-weights makes one). */
  readonly weightsDir: string;
  /** Parent folder for the disk tier's offload files (default: the OS temp folder). */
  readonly offloadDir?: string;
  /** Where the run computes (default "cpu"); the all-on-device reference always runs on the CPU backend. */
  readonly backend?: "cpu" | "cuda";
  /** The CUDA backend's device interface (default: the built addon; tests pass the emulated device). */
  readonly cudaNative?: CudaNative;
  /** Dense plans: also line up the simulated and the measured trace slice by slice (Comparison.slices). */
  readonly slices?: boolean;
  // onProgress (from PlanRequest) observes all four parts: phases "search" (when the policy is searched),
  // "simulate", "run" and "reference".
}

/**
 * The plan, the simulation of its schedule (for an MoE plan, the replay of the routing its run
 * recorded), the measured run and the three side by side.
 */
export interface CompareResult {
  readonly plan: Plan;
  readonly simulated: SimulationResult | MoeSimulationResult;
  readonly measured: RunResult;
  readonly comparison: Comparison;
}

/** Plans, simulates and runs one policy; throws PlanError when the policy does not fit. */
export async function compare(options: CompareOptions): Promise<CompareResult> {
  const { weightsDir, offloadDir, backend, cudaNative, slices, ...request } = options;
  const planned = await plan(request);
  if (!planned.predicted.feasible)
    throw new PlanError(`the policy does not fit: ${planned.predicted.infeasibleReasons.join("; ")}`);
  const hardware: HardwareProfile = request.hardware;
  const capacityBytes = planned.predicted.capacityBytes;
  const onProgress = request.onProgress;
  if (planned.policy.experts) return compareMoe(planned, hardware, options);
  const traces = slices ? { simulated: new MemoryTraceSink(), measured: new MemoryTraceSink() } : undefined;
  const simulated = simulate(planned, hardware, {
    schedule: planned.schedule,
    capacityBytes,
    ...(onProgress ? { onProgress } : {}),
    ...(traces ? { trace: traces.simulated } : {}),
  });
  const measured = await run(planned, hardware, {
    weightsDir,
    schedule: planned.schedule,
    capacityBytes,
    ...(backend ? { backend } : {}),
    ...(cudaNative ? { cudaNative } : {}),
    ...(offloadDir ? { offloadDir } : {}),
    ...(onProgress ? { onProgress } : {}),
    ...(traces ? { trace: traces.measured } : {}),
  });
  const comparison = compareRuns(planned, simulated, measured);
  return {
    plan: planned,
    simulated,
    measured,
    comparison: traces
      ? { ...comparison, slices: compareTraceSlices(traces.simulated.traceEvents, traces.measured.traceEvents) }
      : comparison,
  };
}

/**
 * An MoE plan: run (the all-resident reference, then the plan's caches), then the simulator replays the
 * routing the run recorded through the plan's caches and prefetcher, so its counts are the run's and its
 * times the cost model's for what really happened.
 */
async function compareMoe(planned: Plan, hardware: HardwareProfile, options: CompareOptions): Promise<CompareResult> {
  const { result: measured, run: moeRun } = await executeMoePlan(planned, hardware, {
    weightsDir: options.weightsDir,
    schedule: planned.schedule,
    capacityBytes: planned.predicted.capacityBytes,
    ...(options.backend ? { backend: options.backend } : {}),
    ...(options.cudaNative ? { cudaNative: options.cudaNative } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  const simulated = simulateMoe(planned, hardware, {
    trace: moeRun.routing,
    source: "the routing the run recorded",
  });
  const expertBytes = planned.predicted.experts?.expertBytes ?? moeRun.device.budget.expertBytes;
  return {
    plan: planned,
    simulated,
    measured,
    comparison: compareRuns(
      planned,
      simulated,
      measured,
      experts(measured, simulatedExpertSummary(simulated, expertBytes)),
    ),
  };
}

function experts(measured: MoePlanRunResult, simulated: ExpertSummary): Comparison["experts"] {
  return {
    ...(measured.plannedExperts ? { predicted: measured.plannedExperts } : {}),
    simulated,
    measured: measured.experts,
  };
}
