/**
 * Baseline policies users would otherwise pick, scored by the same cost model as Spillway's own plan:
 *
 * - `accelerate`: Hugging Face Accelerate's device_map="auto". Embeddings, then whole layers in order on
 *   the GPU until it is full, then on the CPU, then on disk; an offloaded layer's weights are fetched
 *   when it runs (no prefetch: overlap off, pageable host memory); KV cache and activations on the GPU;
 *   one batch, the best of the small batches (1, 2, 4, 8) its users run.
 * - `deepspeed-zero`: ZeRO-Inference. Every weight streamed layer by layer from host memory (or from
 *   NVMe when the host cannot hold them), KV cache and activations on the GPU, one GPU batch of the
 *   largest size that fits, prefetch overlapping compute, no compression, attention on the GPU.
 * - `flexgen`: the policy FlexGen's own search picks (its cost model and T4-fitted constants where the
 *   profile has them), then scored by the Spillway model like every other row.
 *
 * - `llama.cpp`: `-ngl N`. The last N layers resident and computed on the GPU with their KV cache, the
 *   others computed on the CPU from host memory with theirs; the token table on the CPU (with the output
 *   layer too unless every layer is offloaded); the largest N that fits, at fp16 or at 4-bit (Q4_0-like,
 *   4.5 bits per weight), whichever is faster, and the best batch of 1, 2, 4, 8 parallel sequences.
 *   Simplification: a CPU-resident LM head is costed as streamed to the GPU, not computed on the CPU.
 *
 * Where the user fixed the plan's batch (`plan --gbs G --nb N`, or an MoE model's `--batch-size`), every
 * baseline serves that many sequences at once (`BaselineBatch`): one GPU batch of G x N for the
 * one-batch engines, G and N as fixed for FlexGen's search. A plan fixed to one sequence (latency) is
 * then compared with each engine decoding one sequence, not with the batch of 8 it would pick itself.
 */

import type { Plan } from "../core/plan.js";
import { counted } from "../core/plural.js";
import type { LayerGroup, Placement } from "../core/policy.js";
import { toFlexgenPercent } from "../core/policy.js";
import { type FixedPolicy, PlanError, type PlanRequest, plan } from "./plan.js";

export const BASELINE_NAMES = ["accelerate", "deepspeed-zero", "llama.cpp", "flexgen"] as const;
export type BaselineName = (typeof BASELINE_NAMES)[number];

export interface Baseline {
  readonly name: BaselineName;
  /** What the baseline stands for, in its users' terms. */
  readonly description: string;
  /** The baseline's policy scored by the Spillway cost model; undefined when it cannot run at all. */
  readonly plan?: Plan;
  readonly reason?: string;
}

type BaseRequest = Omit<PlanRequest, "fixed" | "costModel" | "maxBlock" | "alpha">;

/** The parts of the compared plan's batch its user fixed (`--gbs`, `--nb`; an MoE model's `--batch-size` is gbs with nb 1). */
export interface BaselineBatch {
  readonly gbs?: number;
  readonly nb?: number;
}

/** Sequences per block when the user fixed both parts of the batch; undefined when any part was searched. */
export function fixedSequences(batch: BaselineBatch | undefined): number | undefined {
  return batch?.gbs !== undefined && batch.nb !== undefined ? batch.gbs * batch.nb : undefined;
}

/** The batches a one-batch baseline tries: the fixed block, else what its users run. */
function batchesToTry(batch: BaselineBatch | undefined): readonly number[] {
  const fixed = fixedSequences(batch);
  return fixed !== undefined ? [fixed] : SMALL_BATCHES;
}

/** How a one-batch baseline's description names its batch. */
function batchWords(batch: BaselineBatch | undefined, own: string): string {
  const fixed = fixedSequences(batch);
  return fixed !== undefined ? `batch ${fixed} (fixed for the plan)` : own;
}

/** "N sequences (fixed for the plan) do not fit", agreeing in number. */
function fixedDoNotFit(sequences: number): string {
  return `${counted(sequences, "sequence")} (fixed for the plan) ${sequences === 1 ? "does" : "do"} not fit`;
}

/** The largest GPU batch size (1 .. 2^20) for which `fixed(gbs)` is feasible, with its plan. */
async function largestFeasible(request: BaseRequest, fixed: (gbs: number) => FixedPolicy): Promise<Plan | undefined> {
  const at = (gbs: number) => plan({ ...request, costModel: "spillway", fixed: fixed(gbs) });
  let best = await at(1);
  if (!best.predicted.feasible) return undefined;
  let low = 1;
  let high = 2;
  for (;;) {
    const p = await at(high);
    if (!p.predicted.feasible) break;
    best = p;
    low = high;
    if (high >= 1 << 20) return best;
    high *= 2;
  }
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    const p = await at(mid);
    if (p.predicted.feasible) {
      best = p;
      low = mid;
    } else high = mid;
  }
  return best;
}

/** Batch sizes the accelerate and llama.cpp baselines try: what their users run, not a search. */
export const SMALL_BATCHES = [1, 2, 4, 8] as const;

const ON: Record<"gpu" | "cpu" | "disk", Placement> = {
  gpu: { gpu: 1, cpu: 0, disk: 0 },
  cpu: { gpu: 0, cpu: 1, disk: 0 },
  disk: { gpu: 0, cpu: 0, disk: 1 },
};

/** The largest n in [0, max] with ok(n), for ok monotone (true up to some n, false beyond); -1 if ok(0) fails. */
async function largestWhere(max: number, ok: (n: number) => Promise<boolean>): Promise<number> {
  if (!(await ok(0))) return -1;
  let low = 0;
  let high = max + 1;
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (await ok(mid)) low = mid;
    else high = mid;
  }
  return low;
}

const groups = (...parts: [number, Placement, "gpu" | "cpu"][]): LayerGroup[] =>
  parts.filter(([layers]) => layers > 0).map(([layers, weights, compute]) => ({ layers, weights, compute }));

const better = (a: Plan | undefined, b: Plan): Plan =>
  a && a.predicted.throughputTokensPerSecond >= b.predicted.throughputTokensPerSecond ? a : b;

export async function accelerateBaseline(request: BaseRequest, batch?: BaselineBatch): Promise<Baseline> {
  const description = `Accelerate device_map="auto": whole layers on the GPU until full, then CPU, then disk; weights fetched when a layer runs (no prefetch); KV on the GPU; ${batchWords(batch, "batch 1-8")}`;
  const L = request.model.numLayers;
  let best: Plan | undefined;
  for (const gbs of batchesToTry(batch)) {
    const at = (gpuLayers: number, cpuLayers: number, embeddings: Placement) =>
      plan({
        ...request,
        costModel: "spillway",
        fixed: {
          gbs,
          nb: 1,
          percent: [0, 100, 100, 0, 100, 0],
          compressWeight: false,
          compressCache: false,
          cpuAttention: false,
          overlap: false,
          pinWeight: false,
          embeddings,
          layerGroups: groups(
            [gpuLayers, ON.gpu, "gpu"],
            [cpuLayers, ON.cpu, "gpu"],
            [L - gpuLayers - cpuLayers, ON.disk, "gpu"],
          ),
        },
      });
    const fits = (p: Plan, tier: "gpu" | "cpu") => p.predicted.peakBytes[tier] <= p.predicted.capacityBytes[tier];
    // The device map fills in module order: the embeddings first, then the layers.
    let embeddings = ON.gpu;
    if (!fits(await at(0, L, embeddings), "gpu")) embeddings = ON.cpu;
    const gpuLayers = await largestWhere(L, async (n) => fits(await at(n, L - n, embeddings), "gpu"));
    if (gpuLayers < 0) continue;
    const cpuLayers = await largestWhere(L - gpuLayers, async (n) => fits(await at(gpuLayers, n, embeddings), "cpu"));
    if (cpuLayers < 0) continue;
    const p = await at(gpuLayers, cpuLayers, embeddings);
    if (p.predicted.feasible) best = better(best, p);
  }
  return best
    ? { name: "accelerate", description, plan: best }
    : {
        name: "accelerate",
        description,
        reason: `${fixedSequences(batch) === undefined ? "not even one sequence fits" : fixedDoNotFit(fixedSequences(batch)!)} with the KV cache on the GPU and the layers streamed`,
      };
}

export async function llamaCppBaseline(request: BaseRequest, batch?: BaselineBatch): Promise<Baseline> {
  const description = `llama.cpp -ngl N: the last N layers on the GPU, the rest computed on the CPU from host memory; the largest N that fits, fp16 or 4-bit, ${batchWords(batch, "batch 1-8")}`;
  const L = request.model.numLayers;
  let best: Plan | undefined;
  for (const compressWeight of [false, true]) {
    for (const gbs of batchesToTry(batch)) {
      const at = (gpuLayers: number) =>
        plan({
          ...request,
          costModel: "spillway",
          fixed: {
            gbs,
            nb: 1,
            percent: [0, 100, 100, 0, 100, 0],
            compressWeight,
            compressCache: false,
            cpuAttention: false,
            overlap: true,
            pinWeight: true,
            // The token table stays on the CPU; the output layer joins the GPU once every layer has (-ngl L+1).
            embeddings: gpuLayers === L ? ON.gpu : ON.cpu,
            layerGroups: groups([L - gpuLayers, ON.cpu, "cpu"], [gpuLayers, ON.gpu, "gpu"]),
          },
        });
      const gpuLayers = await largestWhere(L, async (n) => {
        const p = await at(n);
        return p.predicted.peakBytes.gpu <= p.predicted.capacityBytes.gpu;
      });
      if (gpuLayers < 0) continue;
      const p = await at(gpuLayers);
      if (p.predicted.feasible) best = better(best, p);
    }
  }
  return best
    ? { name: "llama.cpp", description, plan: best }
    : {
        name: "llama.cpp",
        description,
        reason:
          fixedSequences(batch) === undefined
            ? "the layers left on the CPU do not fit in host memory, even at 4 bits"
            : `with ${fixedSequences(batch)} sequences (fixed for the plan), the layers left on the CPU do not fit in host memory, even at 4 bits`,
      };
}

export async function deepspeedZeroBaseline(request: BaseRequest, batch?: BaselineBatch): Promise<Baseline> {
  const fixedBlock = fixedSequences(batch);
  const description = `ZeRO-Inference: weights streamed from host memory (NVMe if they do not fit), KV on the GPU, ${batchWords(batch, "the largest batch that fits")}`;
  const fixed =
    (weightsOnHost: boolean) =>
    (gbs: number): FixedPolicy => ({
      gbs,
      nb: 1,
      percent: [0, weightsOnHost ? 100 : 0, 100, 0, 100, 0],
      compressWeight: false,
      compressCache: false,
      cpuAttention: false,
      overlap: true,
      pinWeight: true,
    });
  const exactly = async (weightsOnHost: boolean) => {
    const p = await plan({ ...request, costModel: "spillway", fixed: fixed(weightsOnHost)(fixedBlock!) });
    return p.predicted.feasible ? p : undefined;
  };
  const best =
    fixedBlock !== undefined
      ? ((await exactly(true)) ?? (await exactly(false)))
      : ((await largestFeasible(request, fixed(true))) ?? (await largestFeasible(request, fixed(false))));
  return best
    ? { name: "deepspeed-zero", description, plan: best }
    : {
        name: "deepspeed-zero",
        description,
        reason: `${fixedBlock === undefined ? "no batch fits" : fixedDoNotFit(fixedBlock)} with the KV cache on the GPU and the weights on the host or disk`,
      };
}

export async function flexgenBaseline(request: BaseRequest, batch?: BaselineBatch): Promise<Baseline> {
  const fixedParts = [
    batch?.gbs !== undefined ? `GPU batch ${batch.gbs}` : "",
    batch?.nb !== undefined ? counted(batch.nb, "GPU batch", "GPU batches") : "",
  ].filter((w) => w !== "");
  const description = `the policy FlexGen's own search and cost model pick${fixedParts.length > 0 ? ` (${fixedParts.join(", ")}, fixed for the plan)` : ""}`;
  if (request.model.family !== "opt")
    return {
      name: "flexgen",
      description,
      reason: `FlexGen runs OPT models only; ${request.model.name} is a ${request.model.family} model`,
    };
  let chosen: Plan;
  try {
    chosen = await plan({
      ...request,
      costModel: "flexgen",
      ...(fixedParts.length > 0
        ? {
            fixed: {
              ...(batch?.gbs !== undefined ? { gbs: batch.gbs } : {}),
              ...(batch?.nb !== undefined ? { nb: batch.nb } : {}),
            },
          }
        : {}),
    });
  } catch (error) {
    // FlexGen's LP can pick a policy that does not fit once allocated as Spillway does: a reason, not a failure of the comparison.
    if (!(error instanceof PlanError)) throw error;
    return { name: "flexgen", description, reason: error.message };
  }
  if (!chosen.predicted.feasible)
    return {
      name: "flexgen",
      description,
      reason: `FlexGen's search finds no feasible policy: ${chosen.predicted.infeasibleReasons.join("; ")}`,
    };
  const p = chosen.policy;
  const scored = await plan({
    ...request,
    costModel: "spillway",
    fixed: {
      gbs: p.gpuBatchSize,
      nb: p.numGpuBatches,
      percent: toFlexgenPercent(p),
      compressWeight: p.compressWeight,
      compressCache: p.compressCache,
      cpuAttention: p.cpuAttention,
      overlap: p.overlap,
      pinWeight: p.pinWeight,
    },
  });
  return { name: "flexgen", description, plan: scored };
}

/** Every baseline for a request, in BASELINE_NAMES order; `batch`: what the user fixed of the compared plan's batch. */
export async function baselines(request: BaseRequest, batch?: BaselineBatch): Promise<Baseline[]> {
  return [
    await accelerateBaseline(request, batch),
    await deepspeedZeroBaseline(request, batch),
    await llamaCppBaseline(request, batch),
    await flexgenBaseline(request, batch),
  ];
}
