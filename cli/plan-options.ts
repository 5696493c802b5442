/**
 * The planning flags `spillway plan` and `spillway compare` share, and the plan request they describe
 * (validated: every bad value is an InputError naming its flag).
 */
import type { Argv } from "yargs";
import type { ClusterProfile } from "../core/cluster-profile.js";
import { EXPERT_BITS, type ExpertBits } from "../core/expert-policy.js";
import { type HardwareProfile, withCapacities } from "../core/hardware-profile.js";
import { InputError } from "../core/input-error.js";
import type { ModelSpec } from "../core/model-spec.js";
import {
  MAX_CAPACITY_BYTES,
  MAX_GENERATED_TOKENS,
  MAX_GPU_BATCH_SIZE,
  MAX_GPU_BATCHES,
  MAX_PROMPT_TOKENS,
} from "../core/physical-bounds.js";
import { COST_MODEL_NAMES } from "../core/plan.js";
import { resolveHardwareTarget } from "../core/resolve-cluster.js";
import { SCHEDULE_NAMES } from "../core/schedule-name.js";
import { GIB } from "../core/units.js";
import type { EngineKnobs } from "../engines/engine-model.js";
import { ENGINE_NAMES, type EngineName } from "../engines/engine-names.js";
import { GGUF_FILE_TYPES } from "../engines/llama-cpp/gguf-file-types.js";
import { MODEL_CATALOGUE } from "../models/catalogue.js";
import { resolveModel } from "../models/resolve-model.js";
import type { FixedExperts } from "../planner/moe/moe-search.js";
import { routingProfileFromTrace } from "../planner/moe/profile-from-trace.js";
import type { FixedPolicy, PlanRequest } from "../planner/plan.js";
import type { ArgsOf } from "./command-module.js";
import { parseNumberFlag, parsePercentFlag } from "./parse-flags.js";
import { readRouting } from "./routing-flag.js";

export function planOptions<T>(y: Argv<T>) {
  return y
    .option("model", {
      type: "string",
      default: "opt-175b",
      describe: "catalogue name or path of a Hugging Face config.json",
    })
    .option("hardware", { type: "string", default: "t4", describe: "profile name or path of a profile JSON file" })
    .option("prompt-len", { type: "string", default: "512", describe: "prompt tokens per sequence" })
    .option("gen-len", { type: "string", default: "32", describe: "generated tokens per sequence" })
    .option("cost-model", {
      choices: COST_MODEL_NAMES,
      default: "spillway" as const,
      describe: "spillway (roofline, exact placement) or flexgen (FlexGen's released LP)",
    })
    .option("schedule", {
      choices: SCHEDULE_NAMES,
      default: "spillway" as const,
      describe:
        "schedule Spillway's runtime follows: only true dependencies, or FlexGen's per-step sync (FlexGen itself: --engine flexgen)",
    })
    .option("engine", {
      choices: ENGINE_NAMES,
      default: "spillway" as const,
      describe: "the engine that will run the plan, whose model predicts it (spillway: Spillway's own runtime)",
    })
    .option("ngl", {
      type: "string",
      describe: "--engine llama.cpp: -ngl, layers on the GPU (default: the most that fit)",
    })
    .option("n-cpu-moe", {
      type: "string",
      describe: "--engine llama.cpp: --n-cpu-moe, the first N layers keep their routed experts on the CPU",
    })
    .option("gguf-type", {
      type: "string",
      describe: "--engine llama.cpp: the GGUF file type (Q2_K, Q4_K_M, Q8_0, F16, ...; default F16)",
    })
    .option("kv-offload", {
      type: "boolean",
      describe:
        "--engine llama.cpp: --no-kv-offload is llama.cpp's -nkvo, every layer's KV cache in host memory and attention on the CPU (default: offloaded with its layer)",
    })
    .option("ubatch-size", {
      type: "string",
      describe: "--engine llama.cpp: -ub, tokens of one prompt graph (sizes its compute buffers; default 512)",
    })
    .option("fewer-batch", {
      type: "boolean",
      describe:
        "--engine flexgen: FlexGen's benchmark protocol --debug-mode fewer_batch (decode projected from a few steps)",
    })
    .option("alpha", {
      type: "string",
      describe: "FlexGen's memory relaxation factor (flexgen cost model; default 0.8)",
    })
    .option("gpu-mem", { type: "string", describe: "GPU capacity in GiB (overrides the profile)" })
    .option("cpu-mem", { type: "string", describe: "CPU memory capacity in GiB" })
    .option("disk-mem", { type: "string", describe: "disk capacity in GiB" })
    .option("gbs", { type: "string", describe: "fix the GPU batch size" })
    .option("nb", { type: "string", describe: "fix the number of GPU batches per block" })
    .option("max-block", {
      type: "string",
      describe: "search only blocks of at most this many sequences (gbs x nb): the prompts you have (Spillway model)",
    })
    .option("percent", {
      type: "array",
      string: true,
      describe: "fix placement: wg wc cg cc hg hc (disk gets the rest)",
    })
    .option("compress-weight", { type: "boolean", describe: "4-bit weights (default: searched)" })
    .option("compress-cache", { type: "boolean", describe: "4-bit KV cache (default: searched)" })
    .option("cpu-attention", {
      type: "boolean",
      describe:
        "decode attention over off-GPU KV on the CPU (default: searched); MoE: the KV cache on the CPU with attention there, or (--no-cpu-attention) on the GPU",
    })
    .option("overlap", {
      type: "boolean",
      default: true,
      describe: "overlap I/O and compute (--no-overlap to turn off)",
    })
    .option("pin-weight", {
      type: "boolean",
      default: true,
      describe: "keep CPU weights in pinned memory (--no-pin-weight to turn off)",
    })
    .option("batch-size", { type: "string", describe: "MoE: fix the batch (1: latency mode; default: searched)" })
    .option("expert-cache", { type: "string", describe: "MoE: fix the expert slots per layer on the GPU" })
    .option("expert-bits", {
      type: "string",
      describe: "MoE: routed experts' precision, 16, 8, 4, 3 or 2 (default: searched over 16, 8, 4)",
    })
    .option("attention-bits", {
      type: "string",
      describe: "MoE: precision of attention, routers and shared experts, 16, 8, 4, 3 or 2",
    })
    .option("prefetch-experts", {
      type: "string",
      describe: "MoE: speculatively prefetch this many experts per layer (0: none)",
    })
    .option("prefetch-layers", { type: "string", describe: "MoE: ... this many layers ahead" })
    .option("expert-compute", {
      choices: ["gpu", "cpu", "auto"] as const,
      describe: "MoE: where missed experts compute (auto: CPU for few tokens)",
    })
    .option("expert-eviction", { choices: ["lru", "lfu", "static"] as const, describe: "MoE: expert-cache eviction" })
    .option("pregated", { type: "boolean", describe: "MoE: pre-gated routing (needs a model trained with pre-gates)" })
    .option("dense-experts", {
      type: "boolean",
      default: false,
      describe: "MoE: place experts like any tensor (FlexGen style) instead of caching them",
    })
    .option("routing", {
      type: "string",
      describe:
        "MoE: a routing trace whose statistics set the expected expert-cache hit rates (default: the model's synthetic trace)",
    })
    .option("json", { type: "boolean", default: false, describe: "print the plan as JSON" })
    .option("out", { type: "string", describe: "also write the plan JSON to this file" })
    .option("quiet", {
      type: "boolean",
      default: false,
      describe: "no progress and no text but errors (with --out; --json still prints)",
    });
}

export type PlanArgs = ArgsOf<ReturnType<typeof planOptions>>;

const EXPERT_FLAGS = [
  "batch-size",
  "expert-cache",
  "expert-bits",
  "attention-bits",
  "prefetch-experts",
  "prefetch-layers",
  "expert-compute",
  "expert-eviction",
  "pregated",
] as const;

/** The MoE policy flags as fixed parts of the search; undefined when none is given. */
function expertFlags(argv: PlanArgs, model: ModelSpec): FixedExperts | undefined {
  const given = EXPERT_FLAGS.filter((f) => argv[f] !== undefined);
  // An MoE plan's KV cache is on the GPU, or on the CPU with attention there: --[no-]cpu-attention fixes which.
  const kv =
    model.moe && !argv["dense-experts"] && argv["cpu-attention"] !== undefined
      ? { cacheOnCpu: argv["cpu-attention"] }
      : {};
  if (given.length === 0) return model.moe && "cacheOnCpu" in kv ? kv : undefined;
  if (!model.moe)
    throw new InputError(
      `--${given[0]}`,
      undefined,
      `${model.name} is not a Mixture-of-Experts model; the expert flags apply to MoE models (${MODEL_CATALOGUE.filter(
        (m) => m.moe,
      )
        .map((m) => m.name)
        .join(", ")})`,
    );
  if (argv["dense-experts"])
    throw new InputError(
      `--${given[0]}`,
      undefined,
      "conflicts with --dense-experts, which places experts like any tensor",
    );
  const E = model.moe.numExperts;
  const bits = (flag: "expert-bits" | "attention-bits") => {
    const v = parseNumberFlag(flag, argv[flag], { integer: true });
    if (v !== undefined && !(EXPERT_BITS as readonly number[]).includes(v))
      throw new InputError(`--${flag}`, undefined, `expected one of ${EXPERT_BITS.join(", ")}, got ${v}`);
    return v as ExpertBits | undefined;
  };
  const fixedExperts: FixedExperts = {
    batchSize: atMost(
      "batch-size",
      parseNumberFlag("batch-size", argv["batch-size"], { min: 1, integer: true }),
      MAX_GPU_BATCH_SIZE,
    ),
    cacheSize: parseNumberFlag("expert-cache", argv["expert-cache"], { min: 0, max: E, integer: true }),
    bits: bits("expert-bits"),
    attentionBits: bits("attention-bits"),
    prefetchExperts: parseNumberFlag("prefetch-experts", argv["prefetch-experts"], { min: 0, max: E, integer: true }),
    prefetchLayers: parseNumberFlag("prefetch-layers", argv["prefetch-layers"], {
      min: 1,
      max: model.numLayers - 1,
      integer: true,
    }),
    compute: argv["expert-compute"],
    eviction: argv["expert-eviction"],
    pregated: argv.pregated,
  };
  if (fixedExperts.pregated && (fixedExperts.prefetchExperts ?? 0) > 0)
    throw new InputError(
      "--pregated",
      undefined,
      "pre-gated routing already prefetches the exact experts: drop --prefetch-experts",
    );
  return {
    ...(Object.fromEntries(Object.entries(fixedExperts).filter(([, v]) => v !== undefined)) as FixedExperts),
    ...kv,
  };
}

/** `value` (already parsed) within the physically meaningful maximum (core/physical-bounds.ts), else an InputError naming the flag. */
function atMost(flag: string, value: number | undefined, max: number, unit?: string): number | undefined {
  if (value !== undefined && value > max)
    throw new InputError(`--${flag}`, undefined, `expected at most ${max}${unit ? ` ${unit}` : ""}, got ${value}`);
  return value;
}

/**
 * The plan request the flags describe, with the profile it plans for (capacities overridden by the
 * flags). With `clusters`, --hardware may name a cluster: `cluster` is then set (with the capacities
 * overridden for each of its GPUs) and `hardware` is one of its GPUs; otherwise a cluster is refused.
 */
export function planRequestFromArgs(
  argv: PlanArgs,
  clusters = false,
): { request: PlanRequest; hardware: HardwareProfile; cluster?: ClusterProfile } {
  const model = resolveModel(argv.model);
  const gpu = atMost(
    "gpu-mem",
    parseNumberFlag("gpu-mem", argv["gpu-mem"], { min: 0, unit: "GiB" }),
    MAX_CAPACITY_BYTES.gpu / GIB,
    "GiB",
  );
  const cpu = atMost(
    "cpu-mem",
    parseNumberFlag("cpu-mem", argv["cpu-mem"], { min: 0, unit: "GiB" }),
    MAX_CAPACITY_BYTES.cpu / GIB,
    "GiB",
  );
  const disk = atMost(
    "disk-mem",
    parseNumberFlag("disk-mem", argv["disk-mem"], { min: 0, unit: "GiB" }),
    MAX_CAPACITY_BYTES.disk / GIB,
    "GiB",
  );
  const target = resolveHardwareTarget(argv.hardware);
  if (target.kind === "cluster" && !clusters)
    throw new InputError(
      "--hardware",
      undefined,
      `${target.cluster.name} is a cluster profile; only spillway plan takes clusters (give one GPU's profile here)`,
    );
  const hardware = withCapacities(target.profile, {
    ...(gpu !== undefined ? { gpu: gpu * GIB } : {}),
    ...(cpu !== undefined ? { cpu: cpu * GIB } : {}),
    ...(disk !== undefined ? { disk: disk * GIB } : {}),
  });
  const cluster = target.kind === "cluster" ? { ...target.cluster, perGpu: hardware } : undefined;
  const promptLen = atMost(
    "prompt-len",
    parseNumberFlag("prompt-len", argv["prompt-len"], { min: 1, integer: true }),
    MAX_PROMPT_TOKENS,
  )!;
  const genLen = atMost(
    "gen-len",
    parseNumberFlag("gen-len", argv["gen-len"], { min: 1, integer: true }),
    MAX_GENERATED_TOKENS,
  )!;
  if (promptLen + genLen > model.maxPositions) {
    throw new InputError(
      "--prompt-len",
      undefined,
      `prompt ${promptLen} + generated ${genLen} tokens exceed ${model.name}'s ${model.maxPositions} positions`,
    );
  }
  const alpha = parseNumberFlag("alpha", argv.alpha, { greaterThan: 0, max: 10 });
  const gbs = atMost("gbs", parseNumberFlag("gbs", argv.gbs, { min: 1, integer: true }), MAX_GPU_BATCH_SIZE);
  const nb = atMost("nb", parseNumberFlag("nb", argv.nb, { min: 1, integer: true }), MAX_GPU_BATCHES);
  const percent = parsePercentFlag(argv.percent);
  const maxBlock = parseNumberFlag("max-block", argv["max-block"], { min: 1, integer: true });
  const fixed: FixedPolicy = {
    ...(gbs !== undefined ? { gbs } : {}),
    ...(nb !== undefined ? { nb } : {}),
    ...(percent ? { percent } : {}),
    ...(argv["compress-weight"] !== undefined ? { compressWeight: argv["compress-weight"] } : {}),
    ...(argv["compress-cache"] !== undefined ? { compressCache: argv["compress-cache"] } : {}),
    ...(argv["cpu-attention"] !== undefined ? { cpuAttention: argv["cpu-attention"] } : {}),
    ...(argv.overlap === false ? { overlap: false } : {}),
    ...(argv["pin-weight"] === false ? { pinWeight: false } : {}),
  };
  if (argv["cost-model"] === "flexgen" && model.family !== "opt")
    throw new InputError(
      "--cost-model",
      undefined,
      `FlexGen's cost model covers OPT models only; ${model.name} is a ${model.family} model (use --cost-model spillway)`,
    );
  if (argv["cost-model"] === "flexgen" && argv["compress-cache"]) {
    throw new InputError(
      "--compress-cache",
      undefined,
      "FlexGen's cost model does not model KV compression; use --cost-model spillway",
    );
  }
  const experts = expertFlags(argv, model);
  const routing = argv.routing ? readRouting(argv.routing, model) : undefined;
  const request: PlanRequest = {
    model,
    hardware,
    workload: { promptLen, genLen },
    costModel: argv["cost-model"],
    schedule: argv.schedule,
    ...(alpha !== undefined ? { alpha } : {}),
    ...(maxBlock !== undefined ? { maxBlock } : {}),
    fixed,
    ...(argv["dense-experts"] ? { moe: "dense" as const } : {}),
    ...(experts ? { experts } : {}),
    ...(routing ? { routing: routingProfileFromTrace(routing.trace, routing.source) } : {}),
  };
  return { request, hardware, ...(cluster ? { cluster } : {}) };
}

const KNOB_ENGINES = {
  ngl: "llama.cpp",
  "n-cpu-moe": "llama.cpp",
  "gguf-type": "llama.cpp",
  "kv-offload": "llama.cpp",
  "ubatch-size": "llama.cpp",
  "fewer-batch": "flexgen",
} as const satisfies Record<string, EngineName>;

/** `--engine` and the engine's own settings (`--ngl`, `--n-cpu-moe`, `--gguf-type`, `--no-kv-offload`, `--ubatch-size`, `--fewer-batch`), validated. */
export function engineFromArgs(argv: PlanArgs, model: ModelSpec): { engine: EngineName; knobs: EngineKnobs } {
  const engine = argv.engine;
  for (const [flag, owner] of Object.entries(KNOB_ENGINES))
    if (argv[flag as keyof typeof KNOB_ENGINES] !== undefined && engine !== owner)
      throw new InputError(
        flag === "kv-offload" ? `--${argv["kv-offload"] === false ? "no-" : ""}kv-offload` : `--${flag}`,
        undefined,
        `is a setting of --engine ${owner} (the engine here is ${engine})`,
      );
  if (engine !== "spillway" && argv["cost-model"] !== "spillway")
    throw new InputError(
      "--engine",
      undefined,
      `${engine} is scored on the policy Spillway's cost model picks; drop --cost-model ${argv["cost-model"]}`,
    );
  const ggufRaw = argv["gguf-type"];
  if (Array.isArray(ggufRaw)) throw new InputError("--gguf-type", undefined, "given more than once");
  const ggufType =
    ggufRaw === undefined ? undefined : GGUF_FILE_TYPES.find((t) => t === String(ggufRaw).trim().toUpperCase());
  if (ggufRaw !== undefined && !ggufType)
    throw new InputError(
      "--gguf-type",
      undefined,
      `expected one of ${GGUF_FILE_TYPES.join(", ")}, got ${JSON.stringify(String(ggufRaw))}`,
    );
  const nGpuLayers = parseNumberFlag("ngl", argv.ngl, { min: 0, max: model.numLayers + 1, integer: true });
  const nCpuMoe = parseNumberFlag("n-cpu-moe", argv["n-cpu-moe"], { min: 0, max: model.numLayers, integer: true });
  const ubatchTokens = parseNumberFlag("ubatch-size", argv["ubatch-size"], { min: 1, integer: true });
  if (nCpuMoe !== undefined && nCpuMoe > 0 && !model.moe)
    throw new InputError(
      "--n-cpu-moe",
      undefined,
      `${model.name} is dense: it has no routed experts to keep on the CPU`,
    );
  const knobs: EngineKnobs = {
    ...(nGpuLayers !== undefined ? { nGpuLayers } : {}),
    ...(nCpuMoe !== undefined ? { nCpuMoe } : {}),
    ...(ggufType ? { ggufType } : {}),
    ...(argv["kv-offload"] === false ? { noKvOffload: true } : {}),
    ...(ubatchTokens !== undefined ? { ubatchTokens } : {}),
    ...(argv["fewer-batch"] !== undefined ? { fewerBatch: argv["fewer-batch"] } : {}),
  };
  return { engine, knobs };
}
