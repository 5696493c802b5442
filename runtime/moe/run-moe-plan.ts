/**
 * `run()` for a Mixture-of-Experts plan (policy.experts): the plan's expert policy run by runMoe on the
 * CPU backend, on the checkpoint in `weightsDir` (Mixtral or Qwen2-MoE), with the prompts a dense run
 * uses (syntheticPrompts, one row per sequence of the batch), reported as a dense run is (the same
 * RunResult fields, trace and `matchesReference`) plus the expert figures measured beside the plan's.
 *
 * The plan's whole batch runs as one batch in lockstep (MoE plans have one GPU batch); the device arena
 * gets the plan's GPU capacity; on the CUDA backend copies overlap compute when the plan overlaps them
 * (MoE plans do), on the CPU backend they run inline unless `overlap` asks for worker threads (below).
 * The all-resident reference always runs (its routing warms the caches, as the replay's trace
 * does); `reference: false` only leaves its tokens out of the result.
 */
import type { HardwareProfile } from "../../core/hardware-profile.js";
import { InputError } from "../../core/input-error.js";
import type { ModelSpec } from "../../core/model-spec.js";
import type { Plan } from "../../core/plan.js";
import { planIdentity } from "../../core/plan-identity.js";
import { checkOutputPath } from "../../core/write-file-atomic.js";
import { PlanError } from "../../planner/plan-error.js";
import { writeRoutingCsv } from "../../routing/routing-csv.js";
import { openTraceSink } from "../../simulator/open-trace-sink.js";
import { cudaExpertDevice } from "../cuda/cuda-expert-device.js";
import type { CudaNative } from "../cuda/native-api.js";
import { requireCuda } from "../cuda/require-cuda.js";
import { DeviceOutOfMemory } from "../device-arena.js";
import type { RunOptions } from "../run-options.js";
import { type RunResult, timedRunFigures } from "../run-result.js";
import { syntheticPrompts } from "../synthetic-prompts.js";
import { type ExpertSummary, measuredExpertSummary, predictedExpertSummary } from "./expert-summary.js";
import { readMoeConfig } from "./moe-checkpoint.js";
import { type MoeRunResult, runMoe } from "./moe-runner.js";
import { expertStoredBytes } from "./quantized-weights.js";
import { unrunnableExpertPolicy } from "./runnable-expert-policy.js";

/** A run of an MoE plan: the dense figures, plus its experts' (measured, and as the plan predicted them). */
export interface MoePlanRunResult extends RunResult {
  readonly experts: ExpertSummary;
  readonly plannedExperts?: ExpertSummary;
}

/** The shape fields a plan and a checkpoint must agree on. */
function checkSameModel(spec: ModelSpec, m: ModelSpec, weightsDir: string): void {
  const fields: [string, unknown, unknown][] = [
    ["family", spec.family, m.family],
    ...(["numLayers", "hiddenSize", "numHeads", "numKvHeads", "vocabSize"] as const).map(
      (k): [string, unknown, unknown] => [k, spec[k], m[k]],
    ),
    ...(["numExperts", "expertsPerToken", "expertFfnSize", "sharedExpertFfnSize"] as const).map(
      (k): [string, unknown, unknown] => [`moe.${k}`, spec.moe?.[k], m.moe?.[k]],
    ),
  ];
  for (const [key, planned, held] of fields)
    if (planned !== held)
      throw new InputError(
        weightsDir,
        undefined,
        `the plan is for ${spec.name} (${key} ${planned}) but this checkpoint holds a model with ${key} ${held}`,
      );
}

/** Why the runtime cannot run this MoE plan yet, or undefined. */
function unrunnable(plan: Plan): string | undefined {
  const why = unrunnableExpertPolicy(plan.policy.experts!);
  if (why) return why;
  if (plan.policy.cache.gpu < 1)
    return "the KV cache on the CPU (policy.cache, with CPU attention) is not run yet for MoE plans: plan with --no-cpu-attention to keep it on the GPU";
  return undefined;
}

/** Runs `plan` (which has policy.experts) and returns the RunResult plus the raw MoE run (routing, counts). */
export async function executeMoePlan(
  plan: Plan,
  profile: HardwareProfile,
  options: RunOptions,
): Promise<{ readonly result: MoePlanRunResult; readonly run: MoeRunResult }> {
  void profile; // the run measures; the profile only predicted
  const why = unrunnable(plan);
  if (why) throw new PlanError(why);
  const config = readMoeConfig(options.weightsDir);
  const m = config.model;
  checkSameModel(plan.modelSpec, m, options.weightsDir);
  const { promptLen: s, genLen: n } = plan.workload;
  if (s + n > m.maxPositions)
    throw new PlanError(`prompt + generated tokens exceed the model's ${m.maxPositions} positions`);
  if (n < 2)
    throw new PlanError(
      `the MoE runtime generates at least 2 tokens (the prefill's and a decode step's), got --gen-len ${n}`,
    );
  const B = plan.policy.gpuBatchSize * plan.policy.numGpuBatches;
  const ids = syntheticPrompts(B, s, m.vocabSize, options.promptSeed ?? 0);
  const promptTokens = Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * s, (b + 1) * s)));
  const backend = options.backend ?? "cpu";
  // On the CPU backend the device is the host's own cores (the profile's gpu.sharesHostCores): an expert
  // copy on a worker thread is a memcpy by the same cores the layer computes on, and waiting for that
  // thread to be scheduled costs more than the copy (bench/moe-fidelity.ts: expert stall 1.6-2x the
  // inline copies' under load). So its expert copies run inline, as the cost model prices them, unless
  // the caller asks for worker threads (`overlap`); the CUDA backend overlaps as the plan says.
  const overlap = options.overlap ?? (backend === "cpu" ? false : plan.policy.overlap);
  let cuda: { readonly native: CudaNative; readonly device: string } | undefined;
  if (backend === "cuda") {
    const native = options.cudaNative ?? requireCuda();
    native.setDevice(0);
    cuda = { native, device: native.deviceProperties(0).name };
  }
  // A routing file is checked before the run (a bad name fails at once) and written after it.
  if (options.routingPath !== undefined) checkOutputPath(options.routingPath);
  const trace = openTraceSink(options, "run()");
  trace?.describe({ source: "run", plan: planIdentity(plan.model, plan.workload, plan.policy) });
  let run: MoeRunResult;
  try {
    run = await runMoe({
      weightsDir: options.weightsDir,
      policy: { ...plan.policy.experts!, batch: B },
      promptTokens,
      genLen: n,
      deviceCapacityBytes: options.capacityBytes.gpu,
      threads: overlap,
      ...(cuda ? { expertDevice: cudaExpertDevice(cuda.native, overlap) } : {}),
      ...(trace ? { trace } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    trace?.close();
  } catch (error) {
    trace?.abort();
    if (error instanceof DeviceOutOfMemory) throw new PlanError(`the plan does not fit at run time: ${error.message}`);
    throw error;
  }
  if (options.routingPath !== undefined) writeRoutingCsv(options.routingPath, run.routing);
  const t = run.timing;
  // Every expert's home copy in host memory, at its stored precision.
  const homeBytes = m.numLayers * m.moe!.numExperts * expertStoredBytes(m, plan.policy.experts!.bits);
  const plannedExperts = predictedExpertSummary(plan);
  const f = timedRunFigures(plan, { ...t, makespanSeconds: t.prefillSeconds + t.decodeSeconds });
  const result: MoePlanRunResult = {
    backend,
    ...(cuda ? { device: cuda.device } : {}),
    schedule: options.schedule ?? plan.schedule,
    overlap,
    throughputTokensPerSecond: f.throughputTokensPerSecond,
    prefillSeconds: f.prefillSeconds,
    decodeSeconds: f.decodeSeconds,
    makespanSeconds: f.makespanSeconds,
    events: t.events,
    peakBytes: { gpu: run.device.peakBytes, cpu: homeBytes, disk: 0 },
    capacityBytes: options.capacityBytes,
    bytes: t.bytes,
    busySeconds: f.busySeconds,
    utilisation: f.utilisation,
    criticalResource: f.criticalResource,
    planned: f.planned,
    relativeError: f.relativeError,
    tokens: run.tokens,
    ...(options.reference !== false
      ? { matchesReference: run.matchesReference, referenceTokens: run.referenceTokens }
      : {}),
    experts: measuredExpertSummary(run, n - 1),
    ...(plannedExperts ? { plannedExperts } : {}),
  };
  return { result, run };
}
