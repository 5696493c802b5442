/**
 * FlexGen export: the `python -m flexgen.flex_opt` command line. FlexGen places each layer's attention
 * and MLP weights separately by its midpoint rule, so the weight percents are searched (every integer
 * wg, wc) for the split whose per-tensor placement lands nearest the plan's realized bytes per tier.
 */

import type { ModelSpec } from "../core/model-spec.js";
import type { Plan } from "../core/plan.js";
import { isUniform, type Placement, type Policy, placementFromPercents } from "../core/policy.js";
import {
  activationTierOf,
  cacheSequences,
  flexgenLayerWeightBytes,
  type TierAmounts,
} from "../core/realize-placement.js";
import { formatBytes } from "../core/units.js";
import type { ExportResult } from "./export-result.js";
import type { ExportOptions } from "./export-source.js";
import { commonHeader, describeTiers, exportText, hfModelId, planWeightBytes, sumTiers } from "./export-source.js";

export interface FlexgenWeightPercent {
  readonly wg: number;
  readonly wc: number;
  /** Bytes of one layer per tier under FlexGen's rule with these percents. */
  readonly bytes: TierAmounts;
  /** Bytes of one layer on a different tier than the target (half the L1 distance). */
  readonly mismatchBytes: number;
}

const mismatch = (a: TierAmounts, b: TierAmounts): number =>
  (Math.abs(a.gpu - b.gpu) + Math.abs(a.cpu - b.cpu) + Math.abs(a.disk - b.disk)) / 2;

/**
 * The integer (wg, wc) whose FlexGen per-part placement is nearest `target` bytes per tier; ties go to
 * the pair nearest the rounded fractions of `weights`.
 */
export function flexgenWeightPercent(
  model: ModelSpec,
  target: TierAmounts,
  weights: Placement,
  compress: boolean,
): FlexgenWeightPercent {
  const rg = Math.round(weights.gpu * 100);
  const rc = Math.round(weights.cpu * 100);
  let best: FlexgenWeightPercent | undefined;
  let bestTie = Infinity;
  for (let wg = 0; wg <= 100; wg++) {
    for (let wc = 0; wc <= 100 - wg; wc++) {
      const bytes = flexgenLayerWeightBytes(model, placementFromPercents(wg, wc), compress);
      const miss = mismatch(bytes, target);
      const tie = Math.abs(wg - rg) + Math.abs(wc - rc);
      if (!best || miss < best.mismatchBytes - 1e-6 || (Math.abs(miss - best.mismatchBytes) <= 1e-6 && tie < bestTie)) {
        best = { wg, wc, bytes, mismatchBytes: miss };
        bestTie = tie;
      }
    }
  }
  return best!;
}

/** FlexGen's six --percent integers for a plan, and the weight search behind the first two. */
export function flexgenPercent(plan: Plan): {
  percent: [number, number, number, number, number, number];
  weights: FlexgenWeightPercent;
  target: TierAmounts;
  layerBytes: number;
} {
  const { modelSpec: model, policy } = plan;
  const w = planWeightBytes(model, policy);
  const L = model.numLayers;
  // Average layer: FlexGen applies one split to every layer.
  const layerSum = w.layers.reduce(
    (s, l) => ({ gpu: s.gpu + l.gpu / L, cpu: s.cpu + l.cpu / L, disk: s.disk + l.disk / L }),
    { gpu: 0, cpu: 0, disk: 0 },
  );
  let target: TierAmounts = layerSum;
  if (policy.experts) {
    // MoE plans store experts at their own bits: aim at the same fractions of FlexGen's layer bytes.
    const full = sumTiers(flexgenLayerWeightBytes(model, { gpu: 1, cpu: 0, disk: 0 }, policy.compressWeight));
    const f = sumTiers(layerSum);
    target = { gpu: (full * layerSum.gpu) / f, cpu: (full * layerSum.cpu) / f, disk: (full * layerSum.disk) / f };
  }
  const weights = flexgenWeightPercent(model, target, policy.weights, policy.compressWeight);
  const seqs = cacheSequences(policy.gpuBatchSize, policy.cache);
  const gbs = policy.gpuBatchSize;
  const act = activationTierOf(policy.activations);
  const percent: [number, number, number, number, number, number] = [
    weights.wg,
    weights.wc,
    Math.round((100 * seqs.gpu) / gbs),
    Math.round((100 * seqs.cpu) / gbs),
    act === "gpu" ? 100 : 0,
    act === "cpu" ? 100 : 0,
  ];
  return { percent, weights, target, layerBytes: sumTiers(weights.bytes) };
}

/** Whether FlexGen's --percent leaves weights or KV cache on disk. */
export function usesDiskTier(percent: readonly number[]): boolean {
  return 100 - percent[0]! - percent[1]! > 0 || 100 - percent[2]! - percent[3]! > 0;
}

/** The flags after --percent that a policy sets: the offload folder, compression, CPU attention, pinning, overlap. */
export function flexgenPolicyFlags(policy: Policy, percent: readonly number[]): string[] {
  const args: string[] = [];
  if (usesDiskTier(percent)) args.push("--offload-dir ~/flexgen_offload_dir");
  if (policy.compressWeight) args.push("--compress-weight");
  if (policy.compressCache) args.push("--compress-cache");
  if (policy.cpuAttention) args.push("--cpu-cache-compute");
  if (!policy.pinWeight) args.push("--pin-weight 0");
  if (!policy.overlap) args.push("--overlap False");
  return args;
}

export function exportFlexgen(plan: Plan, options: ExportOptions = {}): ExportResult {
  const { modelSpec: model, policy, workload } = plan;
  const warnings: string[] = [];
  const { percent, weights, target, layerBytes } = flexgenPercent(plan);
  if (model.family !== "opt")
    warnings.push(
      `FlexGen's flex_opt runs OPT models only; ${model.name} is a ${model.family} model, so this command documents the placement but will not load it`,
    );
  if (policy.layerGroups && !isUniform(policy))
    warnings.push(
      "the plan places layers differently (layerGroups); FlexGen applies one split to every layer, so --percent gives the average layer",
    );
  if (policy.layerGroups?.some((g) => g.compute === "cpu"))
    warnings.push(
      `${policy.layerGroups.filter((g) => g.compute === "cpu").reduce((s, g) => s + g.layers, 0)} layers compute on the CPU in the plan; FlexGen computes every layer on the GPU (only decode attention can run on the CPU, --cpu-cache-compute)`,
    );
  if (policy.experts)
    warnings.push(
      "the plan caches MoE experts on the GPU (cache, prefetch, CPU experts); FlexGen has no experts: the weight split only matches the plan's average bytes",
    );
  const act = percent[4] === 100 ? "gpu" : percent[5] === 100 ? "cpu" : "disk";
  if (act === "disk")
    warnings.push("the plan keeps activations on disk; FlexGen's runtime cannot (hg + hc must be 100)");
  if (policy.embeddings)
    warnings.push(
      "the plan places embeddings and LM head separately (embeddings); FlexGen places them by --percent like the layers",
    );
  const missPercent = layerBytes > 0 ? (100 * weights.mismatchBytes) / layerBytes : 0;
  if (missPercent > 1)
    warnings.push(
      `no integer --percent reproduces the plan's weight placement under FlexGen's per-tensor rule: the best (${weights.wg} ${weights.wc}) misplaces ${formatBytes(weights.mismatchBytes)} per layer (${missPercent.toFixed(1)}% of the layer)`,
    );

  const args = [
    "python -m flexgen.flex_opt",
    `--model ${hfModelId(model)}`,
    `--prompt-len ${workload.promptLen}`,
    `--gen-len ${workload.genLen}`,
    `--gpu-batch-size ${policy.gpuBatchSize}`,
    `--num-gpu-batches ${policy.numGpuBatches}`,
    `--percent ${percent.join(" ")}`,
  ];
  const usesDisk = usesDiskTier(percent);
  args.push(...flexgenPolicyFlags(policy, percent));

  const seqs = cacheSequences(policy.gpuBatchSize, policy.cache);
  const header = [
    ...commonHeader(plan, "FlexGen (python -m flexgen.flex_opt)", options),
    `weights per layer, plan (whole-layer rule): ${describeTiers(target)}`,
    `weights per layer, FlexGen --percent ${weights.wg} ${weights.wc} (attention and MLP placed separately): ${describeTiers(weights.bytes)}${weights.mismatchBytes > 0 ? `; ${formatBytes(weights.mismatchBytes)} off (${missPercent.toFixed(2)}% of the layer)` : "; exact"}`,
    `KV cache: ${seqs.gpu} GPU / ${seqs.cpu} CPU / ${seqs.disk} disk sequences of each GPU batch of ${policy.gpuBatchSize} (FlexGen splits at head granularity, so non-integer percents round)`,
    `activations: ${act}`,
    ...(usesDisk ? ["--offload-dir: FlexGen's default folder; put it on the fast disk the profile describes"] : []),
  ];
  return { target: "flexgen", text: exportText(header, warnings, args.join(" \\\n  ")), warnings };
}
