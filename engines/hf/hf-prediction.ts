/**
 * An engine prediction from the steps of a transformers generate call: phase totals by the closed
 * form (engines/step-time.ts), throughput as FlexGen's Accelerate/DeepSpeed harness reports it
 * (benchmark/hf_ds/hf_opt.py: batch x gen_len / (prefill latency + decode latency)), and the capacity
 * check against the profile's tiers.
 */
import type { Policy } from "../../core/policy.js";
import type { Tier } from "../../core/tiers.js";
import { capacityShortfalls } from "../../planner/prediction.js";
import type { EnginePrediction, EngineRequest, EngineStep } from "../engine-model.js";
import type { EngineName } from "../engine-names.js";
import { type KernelRateName, ratesUsed, resolveRates } from "../kernel-rates.js";
import { largestTerm, totalSteps } from "../step-time.js";

export const HARNESS_PROTOCOL =
  "FlexGen's harness (benchmark/hf_ds/hf_opt.py): one generate() call over the whole batch, each forward timed " +
  "with torch.cuda.synchronize (FlexGen's fork of generation_utils.py); prefill = the first forward, decode = " +
  "the other gen_len - 1; throughput = batch x gen_len / (prefill + decode). For OPT-30B and OPT-175B the " +
  "harness runs 5 tokens and projects the rest (cut_gen_len 5, flexgen/utils.py project_decode_latency); " +
  "this prediction times every token.";

export interface HfPredictionInput {
  readonly engine: EngineName;
  readonly request: EngineRequest;
  /** Sequences in the one batch generate() runs. */
  readonly batch: number;
  readonly steps: readonly EngineStep[];
  readonly realizedPolicy: Policy;
  readonly peakBytes: Readonly<Record<Tier, number>>;
  readonly rateNames: readonly KernelRateName[];
  readonly notes: readonly string[];
}

export function hfPrediction(input: HfPredictionInput): EnginePrediction {
  const { request, batch, steps } = input;
  const total = totalSteps(steps);
  const totalSeconds = total.prefillSeconds + total.decodeSeconds;
  const capacity = request.hardware.capacityBytes;
  const capacityBytes = { gpu: capacity.gpu.value, cpu: capacity.cpu.value, disk: capacity.disk.value };
  const infeasibleReasons = capacityShortfalls(input.peakBytes, capacityBytes);
  return {
    engine: input.engine,
    throughputTokensPerSecond: (batch * request.workload.genLen) / totalSeconds,
    prefillSeconds: total.prefillSeconds,
    decodeSeconds: total.decodeSeconds,
    totalSeconds,
    feasible: infeasibleReasons.length === 0,
    infeasibleReasons,
    realizedPolicy: input.realizedPolicy,
    peakBytes: input.peakBytes,
    capacityBytes,
    termSeconds: total.termSeconds,
    laneSeconds: total.laneSeconds,
    bottleneck: largestTerm(total.termSeconds),
    steps,
    rates: ratesUsed(resolveRates(request.hardware), input.rateNames),
    protocol: HARNESS_PROTOCOL,
    notes: input.notes,
  };
}
