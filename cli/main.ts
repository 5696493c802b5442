#!/usr/bin/env node
/**
 * The `spillway` command line: a thin shell over the library. Exit codes: 0 ok, 1 failure (e.g. no
 * policy fits), 2 bad input (flags, files).
 */
import yargs, { type Argv } from "yargs";
import { hideBin } from "yargs/helpers";
import { InputError } from "../core/input-error.js";
import { parseHardwareProfile, withCapacities } from "../core/hardware-profile.js";
import { resolveHardware } from "../core/resolve-hardware.js";
import { writeFileAtomic } from "../core/write-file-atomic.js";
import { GIB } from "../core/units.js";
import { resolveModel } from "../models/resolve-model.js";
import { plan, PlanError, type FixedPolicy, type Plan } from "../planner/plan.js";
import type { FixedExperts } from "../planner/moe/moe-search.js";
import { EXPERT_BITS, type ExpertBits } from "../core/expert-policy.js";
import type { ModelSpec } from "../core/model-spec.js";
import { MODEL_CATALOGUE } from "../models/catalogue.js";
import type { HardwareProfile } from "../core/hardware-profile.js";
import { formatPlan } from "./format-plan.js";
import { formatRun, formatSimulation } from "./format-simulation.js";
import { compareRuns, formatComparison } from "./compare.js";
import { baselines } from "../planner/baselines.js";
import { baselineJson, formatBaselines } from "./format-baselines.js";
import { runSynthWeights } from "./synth-weights-command.js";
import { type ReportArgs, runReport } from "./report-command.js";
import { registerTraceCommand } from "./trace-command.js";
import { registerDevicesCommand } from "./devices-command.js";
import { registerExportCommand } from "./export-command.js";
import { formatMoeSimulation } from "./format-moe-simulation.js";
import { simulateMoe } from "../simulator/simulate-moe.js";
import { metaFromModel, readRoutingTrace } from "../routing/read-routing-trace.js";
import type { RoutingTrace } from "../routing/routing-trace.js";
import { routingProfileFromTrace } from "../planner/moe/profile-from-trace.js";
import { requireCuda, run } from "../runtime/run.js";
import { defaultCapacities, measureCpuBackend, profileFromSamples, samplesFromCsv, samplesToCsv } from "../runtime/profile-cpu.js";
import { Presets, SingleBar } from "cli-progress";
import { cudaProfileFromSamples, measureCudaBackend } from "../runtime/cuda/profile-cuda.js";
import { readFileSync } from "node:fs";
import { readPlanFile } from "../simulator/read-plan.js";
import { simulate } from "../simulator/simulate.js";
import { formatBytes } from "../core/units.js";
import { listHardware, listModels } from "./list-commands.js";
import { parseNumberFlag, parsePercentFlag } from "./parse-flags.js";
import { EXIT_CODES_EPILOG, fancyProgress } from "./terminal.js";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_BAD_INPUT = 2;

class UsageError extends Error {}

function planOptions(y: Argv) {
  return y
    .option("model", { type: "string", default: "opt-175b", describe: "catalogue name or path of a Hugging Face config.json" })
    .option("hardware", { type: "string", default: "t4", describe: "profile name or path of a profile JSON file" })
    .option("prompt-len", { type: "string", default: "512", describe: "prompt tokens per sequence" })
    .option("gen-len", { type: "string", default: "32", describe: "generated tokens per sequence" })
    .option("cost-model", { choices: ["spillway", "flexgen"] as const, default: "spillway" as const, describe: "spillway (roofline, exact placement) or flexgen (FlexGen's released LP)" })
    .option("schedule", { choices: ["spillway", "flexgen"] as const, default: "spillway" as const, describe: "schedule the Spillway model costs: only true dependencies, or FlexGen's per-step sync" })
    .option("alpha", { type: "string", describe: "FlexGen's memory relaxation factor (flexgen cost model; default 0.8)" })
    .option("gpu-mem", { type: "string", describe: "GPU capacity in GiB (overrides the profile)" })
    .option("cpu-mem", { type: "string", describe: "CPU memory capacity in GiB" })
    .option("disk-mem", { type: "string", describe: "disk capacity in GiB" })
    .option("gbs", { type: "string", describe: "fix the GPU batch size" })
    .option("nb", { type: "string", describe: "fix the number of GPU batches per block" })
    .option("max-block", { type: "string", describe: "search only blocks of at most this many sequences (gbs x nb): the prompts you have (Spillway model)" })
    .option("percent", { type: "array", string: true, describe: "fix placement: wg wc cg cc hg hc (disk gets the rest)" })
    .option("compress-weight", { type: "boolean", describe: "4-bit weights (default: searched)" })
    .option("compress-cache", { type: "boolean", describe: "4-bit KV cache (default: searched)" })
    .option("cpu-attention", { type: "boolean", describe: "decode attention over off-GPU KV on the CPU (default: searched)" })
    .option("overlap", { type: "boolean", default: true, describe: "overlap I/O and compute (--no-overlap to turn off)" })
    .option("pin-weight", { type: "boolean", default: true, describe: "keep CPU weights in pinned memory (--no-pin-weight to turn off)" })
    .option("batch-size", { type: "string", describe: "MoE: fix the batch (1: latency mode; default: searched)" })
    .option("expert-cache", { type: "string", describe: "MoE: fix the expert slots per layer on the GPU" })
    .option("expert-bits", { type: "string", describe: "MoE: routed experts' precision, 16, 8, 4, 3 or 2 (default: searched over 16, 8, 4)" })
    .option("attention-bits", { type: "string", describe: "MoE: precision of attention, routers and shared experts, 16, 8, 4, 3 or 2" })
    .option("prefetch-experts", { type: "string", describe: "MoE: speculatively prefetch this many experts per layer (0: none)" })
    .option("prefetch-layers", { type: "string", describe: "MoE: ... this many layers ahead" })
    .option("expert-compute", { choices: ["gpu", "cpu", "auto"] as const, describe: "MoE: where missed experts compute (auto: CPU for few tokens)" })
    .option("expert-eviction", { choices: ["lru", "lfu", "static"] as const, describe: "MoE: expert-cache eviction" })
    .option("pregated", { type: "boolean", describe: "MoE: pre-gated routing (needs a model trained with pre-gates)" })
    .option("dense-experts", { type: "boolean", default: false, describe: "MoE: place experts like any tensor (FlexGen style) instead of caching them" })
    .option("routing", { type: "string", describe: "MoE: a routing trace whose statistics set the expected expert-cache hit rates (default: the model's synthetic trace)" })
    .option("json", { type: "boolean", default: false, describe: "print the plan as JSON" })
    .option("out", { type: "string", describe: "also write the plan JSON to this file" })
    .option("quiet", { type: "boolean", default: false, describe: "print no text but errors (with --out; --json still prints)" });
}

type PlanArgs = Awaited<ReturnType<ReturnType<typeof planOptions>["parseAsync"]>>;

const EXPERT_FLAGS = ["batch-size", "expert-cache", "expert-bits", "attention-bits", "prefetch-experts", "prefetch-layers", "expert-compute", "expert-eviction", "pregated"] as const;

/** The MoE policy flags as fixed parts of the search; undefined when none is given. */
function expertFlags(argv: PlanArgs, model: ModelSpec): FixedExperts | undefined {
  const given = EXPERT_FLAGS.filter((f) => argv[f] !== undefined);
  if (given.length === 0) return undefined;
  if (!model.moe) throw new InputError(`--${given[0]}`, undefined, `${model.name} is not a Mixture-of-Experts model; the expert flags apply to MoE models (${MODEL_CATALOGUE.filter((m) => m.moe).map((m) => m.name).join(", ")})`);
  if (argv["dense-experts"]) throw new InputError(`--${given[0]}`, undefined, "conflicts with --dense-experts, which places experts like any tensor");
  const E = model.moe.numExperts;
  const bits = (flag: "expert-bits" | "attention-bits") => {
    const v = parseNumberFlag(flag, argv[flag], { integer: true });
    if (v !== undefined && !(EXPERT_BITS as readonly number[]).includes(v)) throw new InputError(`--${flag}`, undefined, `expected one of ${EXPERT_BITS.join(", ")}, got ${v}`);
    return v as ExpertBits | undefined;
  };
  const fixedExperts: FixedExperts = {
    batchSize: parseNumberFlag("batch-size", argv["batch-size"], { min: 1, integer: true }),
    cacheSize: parseNumberFlag("expert-cache", argv["expert-cache"], { min: 0, max: E, integer: true }),
    bits: bits("expert-bits"),
    attentionBits: bits("attention-bits"),
    prefetchExperts: parseNumberFlag("prefetch-experts", argv["prefetch-experts"], { min: 0, max: E, integer: true }),
    prefetchLayers: parseNumberFlag("prefetch-layers", argv["prefetch-layers"], { min: 1, max: model.numLayers - 1, integer: true }),
    compute: argv["expert-compute"],
    eviction: argv["expert-eviction"],
    pregated: argv.pregated,
  };
  if (fixedExperts.pregated && (fixedExperts.prefetchExperts ?? 0) > 0) throw new InputError("--pregated", undefined, "pre-gated routing already prefetches the exact experts: drop --prefetch-experts");
  return Object.fromEntries(Object.entries(fixedExperts).filter(([, v]) => v !== undefined)) as FixedExperts;
}

async function planFromArgs(argv: PlanArgs): Promise<{ result: Plan; hardware: HardwareProfile }> {
  const model = resolveModel(argv.model);
  const gpu = parseNumberFlag("gpu-mem", argv["gpu-mem"], { min: 0, unit: "GiB" });
  const cpu = parseNumberFlag("cpu-mem", argv["cpu-mem"], { min: 0, unit: "GiB" });
  const disk = parseNumberFlag("disk-mem", argv["disk-mem"], { min: 0, unit: "GiB" });
  const hardware = withCapacities(resolveHardware(argv.hardware), {
    ...(gpu !== undefined ? { gpu: gpu * GIB } : {}),
    ...(cpu !== undefined ? { cpu: cpu * GIB } : {}),
    ...(disk !== undefined ? { disk: disk * GIB } : {}),
  });
  const promptLen = parseNumberFlag("prompt-len", argv["prompt-len"], { min: 1, integer: true })!;
  const genLen = parseNumberFlag("gen-len", argv["gen-len"], { min: 1, integer: true })!;
  if (promptLen + genLen > model.maxPositions) {
    throw new InputError("--prompt-len", undefined, `prompt ${promptLen} + generated ${genLen} tokens exceed ${model.name}'s ${model.maxPositions} positions`);
  }
  const alpha = parseNumberFlag("alpha", argv.alpha, { greaterThan: 0, max: 10 });
  const gbs = parseNumberFlag("gbs", argv.gbs, { min: 1, integer: true });
  const nb = parseNumberFlag("nb", argv.nb, { min: 1, integer: true });
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
  if (argv["cost-model"] === "flexgen" && argv["compress-cache"]) {
    throw new InputError("--compress-cache", undefined, "FlexGen's cost model does not model KV compression; use --cost-model spillway");
  }
  const experts = expertFlags(argv, model);
  const routing = argv.routing ? readRouting(argv.routing, model) : undefined;
  const result = await plan({
    model, hardware, workload: { promptLen, genLen }, costModel: argv["cost-model"], schedule: argv.schedule,
    ...(alpha !== undefined ? { alpha } : {}), ...(maxBlock !== undefined ? { maxBlock } : {}), fixed,
    ...(argv["dense-experts"] ? { moe: "dense" as const } : {}), ...(experts ? { experts } : {}),
    ...(routing ? { routing: routingProfileFromTrace(routing.trace, routing.source) } : {}),
  });
  return { result: { ...result, hardwareSource: argv.hardware === "-" ? hardware.name : argv.hardware }, hardware };
}

async function runPlan(argv: PlanArgs & { compare?: boolean }): Promise<void> {
  const { result, hardware } = await planFromArgs(argv);
  const compared = argv.compare ? await baselines({ model: result.modelSpec, hardware, workload: result.workload, schedule: result.schedule }) : undefined;
  const output = compared ? { ...result, baselines: compared.map(baselineJson) } : result;
  const json = JSON.stringify(output, null, 2);
  if (argv.out) writeFileAtomic(argv.out, json + "\n");
  if (argv.json) process.stdout.write(json + "\n");
  else if (!argv.quiet) process.stdout.write(formatPlan(result) + (compared ? "\n\n" + formatBaselines(result, compared) : "") + "\n");
}

/** A plan file with the profile it was made for (or --hardware) and the capacities it was planned against. */
function loadPlanTarget(path: string, hardwareFlag: string | undefined) {
  const planFile = readPlanFile(path);
  const profile = resolveHardware(hardwareFlag ?? planFile.hardwareSource ?? planFile.hardware);
  const capacityBytes = planFile.predicted.capacityBytes;
  return { planFile, profile, capacityBytes };
}

interface SimulateArgs { plan: string; hardware?: string; schedule?: "spillway" | "flexgen"; trace?: string; timeline: boolean; json: boolean; quiet: boolean; routing?: string }

/** A routing trace file (CSV or Megatron JSONL) checked against the model. */
function readRouting(path: string, model: ModelSpec): { trace: RoutingTrace; source: string } {
  if (!model.moe) throw new InputError("--routing", undefined, `${model.name} is not a Mixture-of-Experts model; routing traces apply to MoE plans`);
  const trace = readRoutingTrace(path, { given: metaFromModel(model) });
  const m = trace.meta;
  if (m.numLayers !== model.numLayers || m.numExperts !== model.moe.numExperts || m.expertsPerToken !== model.moe.expertsPerToken) {
    throw new InputError(path, undefined, `the trace has ${m.numLayers} layers of ${m.numExperts} experts (top-${m.expertsPerToken}); ${model.name} has ${model.numLayers} of ${model.moe.numExperts} (top-${model.moe.expertsPerToken})`);
  }
  return { trace, source: path };
}

function runSimulate(argv: SimulateArgs): void {
  const { planFile, profile, capacityBytes } = loadPlanTarget(argv.plan, argv.hardware);
  if (planFile.policy.experts) {
    if (argv.trace || argv.timeline) throw new InputError(argv.trace ? "--trace" : "--timeline", undefined, "MoE plans are replayed layer by layer on a routing trace; stream traces and timelines are for dense plans");
    const result = simulateMoe(planFile, profile, argv.routing ? readRouting(argv.routing, planFile.modelSpec) : undefined);
    if (argv.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
    else if (!argv.quiet) process.stdout.write(formatMoeSimulation(result) + "\n");
    return;
  }
  if (argv.routing) throw new InputError("--routing", undefined, "this plan has no expert policy (policy.experts): routing traces apply to MoE plans");
  const result = simulate(planFile, profile, {
    schedule: argv.schedule ?? planFile.schedule ?? "spillway",
    capacityBytes,
    ...(argv.trace ? { tracePath: argv.trace } : {}),
    timeline: argv.timeline,
  });
  if (argv.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
  else if (!argv.quiet) process.stdout.write(formatSimulation(result) + "\n" + (result.timeline ? `\n${result.timeline}\n` : ""));
  if (result.overflow) {
    const o = result.overflow;
    throw new PlanError(`the plan does not fit: ${o.tier} memory overflows at ${o.seconds.toFixed(3)} s while allocating ${o.what} (${formatBytes(o.inUseBytes)} in use, capacity ${formatBytes(o.capacityBytes)})`);
  }
}

interface RunArgs { plan: string; weights: string; backend: "cpu" | "cuda"; hardware?: string; schedule?: "spillway" | "flexgen"; trace?: string; "offload-dir"?: string; reference: boolean; json: boolean; quiet: boolean }

async function runRun(argv: RunArgs): Promise<void> {
  const { planFile, profile, capacityBytes } = loadPlanTarget(argv.plan, argv.hardware);
  const over = (["gpu", "cpu", "disk"] as const).filter((t) => planFile.predicted.peakBytes[t] > planFile.predicted.capacityBytes[t]);
  if (over.length) throw new PlanError(`the plan does not fit (${over.join(", ")} over capacity): the runtime refuses it`);
  const result = await run(planFile, profile, {
    weightsDir: argv.weights, schedule: argv.schedule ?? planFile.schedule ?? "spillway", capacityBytes,
    ...(argv.trace ? { tracePath: argv.trace } : {}),
    ...(argv["offload-dir"] ? { offloadDir: argv["offload-dir"] } : {}),
    reference: argv.reference,
    backend: argv.backend,
  });
  if (argv.json) process.stdout.write(JSON.stringify({ ...result, referenceTokens: undefined }, null, 2) + "\n");
  else if (!argv.quiet) process.stdout.write(formatRun(result) + "\n");
  if (result.matchesReference === false) throw new PlanError("the generated tokens differ from the all-on-device reference");
}

async function runCompare(argv: PlanArgs & { weights: string; backend: "cpu" | "cuda"; "offload-dir"?: string }): Promise<void> {
  const { result: planned, hardware } = await planFromArgs(argv);
  if (!planned.predicted.feasible) throw new PlanError(`the policy does not fit: ${planned.predicted.infeasibleReasons.join("; ")}`);
  const capacityBytes = planned.predicted.capacityBytes;
  const simulated = simulate(planned, hardware, { schedule: planned.schedule, capacityBytes });
  const measured = await run(planned, hardware, { weightsDir: argv.weights, schedule: planned.schedule, capacityBytes, backend: argv.backend, ...(argv["offload-dir"] ? { offloadDir: argv["offload-dir"] } : {}) });
  const comparison = compareRuns(planned, simulated, measured);
  if (argv.json) process.stdout.write(JSON.stringify(comparison, null, 2) + "\n");
  else if (!argv.quiet) process.stdout.write(formatComparison(comparison) + "\n");
  if (measured.matchesReference === false) throw new PlanError("the generated tokens differ from the all-on-device reference");
}

interface ProfileArgs { backend: "cpu" | "cuda"; quick: boolean; out: string; "gpu-mem"?: string; "from-samples"?: string; "offload-dir"?: string; quiet: boolean; json: boolean }

function readSamplesFile(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new InputError(path, undefined, (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message);
  }
}

function runProfile(argv: ProfileArgs): void {
  const fromSamplesText = argv["from-samples"] ? readSamplesFile(argv["from-samples"]) : undefined;
  const samplesGiven = fromSamplesText ? samplesFromCsv(fromSamplesText, argv["from-samples"]!) : undefined;
  const cuda = argv.backend === "cuda" || Boolean(samplesGiven?.some((x) => x.measurement === "deviceCopy"));
  const native = cuda && !samplesGiven ? requireCuda() : undefined;
  const deviceName = native ? (native.setDevice(0), native.deviceProperties(0).name) : samplesGiven?.find((x) => x.measurement === "device")?.shape ?? "CUDA device";
  const gpuFlag = parseNumberFlag("gpu-mem", argv["gpu-mem"], { greaterThan: 0, unit: "GiB" });
  const gpuBytes = gpuFlag !== undefined ? gpuFlag * GIB : native ? native.memGetInfo().freeBytes : GIB;
  const capacity = defaultCapacities(gpuBytes, argv["offload-dir"]);
  let samples;
  if (samplesGiven) samples = samplesGiven;
  else {
    const bar = !argv.quiet && fancyProgress(process.stderr) ? new SingleBar({ format: "profiling [{bar}] {value}/{total} {what}", stream: process.stderr }, Presets.shades_classic) : undefined;
    bar?.start(1, 0, { what: "" });
    const onProgress = (done: number, total: number, what: string) => {
      if (bar) { bar.setTotal(total); bar.update(done, { what }); }
      else if (!argv.quiet) process.stderr.write(`profiling ${done}/${total}: ${what}\n`);
    };
    const offload = argv["offload-dir"] ? { offloadDir: argv["offload-dir"] } : {};
    samples = native
      ? [{ measurement: "device", size: 1, shape: deviceName.replace(/[,\n]/g, " "), seconds: 1 }, ...measureCudaBackend(native, { quick: argv.quick, ...offload, onProgress })]
      : measureCpuBackend({ quick: argv.quick, gpuBytes, ...offload, onProgress });
    bar?.stop();
  }
  const profile = cuda ? cudaProfileFromSamples(samples, capacity, deviceName) : profileFromSamples(samples, capacity);
  parseHardwareProfile(JSON.parse(JSON.stringify(profile)), "measured profile");
  writeFileAtomic(argv.out, JSON.stringify(profile, null, 2) + "\n");
  const csvPath = argv.out.replace(/\.json$/, "") + ".csv";
  if (!argv["from-samples"]) writeFileAtomic(csvPath, samplesToCsv(samples));
  if (argv.json) {
    process.stdout.write(JSON.stringify({
      profile: argv.out, ...(argv["from-samples"] ? { fromSamples: argv["from-samples"] } : { samples: csvPath }), sampleCount: samples.length,
      name: profile.name, gpuBytes: profile.capacityBytes.gpu.value, cpuBytes: profile.capacityBytes.cpu.value, diskBytes: profile.capacityBytes.disk.value,
    }, null, 2) + "\n");
  } else if (!argv.quiet) process.stdout.write(`Wrote ${argv.out}${argv["from-samples"] ? "" : ` and ${csvPath} (${samples.length} samples)`}\n`);
}

function listOptions(y: Argv) {
  return y.option("json", { type: "boolean", default: false, describe: "print the list as JSON" })
    .option("quiet", { type: "boolean", default: false, describe: "print nothing but errors (--json still prints)" })
    .epilog(EXIT_CODES_EPILOG);
}

export function buildCli(args: string[]): Argv {
  const cli = yargs(args)
    .scriptName("spillway")
    .usage("$0 <command> [options]\n\nPlan, simulate and run large language models on GPUs too small for them.")
    .command("plan", "choose (or score) an offloading policy and predict its throughput", (y) =>
      planOptions(y)
        .option("compare", { type: "boolean", default: false, describe: "also score the baselines users would otherwise pick (accelerate, deepspeed-zero, llama.cpp, flexgen) with the same cost model" })
        .epilog(EXIT_CODES_EPILOG)
        .example("$0 plan", "OPT-175B on a T4 with the Spillway cost model")
        .example("$0 plan --compare", "beside ZeRO-Inference's and FlexGen's choices")
        .example("$0 plan --model opt-30b --cost-model flexgen --json", "FlexGen's own LP search")
        .example("$0 plan --gbs 32 --nb 8 --percent 0 50 0 0 0 100 --cpu-attention", "score a given policy")
        .example("$0 plan --model path/to/config.json --hardware rtx3090 --out plan.json", "a Hugging Face model on another GPU"),
    (argv) => runPlan(argv as unknown as PlanArgs))
    .command("simulate <plan>", "replay a plan's schedule stream by stream and check the planner's predictions", (y) =>
      y.positional("plan", { type: "string", describe: "a plan JSON file (spillway plan --out), or - for standard input" })
        .option("hardware", { type: "string", describe: "profile name or path (default: the plan's)" })
        .option("schedule", { choices: ["spillway", "flexgen"] as const, describe: "schedule semantics (default: the plan's)" })
        .option("trace", { type: "string", describe: "write a Chrome Trace Event file (Perfetto, chrome://tracing)" })
        .option("timeline", { type: "boolean", default: false, describe: "print a text timeline of one layer (the middle one, first decode step)" })
        .option("json", { type: "boolean", default: false, describe: "print the result as JSON (schemas/simulation.schema.json for dense plans)" })
        .option("quiet", { type: "boolean", default: false, describe: "print no text but errors (--json still prints)" })
        .option("routing", { type: "string", describe: "MoE plans: a routing trace (CSV from trace synth, or Megatron JSONL) to replay; default: the model's synthetic trace" })
        .epilog(EXIT_CODES_EPILOG)
        .example("$0 plan --out p.json && $0 simulate p.json --trace t.json", "simulate the default plan and write a trace")
        .example("$0 plan --model mixtral-8x7b --batch-size 1 --out m.json && $0 trace synth --model mixtral-8x7b --tokens 500 --out r.csv && $0 simulate m.json --routing r.csv --json", "replay an MoE plan's expert caches on a routing trace")
        .example("$0 simulate p.json --schedule flexgen --json", "the same plan under FlexGen's per-step sync"),
    (argv) => runSimulate(argv as unknown as SimulateArgs))
    .command("run <plan>", "execute a plan for real (CPU backend, or a GPU with --backend cuda) and compare measured with predicted", (y) =>
      y.positional("plan", { type: "string", describe: "a plan JSON file (spillway plan --out), or - for standard input" })
        .option("weights", { type: "string", demandOption: true, describe: "folder with config.json and safetensors weights (spillway synth-weights makes one)" })
        .option("backend", { choices: ["cpu", "cuda"] as const, default: "cpu" as const, describe: "where to compute: the CPU backend, or a GPU through the CUDA addon (npm run build:cuda)" })
        .option("hardware", { type: "string", describe: "profile name or path (default: the plan's)" })
        .option("schedule", { choices: ["spillway", "flexgen"] as const, describe: "schedule semantics (default: the plan's)" })
        .option("trace", { type: "string", describe: "write a Chrome Trace Event file of the measured run" })
        .option("offload-dir", { type: "string", describe: "parent folder for the disk tier's offload files (default: the OS temp folder)" })
        .option("reference", { type: "boolean", default: true, describe: "also run the all-on-device reference and compare tokens (--no-reference to skip)" })
        .option("json", { type: "boolean", default: false, describe: "print the result as JSON" })
        .option("quiet", { type: "boolean", default: false, describe: "print no text but errors (--json still prints)" })
        .epilog(EXIT_CODES_EPILOG)
        .example("$0 synth-weights --model opt-125m --out w && $0 plan --model w --gpu-mem 0.05 --out p.json && $0 run p.json --weights w", "run a plan on synthetic OPT-125M weights"),
    (argv) => runRun(argv as unknown as RunArgs))
    .command("compare", "plan, simulate and run side by side: predicted against measured", (y) =>
      planOptions(y)
        .option("weights", { type: "string", demandOption: true, describe: "folder with config.json and safetensors weights" })
        .option("backend", { choices: ["cpu", "cuda"] as const, default: "cpu" as const, describe: "where to run: the CPU backend, or a GPU through the CUDA addon" })
        .option("offload-dir", { type: "string", describe: "parent folder for offload files" })
        .epilog(EXIT_CODES_EPILOG)
        .example("$0 compare --model w --weights w --hardware cpu.json --prompt-len 32 --gen-len 8 --gpu-mem 0.05 --gbs 4 --nb 2 --percent 0 100 0 100 100 0", "weights on the host"),
    (argv) => runCompare(argv as unknown as PlanArgs & { weights: string; backend: "cpu" | "cuda"; "offload-dir"?: string }))
    .command("profile", "measure this machine for a backend and write a hardware profile (JSON) and its raw samples (CSV)", (y) =>
      y.option("backend", { choices: ["cpu", "cuda"] as const, default: "cpu" as const, describe: "the backend to measure (cuda: needs `npm run build:cuda` and a GPU)" })
        .option("quick", { type: "boolean", default: false, describe: "fewer sizes and shorter timings (under 30 s)" })
        .option("out", { type: "string", demandOption: true, describe: "profile JSON to write; the samples go beside it as .csv" })
        .option("gpu-mem", { type: "string", describe: "GPU capacity in GiB written to the profile (default: 1 for cpu, the device's free memory for cuda)" })
        .option("from-samples", { type: "string", describe: "rebuild the profile from a samples CSV instead of measuring" })
        .option("offload-dir", { type: "string", describe: "folder for the disk measurements (default: the OS temp folder)" })
        .option("quiet", { type: "boolean", default: false, describe: "no progress and no text but errors (--json still prints)" })
        .option("json", { type: "boolean", default: false, describe: "print a JSON summary of the files written" })
        .epilog(EXIT_CODES_EPILOG)
        .example("$0 profile --backend cpu --quick --out cpu.json", "measure this machine in under 30 s")
        .example("$0 profile --backend cuda --out gpu.json", "measure this machine's GPU: copies, GEMMs, attention")
        .example("$0 profile --from-samples cpu.csv --out cpu.json --json", "rebuild a profile from its samples"),
    (argv) => runProfile(argv as unknown as ProfileArgs))
    .command("synth-weights", "write a deterministic synthetic OPT checkpoint (safetensors, fp16) with its config.json", (y) =>
      y.option("model", { type: "string", demandOption: true, describe: "an OPT catalogue name or config.json" })
        .option("out", { type: "string", demandOption: true, describe: "output folder" })
        .option("seed", { type: "string", describe: "random seed (default 0)" })
        .option("json", { type: "boolean", default: false, describe: "print a JSON summary of the files written" })
        .option("quiet", { type: "boolean", default: false, describe: "print no text but errors (--json still prints)" })
        .epilog(EXIT_CODES_EPILOG)
        .example("$0 synth-weights --model opt-125m --out weights/opt-125m", "about 250 MB"),
    (argv) => runSynthWeights(argv as unknown as { model: string; out: string; seed: string | undefined; json: boolean; quiet: boolean }))
    .command("report [inputs..]", "charts (SVG, PNG, Vega-Lite) and an HTML page for a plan, traces and a comparison; with no inputs, for the default plan", (y) =>
      y.positional("inputs", { type: "string", array: true, describe: "plan JSON (plan --out), trace files (simulate/run --trace), a comparison (compare --json); none: the default plan" })
        .option("out", { type: "string", demandOption: true, describe: "folder to write the charts and index.html into (made if missing)" })
        .option("hardware", { type: "string", describe: "profile name or path (default: the plan's, or t4)" })
        .option("quiet", { type: "boolean", default: false, describe: "no progress lines on stderr and no text but errors (--json still prints)" })
        .option("json", { type: "boolean", default: false, describe: "print a JSON summary of the files written" })
        .epilog(EXIT_CODES_EPILOG)
        .example("$0 report --out report", "OPT-175B on a T4: placement, search landscape, frontier, baselines, simulated timeline and memory")
        .example("$0 plan --model opt-30b --out p.json && $0 simulate p.json --trace t.json && $0 report p.json t.json --out r", "a plan and its simulated trace")
        .example("$0 report run-trace.json compare.json --out r --json", "a measured run's trace and a comparison (compare --json)"),
    (argv) => runReport(argv as unknown as ReportArgs));
  return registerDevicesCommand(registerExportCommand(registerTraceCommand(cli)))
    .command("models", "list the model catalogue", (y) => listOptions(y).example("$0 models", "names, families and sizes").example("$0 models --json", "as JSON"),
      (argv) => { if (argv.json || !argv.quiet) process.stdout.write(listModels(Boolean(argv.json)) + "\n"); })
    .command("hardware", "list the shipped hardware profiles", (y) => listOptions(y).example("$0 hardware", "names, GPUs and capacities").example("$0 hardware --json", "as JSON"),
      (argv) => { if (argv.json || !argv.quiet) process.stdout.write(listHardware(Boolean(argv.json)) + "\n"); })
    .example("$0 plan --model opt-30b --hardware rtx3090 --out p.json && $0 simulate p.json", "plan a model for a GPU, then check the plan by simulation")
    .demandCommand(1, "name a command: plan, simulate, run, compare, report, export, trace, profile, synth-weights, models, hardware or devices")
    .strict()
    .help()
    .alias("help", "h")
    .version()
    .epilog(EXIT_CODES_EPILOG)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((message, error) => {
      if (error) throw error;
      throw new UsageError(message);
    });
}

/** `--flag -` means standard input; yargs would read a lone "-" as a positional, so join it to its flag. */
function joinStdinValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg.startsWith("--") && !arg.includes("=") && args[i + 1] === "-") {
      out.push(`${arg}=-`);
      i++;
    } else out.push(arg);
  }
  return out;
}

export async function main(args: string[]): Promise<number> {
  try {
    await buildCli(joinStdinValues(args)).parseAsync();
    return EXIT_OK;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`spillway: ${error.message}\nRun 'spillway --help' for usage.\n`);
      return EXIT_BAD_INPUT;
    }
    if (error instanceof InputError) {
      process.stderr.write(`spillway: ${error.message}\n`);
      return EXIT_BAD_INPUT;
    }
    if (error instanceof PlanError) {
      process.stderr.write(`spillway: ${error.message}\n`);
      return EXIT_FAILURE;
    }
    process.stderr.write(`spillway: internal error: ${(error as Error).message ?? String(error)}\n`);
    if (process.env.SPILLWAY_DEBUG) process.stderr.write(`${(error as Error).stack}\n`);
    return EXIT_FAILURE;
  }
}

main(hideBin(process.argv)).then((code) => { process.exitCode = code; });
