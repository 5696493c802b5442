import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers.js";

/** Llama-2-7B's published config.json (meta-llama/Llama-2-7b-hf). */
const LLAMA_2_7B = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 4096,
  intermediate_size: 11008,
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 32,
  vocab_size: 32000,
  max_position_embeddings: 4096,
  hidden_act: "silu",
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
  torch_dtype: "float16",
};

test("a plan made from a Llama config.json works end to end: plan, simulate, and the same plan from standard input", () => {
  const dir = mkdtempSync(join(tmpdir(), "spillway-llama-"));
  try {
    const config = join(dir, "config.json");
    writeFileSync(config, JSON.stringify(LLAMA_2_7B));
    const planPath = join(dir, "p.json");
    const planned = runCli([
      "plan",
      "--model",
      config,
      "--hardware",
      "rtx3060",
      "--prompt-len",
      "256",
      "--gen-len",
      "16",
      "--out",
      planPath,
      "--json",
    ]);
    assert.equal(planned.status, 0, planned.stderr);
    const p = JSON.parse(planned.stdout) as {
      modelSpec: { family: string; numLayers: number; ffnKind: string };
      predicted: { feasible: boolean; bytes: Record<string, number> };
    };
    assert.deepEqual([p.modelSpec.family, p.modelSpec.numLayers, p.modelSpec.ffnKind], ["llama", 32, "swiglu"]);
    assert.equal(p.predicted.feasible, true);
    const simulated = runCli(["simulate", planPath, "--json"]);
    assert.equal(simulated.status, 0, simulated.stderr);
    const s = JSON.parse(simulated.stdout) as { bytes: Record<string, number>; overflow?: unknown };
    assert.equal(s.overflow, undefined);
    for (const link of ["h2d", "d2h", "diskRead", "diskWrite"]) {
      assert.ok(
        Math.abs(s.bytes[link]! - p.predicted.bytes[link]!) <= 0.01 * Math.max(1, p.predicted.bytes[link]!),
        link,
      );
    }
    const fromStdin = runCli(
      ["plan", "--model", "-", "--hardware", "rtx3060", "--prompt-len", "256", "--gen-len", "16", "--json"],
      JSON.stringify(LLAMA_2_7B),
    );
    assert.equal(fromStdin.status, 0, fromStdin.stderr);
    assert.deepEqual(JSON.parse(fromStdin.stdout).policy, JSON.parse(planned.stdout).policy);
    const unknown = join(dir, "gpt2.json");
    writeFileSync(unknown, JSON.stringify({ model_type: "gpt2", n_embd: 768 }));
    const refused = runCli(["plan", "--model", unknown]);
    assert.equal(refused.status, 2);
    assert.match(
      refused.stderr,
      /gpt2\.json: model_type: unsupported model type "gpt2"; supported: .*llama.*qwen3_moe/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
