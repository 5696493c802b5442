/**
 * The golden regression cases: a fixed list of (model, hardware, workload, flags) runs of the CLI whose
 * JSON output must not change across the redesign (issue 15). `scripts/capture-golden.mjs` records their
 * outputs in test/golden/outputs.json from a chosen build; test/integration/golden.test.ts re-runs them and compares.
 *
 * Three kinds:
 * - plan: `spillway plan ARGS --json`; stdout is the output. A scored policy that does not fit exits 0 with
 *   feasible false; "no policy fits" exits 1 with nothing on stdout: both are recorded outcomes.
 * - simulate: `spillway plan PLAN_ARGS --out P --quiet`, then `spillway simulate P SIMULATE_ARGS --json`.
 * - run: on a tiny synthetic OPT checkpoint (TINY_OPT_CONFIG through `spillway synth-weights`), `plan`
 *   then `spillway run P --weights W RUN_ARGS --json`; only deterministic fields are kept.
 *
 * Every case should take about two seconds or less on an idle core: MoE searches are pinned with fixed
 * expert settings for that reason.
 */

export type GoldenCase =
  | { readonly kind: "plan"; readonly name: string; readonly args: readonly string[] }
  | { readonly kind: "simulate"; readonly name: string; readonly planArgs: readonly string[]; readonly simulateArgs: readonly string[] }
  | { readonly kind: "run"; readonly name: string; readonly planArgs: readonly string[]; readonly runArgs: readonly string[] };

/** FlexGen's reference setting: T4, prompt 512, gen 32, 15/200/1500 GB (test/unit/flexgen-reference.test.ts). */
const FLEXGEN_T4 = ["--hardware", "t4", "--prompt-len", "512", "--gen-len", "32", "--gpu-mem", "15", "--cpu-mem", "200", "--disk-mem", "1500"];
const FLEXGEN = [...FLEXGEN_T4, "--cost-model", "flexgen"];

/** Fixed MoE settings so that an MoE plan scores a handful of policies instead of searching thousands. */
const MOE_FIXED = ["--batch-size", "1", "--expert-bits", "4", "--attention-bits", "16", "--prefetch-experts", "0", "--prefetch-layers", "1"];

const plan = (name: string, args: readonly string[]): GoldenCase => ({ kind: "plan", name, args });

export const PLAN_CASES: readonly GoldenCase[] = [
  // FlexGen's released LP search reproducing its published optima (the FlexGen goldens).
  plan("flexgen search opt-6.7b t4", ["--model", "opt-6.7b", ...FLEXGEN]),
  plan("flexgen search opt-30b t4", ["--model", "opt-30b", ...FLEXGEN]),
  plan("flexgen search opt-175b t4", ["--model", "opt-175b", ...FLEXGEN]),
  plan("flexgen search opt-175b t4 --compress-weight", ["--model", "opt-175b", ...FLEXGEN, "--compress-weight"]),
  plan("flexgen search opt-30b t4 --compress-weight", ["--model", "opt-30b", ...FLEXGEN, "--compress-weight"]),
  // Fixed policies in the style of FlexGen's benchmark suite (flexgen/bench_suite.py), scored by its model.
  plan("flexgen scores opt-6.7b 2x1 all on GPU, no overlap", ["--model", "opt-6.7b", ...FLEXGEN, "--gbs", "2", "--nb", "1", "--percent", "100", "0", "100", "0", "100", "0", "--no-overlap"]),
  plan("flexgen scores opt-30b 48x3 weights 20/80, KV and hidden on CPU, CPU attention", ["--model", "opt-30b", ...FLEXGEN, "--gbs", "48", "--nb", "3", "--percent", "20", "80", "0", "100", "0", "100", "--cpu-attention"]),
  plan("flexgen scores opt-175b 32x8 weights 0/50 (rest disk), CPU attention, unpinned", ["--model", "opt-175b", ...FLEXGEN, "--gbs", "32", "--nb", "8", "--percent", "0", "50", "0", "0", "0", "100", "--cpu-attention", "--no-pin-weight"]),
  plan("flexgen scores opt-175b 48x3 compressed weights on CPU", ["--model", "opt-175b", ...FLEXGEN, "--gbs", "48", "--nb", "3", "--percent", "0", "100", "0", "100", "0", "100", "--compress-weight", "--cpu-attention", "--no-pin-weight"]),
  plan("flexgen scores a policy that does not fit: opt-30b 64x8 all on GPU", ["--model", "opt-30b", ...FLEXGEN, "--gbs", "64", "--nb", "8", "--percent", "100", "0", "100", "0", "100", "0"]),
  // The default plan and its schedule and overlap variants.
  plan("default plan", []),
  plan("default plan --schedule flexgen", ["--schedule", "flexgen"]),
  plan("default plan --no-overlap", ["--no-overlap"]),
  plan("default plan --no-pin-weight", ["--no-pin-weight"]),
  // The Spillway model on other models and hardware.
  plan("opt-1.3b t4", ["--model", "opt-1.3b", "--hardware", "t4"]),
  plan("opt-1.3b rtx3060 prompt 256 gen 64", ["--model", "opt-1.3b", "--hardware", "rtx3060", "--prompt-len", "256", "--gen-len", "64"]),
  plan("opt-6.7b t4 with 8 GiB GPU and 16 GiB CPU", ["--model", "opt-6.7b", "--hardware", "t4", "--gpu-mem", "8", "--cpu-mem", "16"]),
  plan("opt-30b t4", ["--model", "opt-30b", "--hardware", "t4"]),
  plan("opt-30b rtx3090", ["--model", "opt-30b", "--hardware", "rtx3090"]),
  plan("opt-30b a100-80g --schedule flexgen", ["--model", "opt-30b", "--hardware", "a100-80g", "--schedule", "flexgen"]),
  plan("opt-66b v100", ["--model", "opt-66b", "--hardware", "v100"]),
  plan("opt-175b h100", ["--model", "opt-175b", "--hardware", "h100"]),
  plan("opt-175b t4 --max-block 64", ["--max-block", "64"]),
  plan("llama-2-7b l4", ["--model", "llama-2-7b", "--hardware", "l4"]),
  plan("llama-2-70b rtx4090 prompt 128 gen 128", ["--model", "llama-2-70b", "--hardware", "rtx4090", "--prompt-len", "128", "--gen-len", "128"]),
  plan("mistral-7b rtx3060", ["--model", "mistral-7b", "--hardware", "rtx3060"]),
  // Partly fixed policies: batch shape fixed, placement searched.
  plan("opt-30b t4 --gbs 16", ["--model", "opt-30b", "--hardware", "t4", "--gbs", "16"]),
  plan("opt-30b t4 --nb 4", ["--model", "opt-30b", "--hardware", "t4", "--nb", "4"]),
  plan("opt-30b t4 --gbs 8 --nb 4 --no-overlap", ["--model", "opt-30b", "--hardware", "t4", "--gbs", "8", "--nb", "4", "--no-overlap"]),
  // Compression and CPU attention forced on and off.
  plan("opt-13b t4 compression and CPU attention on", ["--model", "opt-13b", "--hardware", "t4", "--compress-weight", "--compress-cache", "--cpu-attention"]),
  plan("opt-13b t4 compression and CPU attention off", ["--model", "opt-13b", "--hardware", "t4", "--no-compress-weight", "--no-compress-cache", "--no-cpu-attention"]),
  // Fully fixed policies, scored by the Spillway model.
  plan("spillway scores the README policy opt-175b 32x8 0/50, CPU attention", ["--gbs", "32", "--nb", "8", "--percent", "0", "50", "0", "0", "0", "100", "--cpu-attention"]),
  plan("spillway scores opt-30b 8x2 weights 10/90, KV on CPU, flexgen schedule", ["--model", "opt-30b", "--hardware", "t4", "--gbs", "8", "--nb", "2", "--percent", "10", "90", "0", "100", "0", "100", "--schedule", "flexgen"]),
  plan("spillway scores a policy that does not fit: opt-30b 64x8 all on GPU", ["--model", "opt-30b", "--hardware", "t4", "--gbs", "64", "--nb", "8", "--percent", "100", "0", "100", "0", "100", "0"]),
  // No policy fits: exit 1, nothing on stdout.
  plan("spillway finds no policy: opt-175b in 1 GiB per tier", ["--model", "opt-175b", "--gpu-mem", "1", "--cpu-mem", "1", "--disk-mem", "1"]),
  plan("flexgen finds no policy: opt-30b in 0.5/1/1 GiB", ["--model", "opt-30b", "--cost-model", "flexgen", "--gpu-mem", "0.5", "--cpu-mem", "1", "--disk-mem", "1"]),
  // Mixture-of-Experts models, expert settings fixed.
  plan("mixtral-8x7b rtx4090 latency mode", ["--model", "mixtral-8x7b", "--hardware", "rtx4090", ...MOE_FIXED]),
  plan("mixtral-8x7b rtx3090 expert cache 4, LRU, experts on CPU", ["--model", "mixtral-8x7b", "--hardware", "rtx3090", ...MOE_FIXED, "--expert-cache", "4", "--expert-eviction", "lru", "--expert-compute", "cpu"]),
  plan("mixtral-8x7b t4 dense experts", ["--model", "mixtral-8x7b", "--hardware", "t4", "--dense-experts", "--prompt-len", "128", "--gen-len", "16"]),
  plan("mixtral-8x22b a100-80g latency mode, LFU", ["--model", "mixtral-8x22b", "--hardware", "a100-80g", ...MOE_FIXED, "--expert-eviction", "lfu"]),
  plan("qwen1.5-moe-a2.7b l4 expert cache 8, GPU experts", ["--model", "qwen1.5-moe-a2.7b", "--hardware", "l4", ...MOE_FIXED, "--expert-cache", "8", "--expert-compute", "gpu"]),
  plan("olmoe-1b-7b rtx3060 static cache", ["--model", "olmoe-1b-7b", "--hardware", "rtx3060", ...MOE_FIXED, "--expert-cache", "16", "--expert-eviction", "static"]),
  plan("qwen3-30b-a3b rtx4090 prefetch 2 experts", ["--model", "qwen3-30b-a3b", "--hardware", "rtx4090", "--batch-size", "1", "--expert-bits", "8", "--attention-bits", "16", "--prefetch-experts", "2", "--prefetch-layers", "1", "--expert-cache", "32"]),
  // Per-layer baselines (accelerate, deepspeed-zero, llama.cpp, flexgen) beside the plan.
  plan("default plan --compare", ["--compare"]),
  plan("opt-30b rtx3090 --compare", ["--model", "opt-30b", "--hardware", "rtx3090", "--compare"]),
  plan("opt-6.7b t4 flexgen cost model --compare", ["--model", "opt-6.7b", ...FLEXGEN, "--compare"]),
  plan("llama-2-13b rtx3060 --compare", ["--model", "llama-2-13b", "--hardware", "rtx3060", "--compare"]),
  plan("mixtral-8x7b rtx4090 latency mode --compare", ["--model", "mixtral-8x7b", "--hardware", "rtx4090", ...MOE_FIXED, "--compare"]),
];

const simulate = (name: string, planArgs: readonly string[], simulateArgs: readonly string[] = []): GoldenCase => ({ kind: "simulate", name, planArgs, simulateArgs });

export const SIMULATE_CASES: readonly GoldenCase[] = [
  simulate("simulate the default plan", []),
  simulate("simulate the default plan under FlexGen's schedule (--schedule on simulate)", [], ["--schedule", "flexgen"]),
  simulate("simulate the default plan planned with --no-overlap", ["--no-overlap"]),
  simulate("simulate opt-30b t4 8x2 weights 10/90 (flexgen schedule plan)", ["--model", "opt-30b", "--hardware", "t4", "--gbs", "8", "--nb", "2", "--percent", "10", "90", "0", "100", "0", "100", "--schedule", "flexgen"]),
  simulate("simulate the README policy opt-175b 32x8, CPU attention", ["--gbs", "32", "--nb", "8", "--percent", "0", "50", "0", "0", "0", "100", "--cpu-attention", "--gen-len", "8"]),
  simulate("simulate opt-1.3b rtx3060", ["--model", "opt-1.3b", "--hardware", "rtx3060", "--prompt-len", "256", "--gen-len", "64"]),
  simulate("simulate llama-2-7b l4", ["--model", "llama-2-7b", "--hardware", "l4"]),
  simulate("simulate opt-13b t4 compression and CPU attention on", ["--model", "opt-13b", "--hardware", "t4", "--compress-weight", "--compress-cache", "--cpu-attention"]),
  simulate("simulate mixtral-8x7b rtx4090 latency mode (expert-cache replay)", ["--model", "mixtral-8x7b", "--hardware", "rtx4090", ...MOE_FIXED]),
];

/**
 * A tiny OPT (3 layers, hidden 128, vocabulary 1024) as a Hugging Face config.json: `spillway
 * synth-weights` makes its deterministic checkpoint (seed 0, about 1.5 MB), so a run takes a second.
 */
export const TINY_OPT_CONFIG = {
  _name_or_path: "opt-golden-tiny", architectures: ["OPTForCausalLM"], model_type: "opt",
  hidden_size: 128, num_hidden_layers: 3, ffn_dim: 512, num_attention_heads: 4, vocab_size: 1024,
  max_position_embeddings: 256, word_embed_proj_dim: 128, activation_function: "relu", do_layer_norm_before: true,
  enable_bias: true, layer_norm_elementwise_affine: true, tie_word_embeddings: true, init_std: 0.02, dropout: 0,
  attention_dropout: 0, layerdrop: 0, bos_token_id: 2, eos_token_id: 2, pad_token_id: 1, use_cache: true, torch_dtype: "float16",
} as const;

/** Stands for the synthetic checkpoint's folder in plan and run arguments. */
export const WEIGHTS = "{weights}";

const TINY_PLAN = ["--model", WEIGHTS, "--hardware", "t4", "--gpu-mem", "0.004", "--prompt-len", "16", "--gen-len", "4"];
const run = (name: string, planArgs: readonly string[], runArgs: readonly string[] = []): GoldenCase => ({ kind: "run", name, planArgs: [...TINY_PLAN, ...planArgs], runArgs });

export const RUN_CASES: readonly GoldenCase[] = [
  run("run tiny OPT 2x2, weights and KV on CPU, overlap", ["--gbs", "2", "--nb", "2", "--percent", "0", "100", "0", "100", "100", "0"]),
  run("run tiny OPT 2x2, weights and KV on disk, FlexGen schedule, no overlap", ["--gbs", "2", "--nb", "2", "--percent", "0", "0", "0", "0", "100", "0", "--no-overlap"], ["--schedule", "flexgen"]),
  run("run tiny OPT 4x1, compressed weights 40/60, CPU attention over CPU KV", ["--gbs", "4", "--nb", "1", "--percent", "40", "60", "0", "100", "100", "0", "--compress-weight", "--cpu-attention"]),
];

export const GOLDEN_CASES: readonly GoldenCase[] = [...PLAN_CASES, ...SIMULATE_CASES, ...RUN_CASES];
