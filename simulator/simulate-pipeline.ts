/**
 * Simulates a pipeline plan: every stage is its own GPU with its own resources and memory, replayed by
 * the stream simulator as a single-GPU schedule of its layers (once with one micro-batch, for its step
 * times and traffic, once with every micro-batch in flight, for its memory); the stages' simulated step
 * times then run through the pipeline's schedule over the links between them (pipelineTimeline, the
 * planner's own), which gives the fill, drain and bubbles. Traffic is compared with the planner's per
 * stage and per link, memory with each GPU's capacity. A tensor-parallel stage is replayed as one GPU of
 * its group (its 1/T shard, every layer step waiting for its all-reduces); the all-reduce traffic is
 * counted from the layer steps the replay ran and compared with the planner's.
 */
import { LINKS, type Link } from "../core/links.js";
import type { PipelinePlan } from "../core/pipeline-plan.js";
import type { Plan } from "../core/plan.js";
import type { Policy } from "../core/policy.js";
import { layerAllReduceBytesPerGpu, layerAllReduceSeconds } from "../core/ring-all-reduce.js";
import type { ScheduleName } from "../core/schedule-name.js";
import { TIERS, type Tier } from "../core/tiers.js";
import { formatBytes } from "../core/units.js";
import type { PipelineTimeline } from "../planner/pipeline/pipeline-timeline.js";
import { inFlight, stageLinks, stagesTimeline } from "../planner/pipeline/plan-pipeline.js";
import { stageModel } from "../planner/pipeline/stage-model.js";
import { shardModel, tensorParallelLink } from "../planner/pipeline/tensor-parallel.js";
import type { Overflow } from "./memory-ledger.js";
import { pipelineAsciiTimeline } from "./pipeline-ascii-timeline.js";
import { PlanCosts } from "./plan-costs.js";
import { simulateSchedule } from "./simulate.js";
import type { Task } from "./task.js";

/** Disagreements beyond this relative error in traffic are reported (the 1%). */
export const TRAFFIC_TOLERANCE = 0.01;

export interface SimulatedStage {
  readonly prefillSecondsPerMicroBatch: number;
  readonly decodeSecondsPerMicroBatch: number;
  /** Traffic over the run (every micro-batch), and the planner's. */
  readonly bytes: Readonly<Record<Link, number>>;
  readonly plannedBytes: Readonly<Record<Link, number>>;
  /** The most allocated on this GPU's tiers with every micro-batch in flight, and the planner's. */
  readonly peakBytes: Readonly<Record<Tier, number>>;
  readonly plannedPeakBytes: Readonly<Record<Tier, number>>;
  readonly capacityBytes: Readonly<Record<Tier, number>>;
  readonly overflow: Overflow | undefined;
  readonly idleFraction: number;
  readonly events: number;
  /** A tensor-parallel stage: bytes each GPU sends in all-reduces over the run, counted from the replayed layer steps, and the planner's. */
  readonly allReduceBytesPerGpu?: number;
  readonly plannedAllReduceBytesPerGpu?: number;
  /** Seconds of those all-reduces (inside the GPU's busy time). */
  readonly allReduceSeconds?: number;
}

export interface SimulatedLink {
  readonly from: number;
  readonly to: number;
  readonly bytes: number;
  readonly plannedBytes: number;
  readonly busySeconds: number;
}

export interface PipelineSimulation {
  readonly throughputTokensPerSecond: number;
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly makespanSeconds: number;
  readonly planned: {
    readonly throughputTokensPerSecond: number;
    readonly prefillSeconds: number;
    readonly decodeSeconds: number;
  };
  readonly relativeError: number;
  readonly stages: readonly SimulatedStage[];
  readonly links: readonly SimulatedLink[];
  readonly disagreements: readonly string[];
  /** Text chart of the whole run, one lane per stage and link (with `timeline`). */
  readonly timeline?: string;
}

function scaled(record: Readonly<Record<Link, number>>, by: number): Record<Link, number> {
  return Object.fromEntries(LINKS.map((l) => [l, record[l] * by])) as Record<Link, number>;
}

const relative = (a: number, b: number) => (b === 0 ? (a === 0 ? 0 : Number.POSITIVE_INFINITY) : (a - b) / b);

export function simulatePipeline(
  plan: Plan & { readonly pipeline: PipelinePlan },
  options: { readonly schedule: ScheduleName; readonly timeline?: boolean },
): PipelineSimulation {
  const { pipeline, modelSpec: model, workload } = plan;
  const profile = pipeline.cluster.perGpu;
  const M = pipeline.microBatches;
  const T = pipeline.tensorParallelSize ?? 1;
  const link = tensorParallelLink(pipeline.cluster, T);
  const cache = new Map<
    string,
    Omit<SimulatedStage, "plannedBytes" | "plannedPeakBytes" | "idleFraction" | "plannedAllReduceBytesPerGpu">
  >();
  const simulateStage = (layers: number, role: PipelinePlan["stages"][number]["role"], policy: Policy) => {
    const key = JSON.stringify([layers, role, policy]);
    const hit = cache.get(key);
    if (hit) return hit;
    const m = shardModel(stageModel(model, layers, role), T);
    const capacityBytes = plan.predicted.capacityBytes;
    // A tensor-parallel GPU's layer steps: each ends with its two all-reduces of the batch's hidden states.
    let allReduceBytes = 0;
    let allReduceSeconds = 0;
    const onTaskEnd = (task: Task) => {
      if (!link || (task.kind !== "compute" && task.kind !== "compute-post")) return;
      const tokens = policy.gpuBatchSize * (task.token === 0 ? workload.promptLen : 1);
      allReduceBytes += layerAllReduceBytesPerGpu(tokens, model.hiddenSize, link.size);
      allReduceSeconds += layerAllReduceSeconds(tokens, model.hiddenSize, link);
    };
    const micro = simulateSchedule(
      new PlanCosts(m, profile, workload, policy, options.schedule, link),
      policy.gpuBatchSize,
      { schedule: options.schedule, capacityBytes, onTaskEnd },
    );
    const whole = inFlight(policy, M);
    const memory = simulateSchedule(
      new PlanCosts(m, profile, workload, whole, options.schedule, link),
      whole.gpuBatchSize,
      { schedule: options.schedule, capacityBytes },
    );
    const out = {
      prefillSecondsPerMicroBatch: micro.prefillSeconds,
      decodeSecondsPerMicroBatch: micro.decodeSeconds,
      bytes: scaled(micro.bytes, M),
      peakBytes: memory.peakBytes,
      capacityBytes,
      overflow: memory.overflow ?? micro.overflow,
      events: micro.events + memory.events,
      ...(link ? { allReduceBytesPerGpu: allReduceBytes * M, allReduceSeconds: allReduceSeconds * M } : {}),
    };
    cache.set(key, out);
    return out;
  };
  const simulated = pipeline.stages.map((s) => simulateStage(s.layers.to - s.layers.from, s.role, s.policy));
  const first = pipeline.stages[0]!.policy;
  const links = stageLinks(
    pipeline.cluster,
    pipeline.stages.map((s) => s.gpu),
  );
  const timeline: PipelineTimeline = stagesTimeline(
    model,
    workload,
    first.gpuBatchSize * first.numGpuBatches,
    M,
    simulated.map((s) => ({
      prefillSeconds: s.prefillSecondsPerMicroBatch,
      decodeSeconds: s.decodeSecondsPerMicroBatch,
    })),
    links,
    options.timeline === true,
  );
  const stages: SimulatedStage[] = simulated.map((s, i) => ({
    ...s,
    plannedBytes: pipeline.stages[i]!.predicted.bytes,
    plannedPeakBytes: pipeline.stages[i]!.predicted.peakBytes,
    idleFraction: timeline.stageIdleFraction[i]!,
    ...(s.allReduceBytesPerGpu !== undefined
      ? { plannedAllReduceBytesPerGpu: pipeline.stages[i]!.predicted.allReduce?.bytesPerGpu ?? 0 }
      : {}),
  }));
  const simulatedLinks: SimulatedLink[] = links.map((l, i) => ({
    from: l.from,
    to: l.to,
    bytes: timeline.linkBytes[i]!,
    plannedBytes: pipeline.links[i]?.bytes ?? 0,
    busySeconds: timeline.linkBusySeconds[i]!,
  }));
  const sequences = first.gpuBatchSize * first.numGpuBatches * M;
  const throughput = (sequences * workload.genLen) / timeline.totalSeconds;
  const planned = {
    throughputTokensPerSecond: plan.predicted.throughputTokensPerSecond,
    prefillSeconds: plan.predicted.prefillSeconds,
    decodeSeconds: plan.predicted.decodeSeconds,
  };
  const disagreements: string[] = [];
  stages.forEach((s, i) => {
    if (s.overflow)
      disagreements.push(
        `stage ${i}: ${s.overflow.tier} memory overflows while allocating ${s.overflow.what}: ${formatBytes(s.overflow.inUseBytes)} in use, capacity ${formatBytes(s.overflow.capacityBytes)}`,
      );
    for (const link of LINKS) {
      const e = relative(s.bytes[link], s.plannedBytes[link]);
      if (Math.abs(e) > TRAFFIC_TOLERANCE && Math.max(s.bytes[link], s.plannedBytes[link]) > 2 ** 20)
        disagreements.push(
          `stage ${i} traffic: ${link} moves ${formatBytes(s.bytes[link])} simulated vs ${formatBytes(s.plannedBytes[link])} planned (${(e * 100).toFixed(1)}%)`,
        );
    }
    if (s.allReduceBytesPerGpu !== undefined) {
      const e = relative(s.allReduceBytesPerGpu, s.plannedAllReduceBytesPerGpu ?? 0);
      if (Math.abs(e) > TRAFFIC_TOLERANCE)
        disagreements.push(
          `stage ${i} all-reduce traffic: ${formatBytes(s.allReduceBytesPerGpu)} per GPU simulated vs ${formatBytes(s.plannedAllReduceBytesPerGpu ?? 0)} planned (${(e * 100).toFixed(1)}%)`,
        );
    }
    for (const tier of TIERS)
      if (s.peakBytes[tier] > s.plannedPeakBytes[tier] * 1.001 && s.peakBytes[tier] > 2 ** 20)
        disagreements.push(
          `stage ${i} memory: simulated ${tier} peak ${formatBytes(s.peakBytes[tier])} is above the planned ${formatBytes(s.plannedPeakBytes[tier])}`,
        );
  });
  for (const l of simulatedLinks) {
    const e = relative(l.bytes, l.plannedBytes);
    if (Math.abs(e) > TRAFFIC_TOLERANCE)
      disagreements.push(
        `link ${l.from}->${l.to}: ${formatBytes(l.bytes)} simulated vs ${formatBytes(l.plannedBytes)} planned (${(e * 100).toFixed(1)}%)`,
      );
  }
  const relativeError = relative(throughput, planned.throughputTokensPerSecond);
  if (Math.abs(relativeError) > 0.1)
    disagreements.push(
      `throughput: ${throughput.toFixed(3)} token/s simulated vs ${planned.throughputTokensPerSecond.toFixed(3)} planned (${(relativeError * 100).toFixed(1)}%): the stages' own schedules (see spillway simulate on one stage)`,
    );
  return {
    throughputTokensPerSecond: throughput,
    prefillSeconds: timeline.prefillSeconds,
    decodeSeconds: timeline.decodeSeconds,
    makespanSeconds: timeline.totalSeconds,
    planned,
    relativeError,
    stages,
    links: simulatedLinks,
    disagreements,
    ...(options.timeline ? { timeline: pipelineAsciiTimeline(timeline, pipeline.stages.length) } : {}),
  };
}
