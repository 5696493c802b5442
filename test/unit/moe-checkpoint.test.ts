import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { layerWeightTensors } from "../../core/model-spec.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { resolveModel } from "../../models/resolve-model.js";
import { fromFloat16Array } from "../../runtime/fp16.js";
import { route } from "../../runtime/moe/mixtral-model.js";
import { loadMoeCheckpoint } from "../../runtime/moe/moe-checkpoint.js";
import { allResident, runMoe } from "../../runtime/moe/moe-runner.js";
import { moeTensorShapes } from "../../runtime/moe/moe-tensor-shapes.js";
import { seededTensors } from "../../runtime/moe/synth-mixtral-weights.js";
import { hfQwen2MoeConfig, synthesizeMoeWeights } from "../../runtime/moe/synth-moe-weights.js";
import { writeSafetensors } from "../../runtime/safetensors.js";
import { expectInputError } from "../helpers.js";

const MIXTRAL = findCatalogueModel("mixtral-tiny")!;
const QWEN = findCatalogueModel("qwen2-moe-tiny")!;
let root = "";
const dirs: Record<string, string> = {};

before(() => {
  root = mkdtempSync(join(tmpdir(), "spillway-moe-checkpoint-"));
  for (const model of [MIXTRAL, QWEN]) {
    dirs[model.name] = join(root, model.name);
    synthesizeMoeWeights(model, dirs[model.name]!, { seed: 11 });
  }
});
after(() => rmSync(root, { recursive: true, force: true }));

test("synth-weights' MoE checkpoints read back as the catalogue spec, with each family's config and tensors", () => {
  for (const model of [MIXTRAL, QWEN]) {
    const dir = dirs[model.name]!;
    assert.deepEqual(resolveModel(dir), model, "plan --model DIR reads the same spec");
    const checkpoint = loadMoeCheckpoint(dir);
    try {
      assert.deepEqual(checkpoint.config.model, model);
      assert.equal(checkpoint.config.ropeTheta, 1e6);
      assert.equal(checkpoint.config.normTopKProb, model.family === "mixtral");
      assert.equal(checkpoint.config.rmsNormEps, model.family === "mixtral" ? 1e-5 : 1e-6);
      for (const t of layerWeightTensors(model))
        assert.ok(checkpoint.fp16Bytes(`model.layers.3.${t.name}`).byteLength === 2 * t.params, t.name);
    } finally {
      checkpoint.close();
    }
  }
  const names = moeTensorShapes(QWEN).map((t) => t.name);
  for (const name of [
    "model.layers.0.self_attn.q_proj.bias",
    "model.layers.0.mlp.gate.weight",
    "model.layers.0.mlp.experts.7.down_proj.weight",
    "model.layers.0.mlp.shared_expert.up_proj.weight",
    "model.layers.0.mlp.shared_expert_gate.weight",
  ])
    assert.ok(names.includes(name), name);
  assert.ok(!moeTensorShapes(MIXTRAL).some((t) => t.name.includes("bias") || t.name.includes("shared")));
});

/** A copy of the Qwen checkpoint with its tensors changed by `edit` (config as given). */
function editedCheckpoint(name: string, edit: (shapes: { name: string; shape: number[] }[]) => void, config = {}) {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const shapes = moeTensorShapes(QWEN).map((t) => ({ name: t.name, shape: [...t.shape] }));
  edit(shapes);
  writeSafetensors(join(dir, "model.safetensors"), seededTensors(shapes, QWEN, 1));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...hfQwen2MoeConfig(QWEN), ...config }));
  return dir;
}

test("a checkpoint that does not match its config.json is refused naming the file, the tensor and both shapes", () => {
  const wrong = editedCheckpoint("wrong-shape", (shapes) => {
    shapes.find((t) => t.name === "model.layers.2.mlp.shared_expert_gate.weight")!.shape = [2, 64];
  });
  assert.throws(
    () => loadMoeCheckpoint(wrong),
    expectInputError(
      /wrong-shape\/model\.safetensors: tensor model\.layers\.2\.mlp\.shared_expert_gate\.weight: shape \[2, 64\] does not match the config, expected \[1, 64\]/,
    ),
  );
  const missing = editedCheckpoint("missing", (shapes) => {
    shapes.splice(
      shapes.findIndex((t) => t.name === "model.layers.1.mlp.experts.3.up_proj.weight"),
      1,
    );
  });
  assert.throws(
    () => loadMoeCheckpoint(missing),
    expectInputError(
      /checkpoint is missing 1 of the \d+ tensors qwen2-moe-tiny needs: model\.layers\.1\.mlp\.experts\.3\.up_proj\.weight/,
    ),
  );
  // The config's expert width against the tensors': every expert matrix is named.
  const narrow = editedCheckpoint("narrow", () => {}, { moe_intermediate_size: 64 });
  assert.throws(
    () => loadMoeCheckpoint(narrow),
    expectInputError(
      /tensor model\.layers\.0\.mlp\.experts\.0\.gate_proj\.weight: shape \[128, 64\] does not match the config, expected \[64, 64\]/,
    ),
  );
  const olmoe = editedCheckpoint("olmoe", () => {}, { model_type: "olmoe", intermediate_size: 128 });
  assert.throws(
    () => loadMoeCheckpoint(olmoe),
    expectInputError(/config\.json: model_type: the MoE runtime runs mixtral and qwen2_moe checkpoints, got "olmoe"/),
  );
  const scaled = editedCheckpoint("scaled", () => {}, { rope_scaling: { type: "linear", factor: 2 } });
  assert.throws(() => loadMoeCheckpoint(scaled), expectInputError(/config\.json: rope_scaling: is not implemented/));
});

/**
 * An independent forward pass of both families, written from Hugging Face's modeling_mixtral.py and
 * modeling_qwen2_moe.py with plain float64 loops, one token at a time: RMSNorm, q/k/v (Qwen: with
 * biases), rotate_half RoPE, grouped-query causal attention, o_proj, residual; RMSNorm, softmax router,
 * top-k (renormalised when norm_topk_prob; always for Mixtral), SwiGLU experts, Qwen's sigmoid-gated
 * shared expert, residual; final norm, LM head, argmax.
 */
function naiveGreedy(dir: string, prompt: readonly number[], genLen: number): number[] {
  const checkpoint = loadMoeCheckpoint(dir);
  const { model, ropeTheta, rmsNormEps, normTopKProb } = checkpoint.config;
  const get = (name: string) => {
    const bytes = checkpoint.fp16Bytes(name);
    return Array.from(fromFloat16Array(new Uint16Array(bytes.slice().buffer)));
  };
  const h = model.hiddenSize;
  const nh = model.numHeads;
  const nkv = model.numKvHeads;
  const d = h / nh;
  const moe = model.moe!;
  const qwen = model.family === "qwen2_moe";
  const linear = (x: number[], w: number[], out: number, b?: number[]) =>
    Array.from({ length: out }, (_, o) => x.reduce((a, v, i) => a + v * w[o * x.length + i]!, b ? b[o]! : 0));
  const norm = (x: number[], w: number[]) => {
    const rms = Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length + rmsNormEps);
    return x.map((v, i) => (v / rms) * w[i]!);
  };
  const silu = (v: number) => v / (1 + Math.exp(-v));
  const swiglu = (x: number[], gate: number[], up: number[], down: number[], f: number) => {
    const g = linear(x, gate, f);
    const u = linear(x, up, f);
    return linear(
      g.map((v, i) => silu(v) * u[i]!),
      down,
      h,
    );
  };
  const rope = (v: number[], heads: number, pos: number) => {
    const out = v.slice();
    for (let head = 0; head < heads; head++)
      for (let i = 0; i < d / 2; i++) {
        const angle = pos * ropeTheta ** ((-2 * i) / d);
        const a = v[head * d + i]!;
        const b = v[head * d + i + d / 2]!;
        out[head * d + i] = a * Math.cos(angle) - b * Math.sin(angle);
        out[head * d + i + d / 2] = b * Math.cos(angle) + a * Math.sin(angle);
      }
    return out;
  };
  const embed = get("model.embed_tokens.weight");
  const layers = Array.from({ length: model.numLayers }, (_, l) => {
    const p = `model.layers.${l}.`;
    const m = qwen ? "mlp" : "block_sparse_moe";
    const [g, u, dn] = qwen ? ["gate_proj", "up_proj", "down_proj"] : ["w1", "w3", "w2"];
    return {
      inputNorm: get(`${p}input_layernorm.weight`),
      postNorm: get(`${p}post_attention_layernorm.weight`),
      q: get(`${p}self_attn.q_proj.weight`),
      k: get(`${p}self_attn.k_proj.weight`),
      v: get(`${p}self_attn.v_proj.weight`),
      o: get(`${p}self_attn.o_proj.weight`),
      biases: qwen ? ["q", "k", "v"].map((x) => get(`${p}self_attn.${x}_proj.bias`)) : undefined,
      router: get(`${p}${m}.gate.weight`),
      experts: Array.from({ length: moe.numExperts }, (_, e) =>
        [g, u, dn].map((x) => get(`${p}${m}.experts.${e}.${x}.weight`)),
      ),
      shared: qwen
        ? ["gate_proj", "up_proj", "down_proj"].map((x) => get(`${p}mlp.shared_expert.${x}.weight`))
        : undefined,
      sharedGate: qwen ? get(`${p}mlp.shared_expert_gate.weight`) : undefined,
    };
  });
  const finalNorm = get("model.norm.weight");
  const head = get("lm_head.weight");
  checkpoint.close();
  const keys: number[][][] = layers.map(() => []);
  const values: number[][][] = layers.map(() => []);
  const out: number[] = [];
  let input = [...prompt];
  let pos = 0;
  for (let step = 0; step < genLen; step++) {
    let last: number[] = [];
    for (const id of input) {
      let x = embed.slice(id * h, (id + 1) * h);
      layers.forEach((w, l) => {
        const y = norm(x, w.inputNorm);
        const q = rope(linear(y, w.q, nh * d, w.biases?.[0]), nh, pos);
        keys[l]!.push(rope(linear(y, w.k, nkv * d, w.biases?.[1]), nkv, pos));
        values[l]!.push(linear(y, w.v, nkv * d, w.biases?.[2]));
        const attended = new Array<number>(nh * d).fill(0);
        for (let hh = 0; hh < nh; hh++) {
          const kv = Math.floor(hh / (nh / nkv));
          const scores = keys[l]!.map((k) => {
            let s = 0;
            for (let c = 0; c < d; c++) s += q[hh * d + c]! * k[kv * d + c]!;
            return s / Math.sqrt(d);
          });
          const top = Math.max(...scores);
          const e = scores.map((s) => Math.exp(s - top));
          const z = e.reduce((a, s) => a + s, 0);
          e.forEach((pr, j) => {
            for (let c = 0; c < d; c++) attended[hh * d + c]! += (pr / z) * values[l]![j]![kv * d + c]!;
          });
        }
        const o = linear(attended, w.o, h);
        x = x.map((v, i) => v + o[i]!);
        const xn = norm(x, w.postNorm);
        const logits = linear(xn, w.router, moe.numExperts);
        const top = Math.max(...logits);
        const probs = logits.map((v) => Math.exp(v - top));
        const z = probs.reduce((a, v) => a + v, 0);
        const order = probs.map((_, e) => e).sort((a, b) => probs[b]! - probs[a]! || a - b);
        const chosen = order.slice(0, moe.expertsPerToken);
        const chosenSum = chosen.reduce((a, e) => a + probs[e]! / z, 0);
        const mixed = new Array<number>(h).fill(0);
        for (const e of chosen) {
          const weight = probs[e]! / z / (normTopKProb ? chosenSum : 1);
          const [g, u, dn] = w.experts[e]!;
          swiglu(xn, g!, u!, dn!, moe.expertFfnSize).forEach((v, i) => {
            mixed[i]! += weight * v;
          });
        }
        if (w.shared) {
          const gate = 1 / (1 + Math.exp(-linear(xn, w.sharedGate!, 1)[0]!));
          swiglu(xn, w.shared[0]!, w.shared[1]!, w.shared[2]!, moe.sharedExpertFfnSize!).forEach((v, i) => {
            mixed[i]! += gate * v;
          });
        }
        x = x.map((v, i) => v + mixed[i]!);
      });
      last = x;
      pos++;
    }
    const logits = linear(norm(last, finalNorm), head, model.vocabSize);
    const next = logits.indexOf(Math.max(...logits));
    out.push(next);
    input = [next];
  }
  return out;
}

test("the runtime's greedy tokens equal an independent float64 forward pass, for Mixtral and for Qwen2-MoE", async () => {
  const prompts = [
    [5, 17, 99, 3, 200, 41],
    [250, 8, 77, 130, 2, 64],
  ];
  for (const model of [MIXTRAL, QWEN]) {
    const dir = dirs[model.name]!;
    const r = await runMoe({
      weightsDir: dir,
      policy: { ...allResident(model), cacheSize: 2, eviction: "lru", compute: "cpu" },
      promptTokens: prompts,
      genLen: 6,
    });
    assert.equal(r.matchesReference, true, model.name);
    const expected = prompts.map((p) => naiveGreedy(dir, p, 6));
    assert.deepEqual(r.referenceTokens, expected, model.name);
    assert.ok(new Set(expected.flat()).size > 4, `${model.name}: the model does not repeat one token`);
  }
});

test("Qwen2-MoE's router keeps the top-k softmax probabilities unless norm_topk_prob", () => {
  const experts = new Int32Array(2);
  const kept = new Float32Array(2);
  route(Float32Array.from([0.1, 2, -1, 1.5]), 2, experts, kept, false);
  const probs = [0.1, 2, -1, 1.5].map(Math.exp);
  const z = probs.reduce((a, b) => a + b, 0);
  assert.deepEqual([...experts], [1, 3]);
  assert.ok(Math.abs(kept[0]! - probs[1]! / z) < 1e-6 && Math.abs(kept[1]! - probs[3]! / z) < 1e-6);
  assert.ok(kept[0]! + kept[1]! < 0.95);
});
