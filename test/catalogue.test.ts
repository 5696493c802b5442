import assert from "node:assert/strict";
import { test } from "node:test";
import { activeParams, totalParams } from "../core/model-spec.js";
import { MODEL_CATALOGUE, findCatalogueModel } from "../models/catalogue.js";
import { modelSpecFromHfConfig } from "../models/hf-config.js";
import { runCli } from "./helpers.js";

// Published parameter counts (model cards), to 1%.
const PUBLISHED: Record<string, number> = {
  "opt-125m": 125e6, "opt-1.3b": 1.3e9, "opt-6.7b": 6.7e9, "opt-13b": 13e9, "opt-30b": 30e9, "opt-66b": 66e9, "opt-175b": 175e9,
  "llama-2-7b": 6.74e9, "llama-2-13b": 13.02e9, "llama-2-70b": 68.98e9, "mistral-7b": 7.24e9, "mixtral-8x7b": 46.7e9, "mixtral-8x22b": 140.6e9,
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
    "opt-6.7b": { model_type: "opt", hidden_size: 4096, num_hidden_layers: 32, ffn_dim: 16384, num_attention_heads: 32, vocab_size: 50272, max_position_embeddings: 2048, word_embed_proj_dim: 4096, activation_function: "relu", do_layer_norm_before: true, torch_dtype: "float16" },
    "llama-2-70b": { model_type: "llama", hidden_size: 8192, num_hidden_layers: 80, intermediate_size: 28672, num_attention_heads: 64, num_key_value_heads: 8, vocab_size: 32000, max_position_embeddings: 4096, hidden_act: "silu", tie_word_embeddings: false },
    "mistral-7b": { model_type: "mistral", hidden_size: 4096, num_hidden_layers: 32, intermediate_size: 14336, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 32000, max_position_embeddings: 32768, hidden_act: "silu" },
    "mixtral-8x7b": { model_type: "mixtral", hidden_size: 4096, num_hidden_layers: 32, intermediate_size: 14336, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 32000, max_position_embeddings: 32768, hidden_act: "silu", num_local_experts: 8, num_experts_per_tok: 2 },
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
  assert.deepEqual(rows.map((r) => r.name), MODEL_CATALOGUE.map((m) => m.name));
  for (const r of rows) assert.equal(r.fp16Bytes, r.params * 2);
  const text = runCli(["models"]);
  assert.match(text.stdout, /opt-175b\s+opt\s+96\s+12288\s+96\/96\s+174\.60B/);
});

test("a plan made from a Llama config.json works end to end", () => {
  const out = runCli(["plan", "--model", "-", "--hardware", "rtx3090", "--prompt-len", "256", "--gen-len", "16", "--json"],
    JSON.stringify({ model_type: "llama", _name_or_path: "meta-llama/Llama-2-13b-hf", hidden_size: 5120, num_hidden_layers: 40, intermediate_size: 13824, num_attention_heads: 40, vocab_size: 32000, max_position_embeddings: 4096 }));
  assert.equal(out.status, 0, out.stderr);
  const plan = JSON.parse(out.stdout);
  assert.equal(plan.model, "Llama-2-13b-hf");
  assert.equal(plan.predicted.feasible, true);
  assert.ok(plan.predicted.throughputTokensPerSecond > 0);
});
