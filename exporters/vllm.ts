/**
 * vLLM export: `vllm serve` flags. vLLM can offload a fixed amount of weights to CPU memory
 * (`--cpu-offload-gb`, streamed to the GPU every forward pass), caps the running sequences and their
 * length, and swaps preempted sequences' KV cache to CPU (`--swap-space`). It has no disk tier, keeps
 * running sequences' KV on the GPU, and computes attention on the GPU.
 */

import type { Plan } from "../core/plan.js";
import { activationTierOf, cacheSequences } from "../core/realize-placement.js";
import type { ExportResult } from "./export-result.js";
import type { ExportOptions } from "./export-source.js";
import {
  blockSize,
  commentLines,
  commonHeader,
  gibUp,
  hfModelId,
  kvBytesPerSequence,
  planWeightBytes,
} from "./export-source.js";

export function exportVllm(plan: Plan, options: ExportOptions = {}): ExportResult {
  const { modelSpec: model, policy, workload } = plan;
  const warnings: string[] = [];
  const notes: string[] = [];
  const w = planWeightBytes(model, policy);
  const offBytes = w.total.cpu + w.total.disk;
  const block = blockSize(policy);
  const flags = [
    "vllm serve",
    hfModelId(model),
    "--dtype float16",
    `--max-model-len ${workload.promptLen + workload.genLen}`,
    `--max-num-seqs ${block}`,
  ];
  if (offBytes > 0) {
    flags.push(`--cpu-offload-gb ${gibUp(offBytes)}`);
    notes.push(
      `--cpu-offload-gb: the plan's off-GPU weights (${gibUp(offBytes)} GiB); vLLM streams them to the GPU every forward pass`,
    );
  }
  const cap = plan.predicted.capacityBytes.gpu;
  const peak = plan.predicted.peakBytes.gpu;
  let util = 0.9;
  if (cap && peak && cap > 0) {
    util = Math.min(0.98, Math.max(0.5, Math.ceil((peak / cap) * 100) / 100));
    notes.push(
      `--gpu-memory-utilization: the plan's GPU peak over capacity (${(peak / cap).toFixed(3)}), at least 0.5 so vLLM has KV blocks for the batch`,
    );
  }
  flags.push(`--gpu-memory-utilization ${util.toFixed(2)}`);
  const seqs = cacheSequences(policy.gpuBatchSize, policy.cache);
  const offGpuSeqs = (seqs.cpu + seqs.disk) * policy.numGpuBatches;
  const kvPerSeq = kvBytesPerSequence(model, workload, policy.compressCache);
  if (offGpuSeqs > 0) {
    const swap = Math.max(1, Math.ceil(gibUp(offGpuSeqs * kvPerSeq, 1)));
    flags.push(`--swap-space ${swap}`);
    warnings.push(
      `the plan keeps ${offGpuSeqs} of ${block} sequences' KV cache off the GPU; vLLM keeps running sequences' KV on the GPU and only swaps preempted ones to CPU (--swap-space ${swap} GiB holds them)`,
    );
  }
  if (policy.compressWeight) {
    flags.push("--quantization bitsandbytes");
    notes.push(
      "--quantization bitsandbytes: in-flight 4-bit weights (the nearest vLLM has to the plan's 4-bit group-wise weights; or serve a GPTQ/AWQ checkpoint)",
    );
  }
  if (policy.experts && policy.experts.bits !== 16)
    notes.push(
      `the plan stores experts at ${policy.experts.bits} bits: serve a checkpoint quantised to match (GPTQ/AWQ)`,
    );
  if (policy.compressCache) {
    flags.push("--kv-cache-dtype fp8");
    warnings.push("the plan compresses the KV cache to 4 bits; vLLM's smallest KV dtype is fp8 (--kv-cache-dtype fp8)");
  }
  if (w.total.disk > 0)
    warnings.push(
      `the plan keeps weights on disk; vLLM has no disk tier: --cpu-offload-gb counts them as CPU memory (${gibUp(w.total.disk)} GiB more RAM than the plan)`,
    );
  if (seqs.disk > 0) warnings.push("the plan keeps KV cache on disk; vLLM cannot");
  if (policy.cpuAttention)
    warnings.push("the plan computes decode attention on the CPU; vLLM computes attention on the GPU");
  if (activationTierOf(policy.activations) !== "gpu")
    warnings.push("the plan keeps activations off the GPU; vLLM cannot");
  if (policy.layerGroups?.some((g) => g.compute === "cpu"))
    warnings.push(
      "the plan computes some layers on the CPU; vLLM computes every layer on the GPU (offloaded weights are streamed in)",
    );
  if (policy.experts)
    warnings.push(
      `the plan caches ${policy.experts.cacheSize} experts per layer on the GPU; vLLM has no expert cache: --cpu-offload-gb offloads whole parameters, experts included`,
    );
  if (!policy.overlap) notes.push("the plan does not overlap I/O and compute; vLLM has no such switch");

  const header = [
    ...commonHeader(plan, "vLLM (vllm serve)", options),
    `--max-num-seqs ${block}: the plan's block; --max-model-len: prompt + generated tokens`,
    ...notes,
  ];
  const text =
    [
      commentLines(header),
      ...(warnings.length ? [commentLines(warnings, "# warning: ")] : []),
      flags.join(" \\\n  "),
    ].join("\n") + "\n";
  return { target: "vllm", text, warnings };
}
