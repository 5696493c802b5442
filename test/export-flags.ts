/** Each engine's documented flags and the type of their values, and a checker of exported command lines against them. */
import assert from "node:assert/strict";

export type Kind = "none" | "int" | "float" | "bool" | "string" | "percent6" | readonly string[];
export const FLEXGEN_FLAGS: Record<string, Kind> = {
  "--model": "string",
  "--path": "string",
  "--offload-dir": "string",
  "--prompt-len": "int",
  "--gen-len": "int",
  "--cut-gen-len": "int",
  "--debug-mode": ["fewer_batch", "breakdown"],
  "--gpu-batch-size": "int",
  "--num-gpu-batches": "int",
  "--percent": "percent6",
  "--sep-layer": "bool",
  "--pin-weight": "bool",
  "--cpu-cache-compute": "none",
  "--attn-sparsity": "float",
  "--compress-weight": "none",
  "--compress-cache": "none",
  "--log-file": "string",
  "--no-log": "none",
  "--verbose": "int",
  "--overlap": "bool",
};
/** flexgen.dist_flex_opt's own flags (add_distributed_parser_arguments) beside flex_opt's. */
export const FLEXGEN_DIST_FLAGS: Record<string, Kind> = {
  ...FLEXGEN_FLAGS,
  "--head-ip": "string",
  "--port": "int",
  "--rank": "int",
  "--local-rank": "int",
  "--world-size": "int",
  "--use-mpi": "none",
  "--comm-device": ["gpu", "cpu"],
  "--num-inner-iterations": "int",
  "--async-comm": "none",
};
export const LLAMA_FLAGS: Record<string, Kind> = {
  "-m": "string",
  "--model": "string",
  "-ngl": "int",
  "--n-gpu-layers": "int",
  "--n-cpu-moe": "int",
  "-ncmoe": "int",
  "--cpu-moe": "none",
  "-ot": "string",
  "--override-tensor": "string",
  "-c": "int",
  "--ctx-size": "int",
  "-np": "int",
  "--parallel": "int",
  "-b": "int",
  "--batch-size": "int",
  "-ub": "int",
  "--ubatch-size": "int",
  "-n": "int",
  "--n-predict": "int",
  "-t": "int",
  "--threads": "int",
  "-nkvo": "none",
  "--no-kv-offload": "none",
  "-ctk": ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"],
  "--no-mmap": "none",
  "--mlock": "none",
  // The RPC backend and multi-GPU splits (common/arg.cpp; tools/rpc/README.md, checked this session).
  "--rpc": "string",
  "-ts": "string",
  "--tensor-split": "string",
  "-sm": ["none", "layer", "row"],
  "--split-mode": ["none", "layer", "row"],
  "-mg": "int",
  "--main-gpu": "int",
};
/** rpc-server's flags (llama.cpp tools/rpc/rpc-server.cpp, rpc_server_params_parse, checked this session). */
export const RPC_SERVER_FLAGS: Record<string, Kind> = {
  "-H": "string",
  "--host": "string",
  "-p": "int",
  "--port": "int",
  "-t": "int",
  "--threads": "int",
  "-d": "string",
  "--device": "string",
  "-m": "string",
  "--mem": "string",
  "-c": "none",
  "--cache": "none",
};
/** The `deepspeed` launcher's own flags before the user script (deepspeed/launcher/runner.py parse_args, checked this session). */
export const DEEPSPEED_LAUNCHER_FLAGS: Record<string, Kind> = {
  "-H": "string",
  "--hostfile": "string",
  "-i": "string",
  "--include": "string",
  "-e": "string",
  "--exclude": "string",
  "--num_nodes": "int",
  "--num_gpus": "int",
  "--num_accelerators": "int",
  "--master_port": "int",
  "--master_addr": "string",
  "--node_rank": "int",
  "--launcher": "string",
  "--launcher_args": "string",
  "--module": "none",
  "--no_python": "none",
  "--no_local_rank": "none",
  "--no_ssh": "none",
  "--no_ssh_check": "none",
  "--force_multi": "none",
};
/**
 * DeepSpeed config keys the exports write, by section (deepspeed/runtime/zero/config.py DeepSpeedZeroConfig
 * and its stage3_* aliases, runtime/zero/offload_config.py DeepSpeedZeroOffloadParamConfig,
 * runtime/swap_tensor/constants.py AIO_FORMAT; checked this session). The ZeRO sections are pydantic
 * models that forbid unknown keys.
 */
export const DEEPSPEED_CONFIG_KEYS: Record<string, readonly string[]> = {
  zero_optimization: [
    "stage",
    "offload_param",
    "stage3_prefetch_bucket_size",
    "stage3_param_persistence_threshold",
    "stage3_model_persistence_threshold",
    "stage3_max_live_parameters",
    "stage3_max_reuse_distance",
  ],
  offload_param: ["device", "nvme_path", "buffer_count", "buffer_size", "max_in_cpu", "pin_memory"],
  aio: [
    "block_size",
    "queue_depth",
    "thread_count",
    "intra_op_parallelism",
    "single_submit",
    "overlap_events",
    "use_gds",
  ],
};
export const VLLM_FLAGS: Record<string, Kind> = {
  "--dtype": ["auto", "half", "float16", "bfloat16", "float", "float32"],
  "--max-model-len": "int",
  "--max-num-seqs": "int",
  "--cpu-offload-gb": "float",
  "--gpu-memory-utilization": "float",
  "--swap-space": "float",
  "--quantization": ["awq", "gptq", "bitsandbytes", "fp8", "gguf", "compressed-tensors", "awq_marlin", "gptq_marlin"],
  "--kv-cache-dtype": ["auto", "fp8", "fp8_e4m3", "fp8_e5m2"],
  "--max-num-batched-tokens": "int",
  "--enforce-eager": "none",
  "--pipeline-parallel-size": "int",
  "--tensor-parallel-size": "int",
  "--distributed-executor-backend": ["ray", "mp", "uni", "external_launcher"],
};

/** The command of a text export: comment lines dropped, continuations joined, split into words. */
export function commandWords(text: string): string[] {
  const lines = text.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
  return lines
    .join(" ")
    .replace(/\\ /g, " ")
    .split(/\s+/)
    .filter((w) => w !== "" && w !== "\\");
}

function checkValue(flag: string, kind: Kind, values: string[]): void {
  const v = values[0];
  if (kind === "none") {
    assert.equal(values.length, 0, `${flag} takes no value, got ${values.join(" ")}`);
    return;
  }
  if (kind === "percent6") {
    assert.equal(values.length, 6, `${flag} takes six integers`);
    for (const x of values)
      assert.ok(Number.isInteger(Number(x)) && Number(x) >= 0 && Number(x) <= 100, `${flag} value ${x}`);
    return;
  }
  assert.equal(values.length, 1, `${flag} takes one value, got ${values.join(" ")}`);
  if (kind === "int") assert.ok(/^-?\d+$/.test(v!), `${flag} expects an integer, got ${v}`);
  else if (kind === "float") assert.ok(Number.isFinite(Number(v)), `${flag} expects a number, got ${v}`);
  else if (kind === "bool") assert.ok(/^(0|1|true|false|True|False)$/.test(v!), `${flag} expects a boolean, got ${v}`);
  else if (Array.isArray(kind)) assert.ok(kind.includes(v!), `${flag} expects one of ${kind.join(", ")}, got ${v}`);
}

/** Checks every flag after the program words belongs to `flags` and its values have the right type; returns flag -> values. */
export function checkFlags(words: string[], programWords: number, flags: Record<string, Kind>): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  let i = programWords;
  while (i < words.length) {
    const flag = words[i]!;
    assert.ok(flag.startsWith("-"), `expected a flag, got ${flag}`);
    assert.ok(flag in flags, `${flag} is not a documented flag`);
    const values: string[] = [];
    i++;
    while (i < words.length && !/^-[-a-z]/i.test(words[i]!)) values.push(words[i++]!);
    checkValue(flag, flags[flag]!, values);
    assert.ok(!seen.has(flag), `${flag} given twice`);
    seen.set(flag, values);
  }
  return seen;
}
