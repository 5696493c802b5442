/**
 * llama.cpp's RPC backend for a pipeline plan (tools/rpc/README.md): an `rpc-server` per GPU of the
 * stages the main host does not run (CUDA_VISIBLE_DEVICES leaves it one GPU), and on the main host
 * (the last stage's node) `llama-server` with `--rpc` listing them in stage order, `-ngl` every layer
 * and the output layer, and `--tensor-split` the plan's layer counts. llama.cpp orders its devices RPC
 * servers first, in --rpc order, then local GPUs (src/llama.cpp, "add RPC servers at the front of the
 * list") and gives layer il of the n_layer + 1 (the output layer last) to the first device whose
 * normalised cumulative split exceeds il / (n_layer + 1) (src/llama-model.cpp load_tensors); so the
 * layer counts, the output layer added to the last stage, reproduce the plan's contiguous ranges. A
 * tensor-parallel plan of one stage becomes `--split-mode row` over its GPUs (common/arg.cpp: rows of
 * every matrix split by --tensor-split, KV and intermediate results on --main-gpu); llama.cpp cannot
 * combine row and layer splits, so a tensor-parallel plan of several stages runs each on its first GPU.
 */

import type { PipelinePlan, PipelineStage } from "../core/pipeline-plan.js";
import type { Plan } from "../core/plan.js";
import { ggufQuantisation } from "../engines/llama-cpp/gguf-file-types.js";
import { stageModel } from "../planner/pipeline/stage-model.js";
import type { ExportResult } from "./export-result.js";
import type { ExportOptions } from "./export-source.js";
import { blockSize, commonHeader, exportText, gib, planWeightBytes } from "./export-source.js";
import { LLAMA_NO_OPT, llamaBatchFlags, llamaBatchNote } from "./llama-cpp.js";
import { tensorParallelFallbackWarning } from "./tensor-parallel-fallback.js";

/** rpc-server's default port (tools/rpc/rpc-server.cpp); a node's k-th server listens on the next ports. */
export const RPC_SERVER_PORT = 50052;

/**
 * The device llama.cpp gives each of `layers` decoder layers and the output layer (index `layers`),
 * for `--tensor-split split` with every layer offloaded (-ngl layers + 1): src/llama-model.cpp's rule,
 * in single-precision floats as there.
 */
export function llamaLayerDevices(split: readonly number[], layers: number): number[] {
  const f = Math.fround;
  const cumulative: number[] = [];
  let sum = f(0);
  for (const s of split) {
    sum = f(sum + f(s));
    cumulative.push(sum);
  }
  const bounds = cumulative.map((c) => f(c / sum));
  return Array.from({ length: layers + 1 }, (_, il) => {
    const x = f(il / (layers + 1));
    const device = bounds.findIndex((b) => b > x);
    return device < 0 ? bounds.length - 1 : device;
  });
}

export function exportLlamaCppRpc(plan: Plan, pipeline: PipelinePlan, options: ExportOptions = {}): ExportResult {
  const { modelSpec: model, workload } = plan;
  const L = model.numLayers;
  const stages = pipeline.stages;
  const S = stages.length;
  const warnings: string[] = [];
  if (model.family === "opt") warnings.push(LLAMA_NO_OPT);
  // A tensor-parallel plan of one stage is llama.cpp's row split over the node's GPUs; with several stages
  // llama.cpp cannot mix it with the layer split (one --split-mode for every device, and only local CUDA
  // GPUs take rows, not RPC servers): each stage then runs on its first GPU.
  const T = pipeline.tensorParallelSize ?? 1;
  const rowGpus = T > 1 && S === 1 ? (stages[0]!.gpus ?? [stages[0]!.gpu]) : undefined;
  const fallback = rowGpus
    ? undefined
    : tensorParallelFallbackWarning(
        pipeline,
        "llama.cpp (its row split takes a single process's local GPUs and one --split-mode applies to every device)",
      );
  if (fallback) warnings.push(fallback);
  if (rowGpus)
    warnings.push(
      `--split-mode row splits each weight matrix's rows over the ${T} GPUs as the plan does, but keeps the KV cache and intermediate results on the main GPU (-mg 0), where the plan splits the KV cache ${T} ways`,
    );
  // The main host runs the trailing stages on its node with its own GPUs; every earlier stage is an rpc-server.
  const mainNode = stages[S - 1]!.gpu.node;
  let firstLocal = S;
  while (firstLocal > 0 && stages[firstLocal - 1]!.gpu.node === mainNode) firstLocal--;
  const remote = stages.slice(0, firstLocal);
  const local = stages.slice(firstLocal);
  const ports = new Map<PipelineStage, number>();
  const perNode = new Map<number, number>();
  for (const s of remote) {
    const k = perNode.get(s.gpu.node) ?? 0;
    perNode.set(s.gpu.node, k + 1);
    ports.set(s, RPC_SERVER_PORT + k);
  }
  const endpoint = (s: PipelineStage) => `$NODE${s.gpu.node}_IP:${ports.get(s)}`;
  const counts = stages.map((s) => s.layers.to - s.layers.from);
  // The output layer is the last device's: it holds the LM head in the plan too.
  const split = counts.map((n, i) => (i === S - 1 ? n + 1 : n));

  const first = stages[0]!.policy;
  const quant = ggufQuantisation({ policy: first });
  if (stages.some((s) => ggufQuantisation({ policy: s.policy }) !== quant))
    warnings.push(
      `the stages store weights at different precisions; a GGUF has one quantisation for every layer (${quant})`,
    );
  for (const [i, s] of stages.entries()) {
    const w = planWeightBytes(stageModel(model, counts[i]!, s.role), s.policy).total;
    if (w.cpu + w.disk > 0)
      warnings.push(
        `stage ${i} keeps ${gib(w.cpu + w.disk)} GiB of its weights off the GPU (CPU or disk); llama.cpp keeps every layer of a device on that device (only the main host's CPU can take layers, the first ones): GPU ${s.gpu.node}:${s.gpu.index} must hold all ${counts[i]} of its layers`,
      );
    if (s.policy.cache.gpu < 1 - 1e-9)
      warnings.push(
        `stage ${i} keeps KV cache off the GPU; llama.cpp keeps each layer's KV cache on its device (-nkvo moves all of it to the main host)`,
      );
  }
  if (stages.some((s) => s.policy.cpuAttention))
    warnings.push("the plan computes decode attention on the CPU; llama.cpp computes it where the layer's KV lives");
  if (stages.some((s) => s.policy.compressCache))
    warnings.push("the plan compresses the KV cache to 4 bits; add -ctk q4_0 (the V cache needs flash attention)");
  if (stages.some((s) => s.policy.experts))
    warnings.push("the plan caches MoE experts on the GPUs; llama.cpp has no expert cache");
  const microBlock = blockSize(first);
  const batching = llamaBatchFlags(
    workload,
    microBlock * pipeline.microBatches,
    first.gpuBatchSize * first.numGpuBatches,
  );
  warnings.push(...batching.warnings);
  warnings.push(
    `micro-batches: llama.cpp overlaps the devices only on a prompt's -ub micro-batches (${Math.ceil(batching.batch / batching.ubatch)} of them here, the plan's ${pipeline.microBatches} micro-batches${batching.ubatch < workload.promptLen * microBlock ? ` cut at -ub ${batching.ubatch} tokens` : ""}), and only when every device supports async compute and events (src/llama-context.cpp, pipeline_parallel); decode steps of the ${batching.block} sequences go through the devices one after another, one batch in flight`,
  );

  const lines: string[] = [];
  const remoteNodes = [...new Set(remote.map((s) => s.gpu.node))];
  for (const node of remoteNodes) {
    lines.push(`# node ${node} (NODE${node}_IP is its address):`);
    for (const s of remote.filter((r) => r.gpu.node === node))
      lines.push(`CUDA_VISIBLE_DEVICES=${s.gpu.index} rpc-server -H 0.0.0.0 -p ${ports.get(s)} &`);
  }
  if (remoteNodes.length > 0) lines.push(`# node ${mainNode} (the main host), once the servers are up:`);
  const server = [
    `CUDA_VISIBLE_DEVICES=${(rowGpus ?? local.map((s) => s.gpu)).map((g) => g.index).join(",")} llama-server`,
    `-m ${model.name}-${quant}.gguf`,
    ...(remote.length > 0 ? [`--rpc ${remote.map(endpoint).join(",")}`] : []),
    `-ngl ${L + 1}`,
    ...(rowGpus
      ? ["--split-mode row", `--tensor-split ${rowGpus.map(() => 1).join(",")}`, "-mg 0"]
      : ["--split-mode layer", `--tensor-split ${split.join(",")}`]),
    ...batching.flags,
  ];
  lines.push(server.join(" \\\n  "));
  const devices = [
    ...remote.map((s) => `${endpoint(s)} (stage ${stages.indexOf(s)})`),
    ...local.map((s) => `local CUDA GPU ${s.gpu.index} (stage ${stages.indexOf(s)})`),
  ];
  const header = [
    ...commonHeader(plan, "llama.cpp's RPC backend (rpc-server per GPU, llama-server --rpc on the main host)", options),
    `pipeline: ${S} stages on ${new Set(stages.map((s) => s.gpu.node)).size} node(s); layers ${counts.join(", ")}`,
    `devices in llama.cpp's order (RPC servers first, in --rpc order, then the main host's GPUs): ${devices.join(", ")}`,
    rowGpus
      ? `--split-mode row --tensor-split ${rowGpus.map(() => 1).join(",")}: every layer's matrices split by rows in equal shares over the stage's ${T} GPUs (tensor parallelism), -ngl ${L + 1} = ${L} layers + output; the token embedding stays on the host's CPU, as llama.cpp always keeps it`
      : `--tensor-split ${split.join(",")}: each device's layer count, the last with the output layer (-ngl ${L + 1} = ${L} layers + output); the token embedding stays on the main host's CPU, as llama.cpp always keeps it`,
    "rpc-server needs llama.cpp built with -DGGML_RPC=ON on every node; never expose it on an untrusted network (it is unauthenticated)",
    `-m: a GGUF of ${model.name} quantised ${quant}; the file name is a placeholder. Only the main host needs it: the servers receive their layers over the network (rpc-server -c caches them)`,
    llamaBatchNote(workload, batching.block),
  ];
  return {
    target: "llama.cpp",
    text: exportText(header, warnings, lines.join("\n")),
    warnings,
    engineKnobs: { nGpuLayers: L + 1, ggufType: quant },
  };
}
