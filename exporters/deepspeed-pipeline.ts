/**
 * DeepSpeed ZeRO-Inference for a pipeline plan's GPUs: one ZeRO stage-3 config for every rank, a
 * hostfile (one line per node, `slots=` its GPUs in the plan), and the `deepspeed` launcher line
 * (deepspeed/launcher/runner.py: --hostfile, --num_nodes, --num_gpus). ZeRO-3 is no pipeline: it
 * shards every layer's parameters over all ranks and each rank runs its own batch through every layer,
 * gathering each layer's shards from the other ranks (and its own from offload_param) as it goes, so the
 * plan's stages, their layer ranges and per-stage placements have no equivalent; the config offloads
 * to NVMe when any stage keeps weights on disk, else to CPU memory, else not at all. A tensor-parallel
 * plan's GPUs are all ranks; DeepSpeed's own tensor parallelism (init_inference's tensor_parallel.tp_size,
 * deepspeed/inference/config.py DeepSpeedTPConfig) is named beside the config, since it keeps every weight
 * on the GPUs and does not combine with ZeRO-3 offload.
 */

import type { PipelinePlan } from "../core/pipeline-plan.js";
import type { Plan } from "../core/plan.js";
import { stageModel } from "../planner/pipeline/stage-model.js";
import { zeroInferenceConfig, zeroPolicyWarnings } from "./deepspeed.js";
import type { ExportResult } from "./export-result.js";
import type { ExportOptions } from "./export-source.js";
import { blockSize, commonHeader, describeTiers, hfModelId, planWeightBytes, ZERO } from "./export-source.js";

/** The hostfile's node names: placeholders for the nodes' ssh names (one node: this machine). */
export const deepspeedHostName = (node: number, nodes: number): string => (nodes === 1 ? "localhost" : `node${node}`);

export function exportDeepspeedPipeline(plan: Plan, pipeline: PipelinePlan, options: ExportOptions = {}): ExportResult {
  const { modelSpec: model } = plan;
  const S = pipeline.stages.length;
  const T = pipeline.tensorParallelSize ?? 1;
  // Every GPU of the plan is a ZeRO rank (a tensor-parallel stage's T GPUs each).
  const gpus = pipeline.stages.flatMap((s) => s.gpus ?? [s.gpu]);
  const ranks = gpus.length;
  const warnings: string[] = [];
  // Each node's slots: its GPUs up to the highest the plan uses (stages fill a node's GPUs from index 0).
  const slots = new Map<number, number>();
  for (const g of gpus) slots.set(g.node, Math.max(slots.get(g.node) ?? 0, g.index + 1));
  const nodes = [...slots.keys()];
  const hostfile = nodes.map((n) => `${deepspeedHostName(n, nodes.length)} slots=${slots.get(n)}`);
  // Each stage's weights per tier under its own policy, and the whole model's.
  const perStage = pipeline.stages.map(
    (s) => planWeightBytes(stageModel(model, s.layers.to - s.layers.from, s.role), s.policy).total,
  );
  const total = perStage.reduce((a, b) => ({ gpu: a.gpu + b.gpu, cpu: a.cpu + b.cpu, disk: a.disk + b.disk }), ZERO);
  const device = total.disk > 0 ? "nvme" : total.cpu > 0 ? "cpu" : "none";
  const maxInCpu = Math.floor(total.cpu / model.bytesPerParam / ranks);
  const counts = pipeline.stages.map((s) => s.layers.to - s.layers.from);
  if (T > 1)
    warnings.push(
      `the plan splits each stage over ${T} GPUs (tensor parallelism, two all-reduces per layer); DeepSpeed's tensor parallelism (deepspeed.init_inference with tensor_parallel={"tp_size": ${T}}, formerly mp_size) keeps every weight on the GPUs and does not combine with ZeRO-3's offload: ${pipeline.stages.every((s) => s.policy.weights.gpu >= 1 - 1e-9 && s.policy.cache.gpu >= 1 - 1e-9) && S === 1 ? `this plan keeps weights and KV on the GPUs, so _spillway.tensorParallel's init_inference call runs it as planned on one node (deepspeed --num_gpus ${T})` : "this config shards over every GPU data-parallel instead (ZeRO-3), and _spillway.tensorParallel names the call for a plan that keeps everything on its GPUs"}`,
    );
  warnings.push(
    `ZeRO-3 has no pipeline stages: it shards every layer over all ${ranks} GPUs and each rank runs its own batch through every layer (data-parallel), gathering each layer's shards from the other ranks${nodes.length > 1 ? " across the network" : ""}; the plan's stages (layers ${counts.join(", ")}, each on its GPU with its own placement) are not expressible`,
  );
  const first = pipeline.stages[0]!.policy;
  const setting = (p: typeof first) =>
    [p.gpuBatchSize, p.numGpuBatches, p.pinWeight, p.overlap, p.compressWeight].join();
  if (pipeline.stages.some((s) => setting(s.policy) !== setting(first)))
    warnings.push(
      "the stages' batch, pinning, overlap or weight compression differ; ZeRO-Inference has one config for every rank: the first stage's are used",
    );
  if (device !== "none" && total.gpu > 0)
    warnings.push(
      `the plan keeps ${describeTiers(total)} of weights over its stages; ZeRO-Inference streams every layer from ${device === "nvme" ? "NVMe" : "CPU memory"} and cannot keep a share resident on the GPUs`,
    );
  if (device === "nvme" && total.cpu > 0)
    warnings.push(
      `the plan splits offloaded weights between CPU and disk; max_in_cpu keeps ${maxInCpu} parameters per rank in CPU memory, the rest on NVMe`,
    );
  const seen = new Set<string>();
  for (const s of pipeline.stages) for (const w of zeroPolicyWarnings(s.policy).warnings) seen.add(w);
  warnings.push(...seen);
  const { quantBits } = zeroPolicyWarnings(first);
  const { bufferSize, config: zero } = zeroInferenceConfig(model, {
    device,
    pinMemory: first.pinWeight,
    overlap: first.overlap,
    maxInCpu,
    quantBits,
  });
  // The plan's sequences in flight (every micro-batch), divided among the ranks.
  const inFlight = blockSize(first) * pipeline.microBatches;
  const perRank = Math.ceil(inFlight / ranks);
  warnings.push(
    `no micro-batches: the plan's ${pipeline.microBatches} micro-batches of ${blockSize(first)} sequences (${inFlight} in flight) become ${perRank} sequences per rank, each rank generating its own`,
  );
  // The launcher takes GPUs [0, slots) of each node; other GPUs are named with --include (exclusive of the counts).
  const indices = (n: number) => gpus.filter((g) => g.node === n).map((g) => g.index);
  const fromZero = nodes.every((n) => indices(n).length === slots.get(n));
  const uniform = new Set(slots.values()).size === 1;
  const include = nodes
    .map((n) => `${deepspeedHostName(n, nodes.length)}:${[...indices(n)].sort((a, b) => a - b).join(",")}`)
    .join("@");
  const launch = [
    "deepspeed",
    "--hostfile hostfile",
    ...(fromZero
      ? [
          ...(nodes.length > 1 ? [`--num_nodes ${nodes.length}`] : []),
          ...(uniform ? [`--num_gpus ${slots.get(nodes[0]!)}`] : []),
        ]
      : [`--include ${include}`]),
    "zero_inference.py",
    "--deepspeed_config ds_config.json",
  ].join(" ");
  const config = {
    _spillway: {
      comment: [
        ...commonHeader(plan, "DeepSpeed ZeRO-Inference on several GPUs (ZeRO stage 3 over the plan's GPUs)", options),
        "files: this JSON is ds_config.json; hostfile is _spillway.hostfile, one line per node (jq -r '._spillway.hostfile[]' ds_config.json > hostfile); node names are placeholders for the nodes' ssh names (passwordless ssh from the first)",
        `launch: ${launch}${!fromZero ? " (--include names the plan's GPUs of each node)" : uniform ? "" : " (the nodes use different GPU counts: the hostfile's slots= set them, no --num_gpus)"}`,
        `zero_inference.py: your script; every rank builds AutoModelForCausalLM.from_pretrained("${hfModelId(model)}", torch_dtype=torch.float16) inside HfDeepSpeedConfig(cfg), takes deepspeed.initialize(model=..., config=cfg)[0].module and calls generate() on its own ${perRank} prompts (prompt ${plan.workload.promptLen}, ${plan.workload.genLen} new tokens)`,
        `offload_param: ${device === "none" ? "none: the stages keep every weight on their GPUs, so parameters stay sharded over the GPUs" : device}${device === "nvme" ? " (nvme_path is a placeholder: each node's NVMe mount)" : ""}; buffer_size ${bufferSize} parameters holds the largest layer and tensor`,
        ...(quantBits
          ? [`weight_quantization: ${quantBits}-bit group-wise (group 64, asymmetric), ZeRO-Inference's own format`]
          : []),
      ],
      model: hfModelId(model),
      hardware: plan.hardware,
      hostfile,
      launch,
      ...(T > 1
        ? {
            tensorParallel: {
              tp_size: T,
              init_inference: `deepspeed.init_inference(model, tensor_parallel={"tp_size": ${T}}, dtype=torch.float16)`,
              launch: `deepspeed --num_gpus ${T} your_script.py`,
            },
          }
        : {}),
      warnings,
    },
    ...zero,
    train_micro_batch_size_per_gpu: perRank,
    // DeepSpeed checks train_batch_size = micro-batch x gradient accumulation (1) x world size.
    train_batch_size: perRank * ranks,
    steps_per_print: 2000,
    wall_clock_breakdown: false,
  };
  return { target: "deepspeed", text: JSON.stringify(config, null, 2) + "\n", warnings };
}
