import assert from "node:assert/strict";
import { test } from "node:test";
import {
  activeParams,
  expertParams,
  headDim,
  isExpertTensor,
  kvDim,
  layerParams,
  layerWeightTensors,
  type ModelSpec,
  qDim,
  totalParams,
  totalWeightBytes,
} from "../../core/model-spec.js";
import { parseModelSpec } from "../../core/parse-model-spec.js";
import { loadShippedProfile } from "../../core/resolve-hardware.js";
import { ggufFile } from "../../engines/llama-cpp/gguf-tensors.js";
import { predictPlanOnEngine } from "../../engines/plan-for-engine.js";
import { findCatalogueModel, MODEL_CATALOGUE } from "../../models/catalogue.js";
import { modelSpecFromHfConfig } from "../../models/hf-config.js";
import { loadLpSolvers } from "../../planner/lp/solve-linear-program.js";
import { planSync } from "../../planner/plan.js";
import { runCli } from "../helpers.js";

// Published parameter counts (model cards), to 1%.
const PUBLISHED: Record<string, number> = {
  "opt-125m": 125e6,
  "opt-1.3b": 1.3e9,
  "opt-6.7b": 6.7e9,
  "opt-13b": 13e9,
  "opt-30b": 30e9,
  "opt-66b": 66e9,
  "opt-175b": 175e9,
  "llama-2-7b": 6.74e9,
  "llama-2-13b": 13.02e9,
  "llama-2-70b": 68.98e9,
  "mistral-7b": 7.24e9,
  "mixtral-8x7b": 46.7e9,
  "mixtral-8x22b": 140.6e9,
};

test("catalogue parameter counts match the published sizes", () => {
  for (const [name, params] of Object.entries(PUBLISHED)) {
    const model = findCatalogueModel(name);
    assert.ok(model, name);
    const got = totalParams(model);
    assert.ok(Math.abs(got - params) / params < 0.03, `${name}: ${got} vs ${params}`);
  }
  const mixtral = findCatalogueModel("mixtral-8x7b")!;
  assert.ok(Math.abs(activeParams(mixtral) - 12.9e9) / 12.9e9 < 0.02, `active ${activeParams(mixtral)}`);
});

test("Hugging Face config.json files give the same specs as the catalogue", () => {
  const configs: Record<string, object> = {
    "opt-6.7b": {
      model_type: "opt",
      hidden_size: 4096,
      num_hidden_layers: 32,
      ffn_dim: 16384,
      num_attention_heads: 32,
      vocab_size: 50272,
      max_position_embeddings: 2048,
      word_embed_proj_dim: 4096,
      activation_function: "relu",
      do_layer_norm_before: true,
      torch_dtype: "float16",
    },
    "llama-2-70b": {
      model_type: "llama",
      hidden_size: 8192,
      num_hidden_layers: 80,
      intermediate_size: 28672,
      num_attention_heads: 64,
      num_key_value_heads: 8,
      vocab_size: 32000,
      max_position_embeddings: 4096,
      hidden_act: "silu",
      tie_word_embeddings: false,
    },
    "mistral-7b": {
      model_type: "mistral",
      hidden_size: 4096,
      num_hidden_layers: 32,
      intermediate_size: 14336,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      vocab_size: 32000,
      max_position_embeddings: 32768,
      hidden_act: "silu",
    },
    "mixtral-8x7b": {
      model_type: "mixtral",
      hidden_size: 4096,
      num_hidden_layers: 32,
      intermediate_size: 14336,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      vocab_size: 32000,
      max_position_embeddings: 32768,
      hidden_act: "silu",
      num_local_experts: 8,
      num_experts_per_tok: 2,
    },
  };
  for (const [name, config] of Object.entries(configs)) {
    const spec = modelSpecFromHfConfig(config, `${name}/config.json`, name);
    assert.deepEqual(spec, findCatalogueModel(name), name);
  }
});

test("spillway models lists every catalogue entry with parameters and bytes", () => {
  const out = runCli(["models", "--json"]);
  assert.equal(out.status, 0, out.stderr);
  const rows = JSON.parse(out.stdout) as { name: string; params: number; fp16Bytes: number }[];
  assert.deepEqual(
    rows.map((r) => r.name),
    MODEL_CATALOGUE.map((m) => m.name),
  );
  for (const r of rows) assert.equal(r.fp16Bytes, r.params * 2);
  const text = runCli(["models"]);
  assert.match(text.stdout, /opt-175b\s+opt\s+96\s+12288\s+96\/96\s+174\.60B/);
});

test("a plan made from a Llama config.json works end to end", () => {
  const out = runCli(
    ["plan", "--model", "-", "--hardware", "rtx3090", "--prompt-len", "256", "--gen-len", "16", "--json"],
    JSON.stringify({
      model_type: "llama",
      _name_or_path: "meta-llama/Llama-2-13b-hf",
      hidden_size: 5120,
      num_hidden_layers: 40,
      intermediate_size: 13824,
      num_attention_heads: 40,
      vocab_size: 32000,
      max_position_embeddings: 4096,
    }),
  );
  assert.equal(out.status, 0, out.stderr);
  const plan = JSON.parse(out.stdout);
  assert.equal(plan.model, "Llama-2-13b-hf");
  assert.equal(plan.predicted.feasible, true);
  assert.ok(plan.predicted.throughputTokensPerSecond > 0);
});

// Published total / active parameter counts of the MoE models (model cards and papers), to 2%.
const PUBLISHED_MOE: Record<string, { total: number; active: number }> = {
  "mixtral-8x7b": { total: 46.7e9, active: 12.9e9 },
  "qwen1.5-moe-a2.7b": { total: 14.3e9, active: 2.7e9 },
  "olmoe-1b-7b": { total: 6.9e9, active: 1.3e9 },
  "qwen3-30b-a3b": { total: 30.5e9, active: 3.3e9 },
};

test("MoE catalogue models have the published total and active parameter counts", () => {
  for (const [name, { total, active }] of Object.entries(PUBLISHED_MOE)) {
    const model = findCatalogueModel(name);
    assert.ok(model?.moe, name);
    assert.ok(Math.abs(totalParams(model) - total) / total < 0.02, `${name} total ${totalParams(model)} vs ${total}`);
    assert.ok(
      Math.abs(activeParams(model) - active) / active < 0.02,
      `${name} active ${activeParams(model)} vs ${active}`,
    );
    assert.equal(totalWeightBytes(model), 2 * totalParams(model));
  }
  // Exact counts from the architecture (hand-derived from each config.json).
  assert.equal(totalParams(findCatalogueModel("qwen1.5-moe-a2.7b")!), 14_315_784_192);
  assert.equal(totalParams(findCatalogueModel("olmoe-1b-7b")!), 6_919_161_856);
  assert.equal(totalParams(findCatalogueModel("qwen3-30b-a3b")!), 30_532_122_624);
  assert.equal(activeParams(findCatalogueModel("qwen3-30b-a3b")!), 3_353_032_704);
  // Shared experts count as active: Qwen1.5-MoE's 5632-wide shared expert is in every token's path.
  const qwen15 = findCatalogueModel("qwen1.5-moe-a2.7b")!;
  assert.equal(activeParams(qwen15), totalParams(qwen15) - 24 * (60 - 4) * 3 * 2048 * 1408);
  assert.equal(expertParams(qwen15), 3 * 2048 * 1408);
  assert.equal(expertParams(findCatalogueModel("mixtral-8x7b")!), 176_160_768);
  assert.equal(expertParams(findCatalogueModel("llama-2-7b")!), 0);
});

test("each MoE family lists its Hugging Face tensor names, with expert sizes from expertFfnSize", () => {
  const names = (m: ModelSpec) => new Map(layerWeightTensors(m).map((t) => [t.name, t.params]));
  const mixtral = names(findCatalogueModel("mixtral-8x7b")!);
  assert.equal(mixtral.get("block_sparse_moe.gate.weight"), 4096 * 8);
  for (const w of ["w1", "w2", "w3"]) assert.equal(mixtral.get(`block_sparse_moe.experts.7.${w}.weight`), 4096 * 14336);
  assert.equal(mixtral.get("self_attn.q_proj.weight"), 4096 * 4096);

  const qwen15 = names(findCatalogueModel("qwen1.5-moe-a2.7b")!);
  assert.equal(qwen15.get("mlp.gate.weight"), 2048 * 60);
  for (const w of ["gate_proj", "up_proj", "down_proj"]) {
    assert.equal(qwen15.get(`mlp.experts.59.${w}.weight`), 2048 * 1408);
    assert.equal(qwen15.get(`mlp.shared_expert.${w}.weight`), 2048 * 5632);
  }
  assert.equal(qwen15.get("mlp.experts.60.gate_proj.weight"), undefined);
  assert.equal(qwen15.get("mlp.shared_expert_gate.weight"), 2048);
  assert.equal(qwen15.get("self_attn.q_proj.bias"), 2048);
  assert.equal(qwen15.get("self_attn.k_proj.bias"), 2048);
  assert.equal(qwen15.get("self_attn.v_proj.bias"), 2048);
  assert.equal(qwen15.get("self_attn.o_proj.bias"), undefined);

  const olmoe = names(findCatalogueModel("olmoe-1b-7b")!);
  assert.equal(olmoe.get("mlp.gate.weight"), 2048 * 64);
  for (const w of ["gate_proj", "up_proj", "down_proj"])
    assert.equal(olmoe.get(`mlp.experts.63.${w}.weight`), 2048 * 1024);
  assert.equal(olmoe.get("self_attn.q_norm.weight"), 2048);
  assert.equal(olmoe.get("self_attn.k_norm.weight"), 2048);
  assert.equal(olmoe.get("self_attn.q_proj.bias"), undefined);

  const qwen3 = findCatalogueModel("qwen3-30b-a3b")!;
  const q3 = names(qwen3);
  assert.equal(q3.get("mlp.gate.weight"), 2048 * 128);
  for (const w of ["gate_proj", "up_proj", "down_proj"])
    assert.equal(q3.get(`mlp.experts.127.${w}.weight`), 2048 * 768);
  assert.equal(q3.get("self_attn.q_norm.weight"), 128);
  assert.equal(q3.get("self_attn.k_norm.weight"), 128);
  assert.equal(q3.get("self_attn.q_proj.bias"), undefined);
  assert.equal(q3.get("mlp.shared_expert_gate.weight"), undefined);

  // Expert tensors are told apart from routers, shared experts and attention.
  assert.ok(isExpertTensor("mlp.experts.3.up_proj.weight"));
  assert.ok(isExpertTensor("block_sparse_moe.experts.0.w2.weight"));
  for (const n of [
    "mlp.gate.weight",
    "block_sparse_moe.gate.weight",
    "mlp.shared_expert.up_proj.weight",
    "mlp.shared_expert_gate.weight",
    "self_attn.q_proj.weight",
  ])
    assert.ok(!isExpertTensor(n), n);
  for (const model of MODEL_CATALOGUE.filter((m) => m.moe)) {
    const experts = layerWeightTensors(model).filter((t) => isExpertTensor(t.name));
    assert.equal(experts.length, 3 * model.moe!.numExperts, model.name);
    assert.equal(
      experts.reduce((sum, t) => sum + t.params, 0),
      model.moe!.numExperts * expertParams(model),
      model.name,
    );
  }
});

test("Qwen3-30B-A3B's head_dim is decoupled from hidden_size", () => {
  const qwen3 = findCatalogueModel("qwen3-30b-a3b")!;
  assert.equal(headDim(qwen3), 128);
  assert.equal(qDim(qwen3), 4096);
  assert.equal(kvDim(qwen3), 512);
  const t = new Map(layerWeightTensors(qwen3).map((x) => [x.name, x.params]));
  assert.equal(t.get("self_attn.q_proj.weight"), 2048 * 4096);
  assert.equal(t.get("self_attn.k_proj.weight"), 2048 * 512);
  assert.equal(t.get("self_attn.v_proj.weight"), 2048 * 512);
  assert.equal(t.get("self_attn.o_proj.weight"), 4096 * 2048);
  // Dense models keep hiddenSize / numHeads.
  assert.equal(headDim(findCatalogueModel("llama-2-7b")!), 128);
  assert.equal(qDim(findCatalogueModel("llama-2-7b")!), 4096);
});

// The architecture fields of each model's published config.json.
const QWEN15_MOE_CONFIG = {
  architectures: ["Qwen2MoeForCausalLM"],
  model_type: "qwen2_moe",
  _name_or_path: "Qwen/Qwen1.5-MoE-A2.7B",
  hidden_act: "silu",
  hidden_size: 2048,
  intermediate_size: 5632,
  max_position_embeddings: 8192,
  max_window_layers: 21,
  num_attention_heads: 16,
  num_hidden_layers: 24,
  num_key_value_heads: 16,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  use_sliding_window: false,
  vocab_size: 151936,
  decoder_sparse_step: 1,
  moe_intermediate_size: 1408,
  shared_expert_intermediate_size: 5632,
  num_experts_per_tok: 4,
  num_experts: 60,
  norm_topk_prob: false,
};
const OLMOE_CONFIG = {
  architectures: ["OlmoeForCausalLM"],
  model_type: "olmoe",
  attention_bias: false,
  clip_qkv: null,
  hidden_act: "silu",
  hidden_size: 2048,
  intermediate_size: 1024,
  max_position_embeddings: 4096,
  norm_topk_prob: false,
  num_attention_heads: 16,
  num_experts: 64,
  num_experts_per_tok: 8,
  num_hidden_layers: 16,
  num_key_value_heads: 16,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  vocab_size: 50304,
};
const QWEN3_MOE_CONFIG = {
  architectures: ["Qwen3MoeForCausalLM"],
  model_type: "qwen3_moe",
  attention_bias: false,
  decoder_sparse_step: 1,
  head_dim: 128,
  hidden_act: "silu",
  hidden_size: 2048,
  intermediate_size: 6144,
  max_position_embeddings: 40960,
  max_window_layers: 48,
  mlp_only_layers: [],
  moe_intermediate_size: 768,
  norm_topk_prob: true,
  num_attention_heads: 32,
  num_experts: 128,
  num_experts_per_tok: 8,
  num_hidden_layers: 48,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000.0,
  sliding_window: null,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  use_sliding_window: false,
  vocab_size: 151936,
};

test("qwen2_moe, olmoe and qwen3_moe config.json files give the catalogue specs", () => {
  const cases: [string, object][] = [
    ["qwen1.5-moe-a2.7b", QWEN15_MOE_CONFIG],
    ["olmoe-1b-7b", OLMOE_CONFIG],
    ["qwen3-30b-a3b", QWEN3_MOE_CONFIG],
  ];
  for (const [name, config] of cases) {
    assert.deepEqual(modelSpecFromHfConfig(config, `${name}/config.json`, name), findCatalogueModel(name), name);
  }
  // The name defaults to the repository name.
  assert.equal(modelSpecFromHfConfig(QWEN15_MOE_CONFIG, "config.json").name, "Qwen1.5-MoE-A2.7B");
  assert.equal(findCatalogueModel("allenai/OLMoE-1B-7B-0924")?.name, "olmoe-1b-7b");
  assert.equal(findCatalogueModel("Qwen/Qwen3-30B-A3B")?.name, "qwen3-30b-a3b");
  // A Mistral config that states its (ordinary) head_dim still matches the catalogue.
  const mistral = {
    model_type: "mistral",
    hidden_size: 4096,
    num_hidden_layers: 32,
    intermediate_size: 14336,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 128,
    vocab_size: 32000,
    max_position_embeddings: 32768,
    hidden_act: "silu",
  };
  assert.deepEqual(
    modelSpecFromHfConfig(mistral, "mistral/config.json", "mistral-7b"),
    findCatalogueModel("mistral-7b"),
  );
});

test("bad MoE config.json files are rejected naming the field", () => {
  const bad: [object, RegExp][] = [
    [{ ...QWEN3_MOE_CONFIG, decoder_sparse_step: 2 }, /decoder_sparse_step.*per-layer dense\/MoE mix/],
    [{ ...QWEN3_MOE_CONFIG, mlp_only_layers: [0, 1] }, /mlp_only_layers.*\[0,1\] are dense/],
    [{ ...QWEN3_MOE_CONFIG, mlp_only_layers: "none" }, /mlp_only_layers.*expected a list/],
    [{ ...QWEN15_MOE_CONFIG, decoder_sparse_step: 3 }, /decoder_sparse_step/],
    [
      { ...QWEN15_MOE_CONFIG, shared_expert_intermediate_size: undefined },
      /shared_expert_intermediate_size: expected a finite number/,
    ],
    [{ ...QWEN15_MOE_CONFIG, qkv_bias: false }, /qkv_bias/],
    [{ ...QWEN3_MOE_CONFIG, moe_intermediate_size: undefined }, /moe_intermediate_size: expected a finite number/],
    [{ ...QWEN3_MOE_CONFIG, num_experts_per_tok: 129 }, /num_experts_per_tok.*at most num_experts \(128\)/],
    [{ ...QWEN3_MOE_CONFIG, attention_bias: true }, /attention_bias/],
    [{ ...OLMOE_CONFIG, num_experts: 0 }, /num_experts.*>= 1/],
    [(({ num_experts: _, ...rest }) => rest)(OLMOE_CONFIG), /num_experts: missing/],
    [{ ...OLMOE_CONFIG, model_type: "deepseek_v2" }, /model_type.*unsupported model type "deepseek_v2".*qwen3_moe/],
    [{ ...QWEN3_MOE_CONFIG, head_dim: 0 }, /head_dim/],
  ];
  for (const [config, pattern] of bad) {
    assert.throws(() => modelSpecFromHfConfig(config, "x/config.json"), pattern, JSON.stringify(pattern));
  }
});

test("Spillway model files carry headDim and shared experts, and bad ones name the field", () => {
  const qwen3 = findCatalogueModel("qwen3-30b-a3b")!;
  assert.deepEqual(parseModelSpec(JSON.parse(JSON.stringify(qwen3)), "q3.json"), qwen3);
  const qwen15 = findCatalogueModel("qwen1.5-moe-a2.7b")!;
  assert.deepEqual(parseModelSpec(JSON.parse(JSON.stringify(qwen15)), "q15.json"), qwen15);
  const bad: [object, RegExp][] = [
    [{ ...qwen3, headDim: undefined, numHeads: 48 }, /numHeads.*not divisible by 48 heads.*headDim/],
    [
      { ...qwen3, moe: { ...qwen3.moe, sharedExperts: 1, sharedExpertFfnSize: 768 } },
      /moe\.sharedExperts.*qwen3_moe checkpoints have no shared experts/,
    ],
    [{ ...qwen15, moe: { ...qwen15.moe, sharedExperts: 2 } }, /moe\.sharedExperts.*exactly one shared expert/],
    [{ ...qwen15, moe: { ...qwen15.moe, sharedExpertFfnSize: undefined } }, /moe\.sharedExpertFfnSize.*missing/],
    [{ ...qwen15, moe: undefined }, /moe.*qwen2_moe model needs its MoE fields/],
    [{ ...qwen15, moe: { ...qwen15.moe, expertsPerToken: 61 } }, /moe\.expertsPerToken/],
    [{ ...findCatalogueModel("opt-125m")!, headDim: 32 }, /headDim.*OPT heads/],
  ];
  for (const [spec, pattern] of bad) {
    assert.throws(() => parseModelSpec(JSON.parse(JSON.stringify(spec)), "m.json"), pattern, JSON.stringify(pattern));
  }
  // Expert FFN may now differ from ffnSize (the dense intermediate size).
  assert.notEqual(qwen3.ffnSize, qwen3.moe!.expertFfnSize);
  assert.equal(layerParams(qwen3), 623_120_640);
});

// Qwen2.5-7B's published config.json (architecture fields).
const QWEN25_7B_CONFIG = {
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  hidden_act: "silu",
  hidden_size: 3584,
  intermediate_size: 18944,
  max_position_embeddings: 131072,
  max_window_layers: 28,
  num_attention_heads: 28,
  num_hidden_layers: 28,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 131072,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  use_sliding_window: false,
  vocab_size: 152064,
};

test("a dense qwen2 config.json is read with its q/k/v biases, planned, and scored by llama.cpp", async () => {
  await loadLpSolvers();
  const qwen = modelSpecFromHfConfig(QWEN25_7B_CONFIG, "/models/Qwen2.5-7B/config.json");
  assert.equal(qwen.name, "Qwen2.5-7B");
  assert.equal(qwen.family, "qwen2");
  assert.equal(qwen.moe, undefined);
  // The checkpoint's tensors: model.safetensors.index.json total_size 15,231,233,024 bytes of bf16 = 7,615,616,512
  // values; without the q/k/v biases (3584 + 512 + 512 per layer) the count would be 129,024 short.
  assert.equal(totalParams(qwen), 7_615_616_512);
  const names = layerWeightTensors(qwen).map((t) => t.name);
  for (const bias of ["self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"])
    assert.ok(names.includes(bias), bias);
  assert.ok(!layerWeightTensors(findCatalogueModel("llama-2-7b")!).some((t) => t.name.endsWith(".bias")));
  // llama.cpp's qwen2 architecture stores the biases too (attn_q.bias ...). An F16 file keeps 1-D tensors
  // (norms and biases) in F32: 28 x (2 norms of 3584 + biases 3584 + 512 + 512) + the output norm's 3584.
  const gguf = ggufFile(qwen, "F16");
  const vectorValues = 28 * (2 * 3584 + 3584 + 512 + 512) + 3584;
  assert.equal(gguf.totalBytes, 2 * 7_615_616_512 + 2 * vectorValues);
  assert.ok(gguf.layers[0]!.some((t) => t.name === "blk.0.attn_k.bias"));
  // A Spillway model file round-trips the family.
  assert.deepEqual(parseModelSpec(JSON.parse(JSON.stringify(qwen)), "q.json"), qwen);
  const plan = planSync({
    model: qwen,
    hardware: loadShippedProfile("t4"),
    workload: { promptLen: 512, genLen: 32 },
  });
  assert.equal(plan.predicted.feasible, true);
  assert.ok(plan.predicted.throughputTokensPerSecond > 0);
  const onLlamaCpp = predictPlanOnEngine(plan, "llama.cpp", loadShippedProfile("t4"));
  assert.ok(onLlamaCpp.throughputTokensPerSecond > 0);
  assert.throws(
    () => modelSpecFromHfConfig({ ...QWEN25_7B_CONFIG, use_sliding_window: true }, "q/config.json"),
    /q\/config\.json.*use_sliding_window.*not modelled/,
  );
});
