/**
 * Pipeline-parallel planning over a cluster: contiguous layer stages, one per GPU, each with its own
 * offloading policy, and micro-batches flowing through them (FlexGen's pipeline mode,
 * flexgen/dist_flex_opt.py). For every number of stages S (1, the powers of two, and every GPU), with
 * M = S or 2S micro-batches in flight (FlexGen's default --num-inner-iterations is S) of k GPU batches each:
 *
 * 1. the single-GPU search (Spillway's, unchanged) plans the heaviest stage — the last, with the LM
 *    head, of ceil(layers / S) layers — with M x k GPU batches, so that its memory holds every
 *    micro-batch in flight (each stage keeps the KV cache and hidden states of all of them);
 * 2. the layers are split into stages balanced by that policy's cost on each stage (splitLayers);
 * 3. every stage of another layer count is searched again with the batch fixed, for its own placement;
 * 4. the pipeline's time is its schedule (pipelineTimeline) over the stages' per-micro-batch times
 *    (evaluatePolicy of the stage with k GPU batches) and the links' transfer times.
 *
 * The same question is answered once (stage-search-memo.ts): a stage search recurs for every (M, k) of
 * equal M x k, and first and last stages of equal layer count are one model; the split's costs share a
 * memo of layer costs. Plans are those of the search without memos; only the search counters drop.
 *
 * Each stage is the single-GPU cost model of its layers (stage-model.ts says how the embeddings and LM
 * head are placed). One stage is the single-GPU planner's own plan, exactly: a one-GPU cluster plans
 * as today. Stages fill a node's GPUs before the next node's.
 *
 * Tensor parallelism (tensor-parallel.ts): every size T that divides a node's GPUs and the model's
 * heads is searched as above with S stages of T GPUs each (S x T GPUs at most, S = 1 included when
 * T > 1): each stage's GPUs hold 1/T shards of its layers (shardModel), searched and costed as one GPU
 * of that shard whose every layer step waits for two all-reduces over the node's link. T = 1 is the
 * pipeline search exactly as it was without tensor parallelism.
 */
import {
  type ClusterProfile,
  type GpuAddress,
  gpuAddresses,
  gpuCount,
  linkBetween,
} from "../../core/cluster-profile.js";
import { LINKS, type Link } from "../../core/links.js";
import type { ModelSpec } from "../../core/model-spec.js";
import type { PipelineLink, PipelinePlan, PipelineStage, StageAllReduce } from "../../core/pipeline-plan.js";
import type { Plan } from "../../core/plan.js";
import type { Policy } from "../../core/policy.js";
import { RESOURCE_NAMES, RESOURCES, type Resource } from "../../core/resources.js";
import type { ScheduleName } from "../../core/schedule-name.js";
import { TIERS, type Tier } from "../../core/tiers.js";
import type { Workload } from "../../core/workload.js";
import { type LpSolvers, loadLpSolvers } from "../lp/solve-linear-program.js";
import { flexgenArgs, type PlanRequest, planSync } from "../plan.js";
import { PlanError } from "../plan-error.js";
import { capacityShortfalls, type Prediction } from "../prediction.js";
import { SEARCH_GPU_BATCH_LIMIT } from "../search-budget.js";
import { evaluatePolicy, policyPeakBytes } from "../spillway/evaluate-policy.js";
import { type HardwareRates, hardwareRates } from "../spillway/hardware-rates.js";
import { LayerCostCache } from "../spillway/layer-cost-cache.js";
import { searchSpillway } from "../spillway/spillway-search.js";
import { type PipelineTimeline, pipelineTimeline, type TimelineLink } from "./pipeline-timeline.js";
import { splitLayers } from "./split-layers.js";
import { hiddenStateBytes, type StageRole, stageModel, stageRole, tokenIdBytes } from "./stage-model.js";
import { StageSearchMemo } from "./stage-search-memo.js";
import { allReducePerMicroBatch, shardModel, tensorParallelLink, tensorParallelSizes } from "./tensor-parallel.js";

/** GPU batches per micro-batch the search tries. */
export const MICRO_BATCH_GPU_BATCHES = [1, 2, 4] as const;
/** Micro-batches in flight per stage the search tries (FlexGen's default is one: --num-inner-iterations = stages). */
export const MICRO_BATCHES_PER_STAGE = [1, 2] as const;

export interface PipelineRequest extends Omit<PlanRequest, "hardware"> {
  readonly cluster: ClusterProfile;
  /** Only this tensor-parallel size (GPUs per stage); default: every size the cluster and model allow. */
  readonly tensorParallelSize?: number;
}

/** The stage counts searched on a cluster of `gpus` GPUs for a model of `layers` layers. */
export function stageCounts(gpus: number, layers: number): number[] {
  const out = new Set<number>([1]);
  for (let s = 2; s <= gpus; s *= 2) out.add(s);
  out.add(gpus);
  return [...out].filter((s) => s <= layers).sort((a, b) => a - b);
}

/** A stage's cost-model figures for one micro-batch (k GPU batches), and its memory with all micro-batches in flight. */
export interface StageFigures {
  readonly model: ModelSpec;
  readonly micro: Prediction;
  readonly peakBytes: Record<Tier, number>;
}

export function stageFigures(
  model: ModelSpec,
  rates: HardwareRates,
  workload: Workload,
  policy: Policy,
  microBatches: number,
  schedule: ScheduleName,
): StageFigures {
  return {
    model,
    micro: evaluatePolicy(model, rates, workload, policy, schedule),
    peakBytes: policyPeakBytes(model, rates, workload, inFlight(policy, microBatches), schedule),
  };
}

/** The policy as one GPU holds it with every micro-batch in flight. */
export function inFlight(policy: Policy, microBatches: number): Policy {
  return { ...policy, numGpuBatches: policy.numGpuBatches * microBatches };
}

/** Per-micro-batch step times for the pipeline schedule: the prompt, then each decode step (their mean). */
export function stageStepTimes(prefillSeconds: number, decodeSeconds: number, genLen: number) {
  const steps = genLen - 1;
  return { prefillSeconds, decodeSeconds: new Array<number>(steps).fill(steps > 0 ? decodeSeconds / steps : 0) };
}

/** The links between consecutive stages' GPUs, and from the last back to the first. */
export function stageLinks(cluster: ClusterProfile, gpus: readonly GpuAddress[]) {
  if (gpus.length < 2) return [];
  return gpus.map((gpu, s) => {
    const to = (s + 1) % gpus.length;
    return { from: s, to, ...linkBetween(cluster, gpu, gpus[to]!) };
  });
}

/** The pipeline schedule of stages with these per-micro-batch figures. */
export function stagesTimeline(
  model: ModelSpec,
  workload: Workload,
  sequencesPerMicroBatch: number,
  microBatches: number,
  steps: readonly { prefillSeconds: number; decodeSeconds: number }[],
  links: readonly TimelineLink[],
  record = false,
): PipelineTimeline {
  return pipelineTimeline({
    stages: steps.map((s) => stageStepTimes(s.prefillSeconds, s.decodeSeconds, workload.genLen)),
    links,
    microBatches,
    genLen: workload.genLen,
    hiddenBytes: (i) => hiddenStateBytes(model, sequencesPerMicroBatch, i === 0 ? workload.promptLen : 1),
    tokenBytes: tokenIdBytes(sequencesPerMicroBatch),
    record,
  });
}

interface Candidate {
  readonly plan: Plan;
  readonly throughput: number;
}

function sum<K extends string>(keys: readonly K[], records: readonly Readonly<Record<K, number>>[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, records.reduce((a, r) => a + r[k], 0)])) as Record<K, number>;
}

function scaled<K extends string>(record: Readonly<Record<K, number>>, by: number): Record<K, number> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, (v as number) * by])) as Record<K, number>;
}

/** Plans the pipeline of S stages with micro-batches of k GPU batches; undefined when no stage policy fits. */
function planStages(
  request: PipelineRequest,
  rates: HardwareRates,
  solvers: LpSolvers,
  stages: number,
  M: number,
  k: number,
  counters: { lpSolves: number; evaluations: number },
  memo: StageSearchMemo,
): Plan | undefined {
  const { model, workload, cluster } = request;
  const schedule = request.schedule ?? "spillway";
  const T = rates.tensorParallel?.size ?? 1;
  const shard = (count: number, role: StageRole) => shardModel(stageModel(model, count, role), T);
  const search = (m: ModelSpec, fixed: { gbs?: number; nb: number }) => {
    // --max-block bounds the sequences in flight: every micro-batch's (the search fixes nb to M x k).
    const maxGbs = request.maxBlock !== undefined ? Math.floor(request.maxBlock / fixed.nb) : undefined;
    return memo.policy({ tensorParallelSize: T, model: m, fixed, maxGbs }, () => {
      const result = searchSpillway({
        model: m,
        rates,
        workload,
        schedule,
        solvers,
        fixed,
        ...(maxGbs !== undefined ? { maxGbs } : {}),
      });
      counters.lpSolves += result.lpSolves;
      counters.evaluations += result.exactEvaluations;
      return result.best?.policy;
    });
  };
  // 1. The heaviest stage, searched with every micro-batch in flight.
  const heaviest = Math.ceil(model.numLayers / stages);
  const reference = search(shard(heaviest, "last"), { nb: M * k });
  if (!reference) return undefined;
  const micro: Policy = { ...reference, numGpuBatches: k };
  // 2. The split balanced by that policy's cost on each stage.
  // A first and a last stage of equal layer count are the same model (stageModel): costed once. The
  // memory check comes first, so a stage that cannot hold its micro-batches is never evaluated. Every
  // stage model shares its layers' shapes (only the layer count and vocabulary differ), so one memo of
  // layer costs serves them all: the same costs to the last bit (test/unit/stage-layer-costs.test.ts).
  const costs = new Map<string, number>();
  const layerCosts = new LayerCostCache();
  const costOf = (role: StageRole, count: number) => {
    const m = shard(count, role);
    const key = JSON.stringify(m);
    let cost = costs.get(key);
    if (cost === undefined) {
      const peakBytes = policyPeakBytes(m, rates, workload, inFlight(micro, M), schedule);
      cost =
        capacityShortfalls(peakBytes, rates.capacityBytes).length > 0
          ? Number.POSITIVE_INFINITY
          : evaluatePolicy(m, rates, workload, micro, schedule, layerCosts).totalSeconds;
      costs.set(key, cost);
    }
    return cost;
  };
  const counts = splitLayers(model.numLayers, stages, costOf);
  // 3. Each stage of another layer count searched for its own placement, the batch fixed; stages of the
  // heaviest count keep the reference policy.
  const own = new Map<string, Policy>();
  const policyOf = (role: StageRole, count: number): Policy => {
    if (count === heaviest && costOf(role, count) < Number.POSITIVE_INFINITY) return micro;
    const key = `${role}:${count}`;
    let p = own.get(key);
    if (!p) {
      const found = search(shard(count, role), { gbs: micro.gpuBatchSize, nb: M * k });
      p = found ? { ...found, numGpuBatches: k } : micro;
      own.set(key, p);
    }
    return p;
  };
  const groups = stageGpus(cluster, T).slice(0, stages);
  let from = 0;
  const built = counts.map((count, s) => {
    const role = stageRole(s, stages);
    const policy = policyOf(role, count);
    const figures = stageFigures(shard(count, role), rates, workload, policy, M, schedule);
    const stage = { gpu: groups[s]![0]!, gpus: groups[s]!, layers: { from, to: from + count }, role, policy, figures };
    from += count;
    return stage;
  });
  return pipelinePlan(request, rates, built, M, counters);
}

/** The cluster's GPUs in groups of `size` within a node, in order (stage s runs on group s). */
export function stageGpus(cluster: ClusterProfile, size: number): GpuAddress[][] {
  const all = gpuAddresses(cluster);
  return Array.from({ length: Math.floor(all.length / size) }, (_, g) => all.slice(g * size, (g + 1) * size));
}

/** A stage as built by the search: where it is, its policy and its cost-model figures. */
export interface BuiltStage {
  readonly gpu: GpuAddress;
  /** Its GPUs (one, or its tensor-parallel group), `gpu` first. */
  readonly gpus: readonly GpuAddress[];
  readonly layers: { readonly from: number; readonly to: number };
  readonly role: StageRole;
  readonly policy: Policy;
  readonly figures: StageFigures;
}

function stagePrediction(
  stage: BuiltStage,
  microBatches: number,
  rates: HardwareRates,
  hiddenSize: number,
  workload: Workload,
  link: Pick<StageAllReduce, "kind" | "name" | "bytesPerSecond" | "latencySeconds"> | undefined,
): PipelineStage["predicted"] {
  const { micro, peakBytes } = stage.figures;
  const reasons = capacityShortfalls(peakBytes, rates.capacityBytes);
  const tp = rates.tensorParallel;
  const layers = stage.layers.to - stage.layers.from;
  const allReduce = tp && link ? allReducePerMicroBatch(layers, hiddenSize, workload, stage.policy, tp) : undefined;
  return {
    prefillSecondsPerMicroBatch: micro.prefillSeconds,
    decodeSecondsPerMicroBatch: micro.decodeSeconds,
    busySeconds: scaled(micro.busySeconds, microBatches),
    bytes: scaled(micro.bytes, microBatches),
    peakBytes,
    capacityBytes: rates.capacityBytes,
    feasible: reasons.length === 0,
    infeasibleReasons: reasons,
    bottleneck: RESOURCE_NAMES[micro.bottleneck],
    ...(allReduce && link
      ? {
          allReduce: {
            kind: link.kind,
            name: link.name,
            bytesPerSecond: link.bytesPerSecond,
            latencySeconds: link.latencySeconds,
            bytesPerGpu: allReduce.bytesPerGpu * microBatches,
            busySeconds: allReduce.seconds * microBatches,
          },
        }
      : {}),
  };
}

/** The plan document of a pipeline of built stages. */
function pipelinePlan(
  request: PipelineRequest,
  rates: HardwareRates,
  built: readonly BuiltStage[],
  microBatches: number,
  counters: { lpSolves: number; evaluations: number },
): Plan {
  const { model, workload, cluster } = request;
  const first = built[0]!;
  const sequencesPerMicroBatch = first.policy.gpuBatchSize * first.policy.numGpuBatches;
  const links = stageLinks(
    cluster,
    built.map((b) => b.gpu),
  );
  const timeline = stagesTimeline(
    model,
    workload,
    sequencesPerMicroBatch,
    microBatches,
    built.map((b) => b.figures.micro),
    links,
  );
  const T = rates.tensorParallel?.size ?? 1;
  const intra = T > 1 ? linkBetween(cluster, built[0]!.gpus[0]!, built[0]!.gpus[1]!) : undefined;
  const groupLink = intra && {
    kind: intra.interconnect.kind,
    name: intra.interconnect.name,
    bytesPerSecond: intra.bytesPerSecond,
    latencySeconds: intra.latencySeconds,
  };
  const stages: PipelineStage[] = built.map((b) => ({
    gpu: b.gpu,
    ...(T > 1 ? { gpus: b.gpus } : {}),
    layers: b.layers,
    role: b.role,
    policy: b.policy,
    predicted: stagePrediction(b, microBatches, rates, model.hiddenSize, workload, groupLink),
  }));
  const pipelineLinks: PipelineLink[] = links.map((l, i) => ({
    from: l.from,
    to: l.to,
    kind: l.interconnect.kind,
    name: l.interconnect.name,
    bytesPerSecond: l.bytesPerSecond,
    latencySeconds: l.latencySeconds,
    bytes: timeline.linkBytes[i]!,
    busySeconds: timeline.linkBusySeconds[i]!,
  }));
  const peakBytes = Object.fromEntries(
    TIERS.map((t) => [t, Math.max(...stages.map((s) => s.predicted.peakBytes[t]))]),
  ) as Record<Tier, number>;
  const infeasibleReasons = stages.flatMap((s, i) => s.predicted.infeasibleReasons.map((r) => `stage ${i}: ${r}`));
  const slowest = timeline.stageBusySeconds.reduce((a, b, i, all) => (b > all[a]! ? i : a), 0);
  const busiestLink = timeline.linkBusySeconds.reduce((a, b, i, all) => (b > all[a]! ? i : a), 0);
  const linkBound =
    pipelineLinks.length > 0 && timeline.linkBusySeconds[busiestLink]! > timeline.stageBusySeconds[slowest]!;
  const pipeline: PipelinePlan = {
    cluster,
    microBatches,
    ...(T > 1 ? { tensorParallelSize: T } : {}),
    stages,
    links: pipelineLinks,
    stageIdleFraction: timeline.stageIdleFraction,
  };
  const policy = { ...first.policy, numGpuBatches: first.policy.numGpuBatches * microBatches };
  const sequences = sequencesPerMicroBatch * microBatches;
  return {
    model: model.name,
    hardware: cluster.name,
    hardwareProfile: cluster.perGpu,
    costModel: "spillway",
    schedule: request.schedule ?? "spillway",
    workload: { promptLen: workload.promptLen, genLen: workload.genLen },
    policy,
    predicted: {
      throughputTokensPerSecond: (sequences * workload.genLen) / timeline.totalSeconds,
      prefillSeconds: timeline.prefillSeconds,
      decodeSeconds: timeline.decodeSeconds,
      feasible: infeasibleReasons.length === 0,
      infeasibleReasons,
      peakBytes,
      capacityBytes: rates.capacityBytes,
      // Every GPU's: a tensor-parallel stage's T GPUs each move and spend what its prediction says.
      bytes: sum(
        LINKS,
        stages.map((s) => scaled(s.predicted.bytes, T)),
      ) as Record<Link, number>,
      busySeconds: sum(
        RESOURCES,
        stages.map((s) => scaled(s.predicted.busySeconds, T)),
      ) as Record<Resource, number>,
      bottleneck: linkBound
        ? `${pipelineLinks[busiestLink]!.name} (stage ${pipelineLinks[busiestLink]!.from} to ${pipelineLinks[busiestLink]!.to})`
        : `${stages[slowest]!.predicted.bottleneck} of stage ${slowest}`,
    },
    search: {
      lpSolves: counters.lpSolves,
      elapsedMs: 0,
      exactEvaluations: counters.evaluations,
      lpFallbacks: 0,
      scored: false,
      wallClockLimitHits: 0,
    },
    flexgenArgs: flexgenArgs(model, first.policy),
    modelSpec: model,
    notes: [
      `pipeline of ${stages.length} stages${T > 1 ? ` of ${T} GPUs each (tensor parallel)` : ""} on ${cluster.name}: layers ${stages.map((s) => `[${s.layers.from}, ${s.layers.to})`).join(" ")}, ${microBatches} micro-batches of ${sequencesPerMicroBatch} sequences in flight`,
      "each stage is costed as one GPU running its layers (the first stage also pays the LM head step it does not run); hidden states cross the links between stages",
      ...(T > 1
        ? [
            `each GPU of a stage holds and computes a 1/${T} shard of its layers and KV cache (heads, MLP columns and vocabulary split), and waits for two ring all-reduces of the hidden state per layer over ${intra!.interconnect.name}`,
          ]
        : []),
    ],
    pipeline,
  };
}

/**
 * Plans `request.model` on a cluster. A one-GPU cluster gives the single-GPU planner's plan exactly;
 * otherwise the best of one stage (the single-GPU plan on one GPU of the cluster) and every pipeline searched.
 */
export function planPipelineSync(request: PipelineRequest, solvers: LpSolvers): Plan {
  const { cluster, ...rest } = request;
  const single: PlanRequest = { ...rest, hardware: cluster.perGpu };
  const started = performance.now();
  let best: Candidate | undefined;
  try {
    const plan = planSync(single, solvers);
    if (gpuCount(cluster) === 1) return plan;
    best = { plan: { ...plan, hardware: cluster.name }, throughput: plan.predicted.throughputTokensPerSecond };
  } catch (error) {
    if (!(error instanceof PlanError) || gpuCount(cluster) === 1) throw error;
  }
  if (request.costModel === "flexgen" || request.model.moe || Object.keys(request.fixed ?? {}).length > 0)
    throw new PlanError(
      "pipeline plans are searched with Spillway's cost model for dense models, with no fixed policy settings",
    );
  const counters = { lpSolves: 0, evaluations: 0 };
  const memo = new StageSearchMemo();
  const sizes = tensorParallelSizes(request.model, cluster).filter(
    (t) => request.tensorParallelSize === undefined || t === request.tensorParallelSize,
  );
  if (sizes.length === 0)
    throw new PlanError(
      `a tensor-parallel size of ${request.tensorParallelSize} does not divide ${cluster.name}'s ${cluster.gpusPerNode} GPUs per node and ${request.model.name}'s ${request.model.numHeads} heads (sizes possible: ${tensorParallelSizes(request.model, cluster).join(", ")})`,
    );
  // Stage counts per size: S x T GPUs at most; one stage of one GPU is the single-GPU plan above.
  const layouts = sizes.map((T) => ({
    T,
    counts: stageCounts(gpuCount(cluster) / T, request.model.numLayers).filter((s) => s > 1 || T > 1),
  }));
  let step = 0;
  const total =
    layouts.reduce((a, l) => a + l.counts.length, 0) * MICRO_BATCHES_PER_STAGE.length * MICRO_BATCH_GPU_BATCHES.length;
  for (const { T, counts } of layouts) {
    const link = tensorParallelLink(cluster, T);
    const rates = { ...hardwareRates(cluster.perGpu), ...(link ? { tensorParallel: link } : {}) };
    for (const stages of counts)
      for (const perStage of MICRO_BATCHES_PER_STAGE)
        for (const k of MICRO_BATCH_GPU_BATCHES) {
          const M = stages * perStage;
          request.onProgress?.({
            phase: "search",
            done: step++,
            total,
            detail: `${stages} stages${T > 1 ? ` of ${T} GPUs` : ""}, ${M} micro-batches of ${k} GPU batches`,
          });
          if (M * k > SEARCH_GPU_BATCH_LIMIT || M * k > (request.maxBlock ?? Number.POSITIVE_INFINITY)) continue;
          const candidate = planStages(request, rates, solvers, stages, M, k, counters, memo);
          if (!candidate?.predicted.feasible) continue;
          const throughput = candidate.predicted.throughputTokensPerSecond;
          if (!best || throughput > best.throughput) best = { plan: candidate, throughput };
        }
  }
  if (!best)
    throw new PlanError(`no pipeline of ${cluster.name}'s ${gpuCount(cluster)} GPUs fits ${request.model.name}`);
  const elapsedMs = performance.now() - started;
  const search = best.plan.pipeline
    ? { ...best.plan.search, lpSolves: counters.lpSolves, exactEvaluations: counters.evaluations, elapsedMs }
    : best.plan.search;
  return { ...best.plan, search };
}

/** As planPipelineSync(), loading the LP solvers first. */
export async function planPipeline(request: PipelineRequest, solvers?: LpSolvers): Promise<Plan> {
  return planPipelineSync(request, solvers ?? (await loadLpSolvers()));
}
