import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { runSynthWeights } from "../../cli/synth-weights-command.js";
import { type ModelSpec, totalParams } from "../../core/model-spec.js";
import type { Progress } from "../../core/progress.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { loadOptCheckpoint, optTensorShapes, readOptConfig } from "../../runtime/opt-checkpoint.js";
import { openSafetensors, type TensorToWrite, writeSafetensors } from "../../runtime/safetensors.js";
import { INIT_STD, optTensorInit, synthesizeOptWeights } from "../../runtime/synth-weights.js";
import { expectInputError } from "../helpers.js";
import { assertProgressPhases } from "../progress-checks.js";

const root = mkdtempSync(join(tmpdir(), "spillway-synth-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** A small OPT with narrower token embeddings (like opt-350m), so project_in/out are exercised. */
const TINY: ModelSpec = {
  name: "tiny-opt",
  family: "opt",
  numLayers: 2,
  hiddenSize: 64,
  ffnSize: 256,
  numHeads: 4,
  numKvHeads: 4,
  vocabSize: 1000,
  maxPositions: 128,
  ffnKind: "relu",
  wordEmbedDim: 32,
  tiedEmbeddings: true,
  bytesPerParam: 2,
};

function stats(values: Float32Array): { mean: number; std: number } {
  let sum = 0;
  let squares = 0;
  for (const v of values) {
    sum += v;
    squares += v * v;
  }
  const mean = sum / values.length;
  return { mean, std: Math.sqrt(squares / values.length - mean * mean) };
}

/**
 * Pinned digests of model.safetensors: the same seed must give the same bytes on every machine and in
 * every version, so a change here (to the generator, the names or the header) has to be deliberate.
 */
const TINY_SEED1_SHA256 = "4bc96e61500ad44bba9c0b9496f869dae0febf4968735f2d03d3d1c1aa3eac8d";
const OPT125M_SEED0_SHA256 = "e20186b93244c54b0be1a28c1601e1b99c43ef1222c8f8f018269a0cd370dede";

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function filesOf(dir: string): Map<string, Buffer> {
  return new Map(
    readdirSync(dir)
      .sort()
      .map((name) => [name, readFileSync(join(dir, name))]),
  );
}

test("synthetic weights are deterministic: same seed, same bytes; another seed, other values", () => {
  const a = join(root, "seed1-a");
  const b = join(root, "seed1-b");
  const c = join(root, "seed2");
  const result = synthesizeOptWeights(TINY, a, { seed: 1 });
  synthesizeOptWeights(TINY, b, { seed: 1 });
  synthesizeOptWeights(TINY, c, { seed: 2 });
  assert.deepEqual(result.files, [join(a, "model.safetensors"), join(a, "config.json")]);
  assert.equal(
    result.bytes,
    [...filesOf(a).values()].reduce((sum, data) => sum + data.length, 0),
  );
  assert.deepEqual(filesOf(a), filesOf(b));
  assert.equal(sha256(join(a, "model.safetensors")), TINY_SEED1_SHA256);
  const one = loadOptCheckpoint(a);
  const two = loadOptCheckpoint(c);
  try {
    for (const name of ["model.decoder.embed_tokens.weight", "model.decoder.layers.1.fc2.bias"]) {
      assert.notDeepEqual(one.tensor(name), two.tensor(name), name);
    }
    // Constants do not depend on the seed.
    assert.deepEqual(
      one.tensor("model.decoder.layers.0.final_layer_norm.weight"),
      two.tensor("model.decoder.layers.0.final_layer_norm.weight"),
    );
  } finally {
    one.close();
    two.close();
  }
});

test("config.json reads back as the model, and every tensor is there with its shape", () => {
  const dir = join(root, "seed1-a");
  assert.deepEqual(readOptConfig(dir), TINY);
  const weights = loadOptCheckpoint(dir);
  try {
    const expected = optTensorShapes(TINY);
    assert.equal(expected.length, 2 * 16 + 6);
    for (const { name, shape } of expected) assert.deepEqual(weights.info(name).shape, shape, name);
    assert.equal(
      expected.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0),
      totalParams(TINY),
    );
    assert.deepEqual(weights.embeddingTensorNames(), [
      "model.decoder.embed_tokens.weight",
      "model.decoder.embed_positions.weight",
      "model.decoder.project_in.weight",
      "model.decoder.final_layer_norm.weight",
      "model.decoder.final_layer_norm.bias",
      "model.decoder.project_out.weight",
    ]);
    assert.equal(weights.layerTensorNames(1)[10], "model.decoder.layers.1.fc1.weight");
    assert.throws(() => weights.layerTensorNames(2), /layer 2 is out of range/);
    assert.deepEqual(weights.tensor("model.decoder.project_in.weight").length, 64 * 32);
  } finally {
    weights.close();
  }
});

test("large checkpoints are sharded in Hugging Face's layout and load the same", () => {
  const dir = join(root, "sharded");
  const reports: Progress[] = [];
  const result = synthesizeOptWeights(TINY, dir, {
    seed: 1,
    maxShardBytes: 64 * 1024,
    onProgress: (p) => reports.push(p),
  });
  // Progress in bytes of tensor data, naming the shard and the tensor being written.
  assertProgressPhases(reports, ["synth-weights"]);
  assert.ok(reports.every((p) => p.unit === "bytes"));
  assert.equal(reports[0]!.total, 2 * totalParams(TINY));
  assert.match(reports.at(-1)!.detail!, /^model-000\d\d-of-000\d\d\.safetensors: model\.decoder\./);
  const shards = readdirSync(dir)
    .filter((n) => n.endsWith(".safetensors"))
    .sort();
  assert.ok(shards.length > 2, `${shards.length} shards`);
  assert.match(shards[0]!, /^model-00001-of-000\d\d\.safetensors$/);
  for (const shard of shards) {
    const size = readFileSync(join(dir, shard)).length;
    const file = openSafetensors(join(dir, shard));
    const single = file.names().length === 1;
    file.close();
    assert.ok(size <= 64 * 1024 || single, `${shard} is ${size} bytes`);
  }
  assert.ok(result.files.includes(join(dir, "model.safetensors.index.json")));
  const index = JSON.parse(readFileSync(join(dir, "model.safetensors.index.json"), "utf8")) as {
    metadata: { total_size: number };
    weight_map: Record<string, string>;
  };
  assert.equal(index.metadata.total_size, 2 * totalParams(TINY));
  assert.equal(Object.keys(index.weight_map).length, optTensorShapes(TINY).length);

  const sharded = loadOptCheckpoint(dir);
  const single = loadOptCheckpoint(join(root, "seed1-a"));
  try {
    for (const { name } of optTensorShapes(TINY)) assert.deepEqual(sharded.tensor(name), single.tensor(name), name);
  } finally {
    sharded.close();
    single.close();
  }

  // Writing a single-file checkpoint over it removes the shards and index, which would otherwise shadow it.
  synthesizeOptWeights(TINY, dir, { seed: 1 });
  assert.deepEqual(readdirSync(dir).sort(), ["config.json", "model.safetensors"]);
});

/** Copies the tiny checkpoint's tensors into a new folder, renamed, reshaped or dropped by `edit`. */
function editedCheckpoint(
  name: string,
  edit: (tensor: TensorToWrite) => TensorToWrite | undefined,
  extra: TensorToWrite[] = [],
): string {
  const source = join(root, "seed1-a");
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(source, "config.json"), join(dir, "config.json"));
  const file = openSafetensors(join(source, "model.safetensors"));
  try {
    const tensors = file
      .names()
      .map((n): TensorToWrite | undefined =>
        edit({ name: n, dtype: "F32", shape: file.info(n).shape, data: file.readFloat32(n) }),
      );
    writeSafetensors(join(dir, "model.safetensors"), [...tensors.filter((t) => t !== undefined), ...extra]);
  } finally {
    file.close();
  }
  return dir;
}

test("a checkpoint missing tensors names them and counts them", () => {
  const dir = editedCheckpoint("missing", (t) => (t.name.includes("layers.1.") ? undefined : t));
  assert.throws(
    () => loadOptCheckpoint(dir),
    expectInputError(
      /missing 16 of the 38 tensors tiny-opt needs: model\.decoder\.layers\.1\.self_attn\.q_proj\.weight, .*, model\.decoder\.layers\.1\.self_attn\.v_proj\.weight and 11 more/,
    ),
  );
  const one = editedCheckpoint("missing-one", (t) =>
    t.name === "model.decoder.final_layer_norm.bias" ? undefined : t,
  );
  assert.throws(
    () => loadOptCheckpoint(one),
    expectInputError(/missing 1 of the 38 tensors tiny-opt needs: model\.decoder\.final_layer_norm\.bias$/),
  );
});

test("a tensor of the wrong shape is named with both shapes", () => {
  const dir = editedCheckpoint("wrong-shape", (t) =>
    t.name === "model.decoder.layers.1.fc1.weight" ? { ...t, shape: [64, 256] } : t,
  );
  assert.throws(
    () => loadOptCheckpoint(dir),
    expectInputError(
      /model\.safetensors: tensor model\.decoder\.layers\.1\.fc1\.weight: shape \[64, 256\] does not match the config, expected \[256, 64\]/,
    ),
  );
  // The same checkpoint against a bigger config: the first mismatch is the token embedding.
  assert.throws(
    () => loadOptCheckpoint(join(root, "seed1-a"), { ...TINY, vocabSize: 2000 }),
    expectInputError(
      /tensor model\.decoder\.embed_tokens\.weight: shape \[1000, 32\] does not match the config, expected \[2000, 32\]/,
    ),
  );
});

test("checkpoints without the model. prefix, or with an lm_head, load", () => {
  const lmHead: TensorToWrite = {
    name: "lm_head.weight",
    dtype: "F16",
    shape: [1000, 32],
    data: new Uint16Array(32000),
  };
  const dir = editedCheckpoint("no-prefix", (t) => ({ ...t, name: t.name.replace(/^model\./, "") }), [lmHead]);
  const renamed = loadOptCheckpoint(dir);
  const original = loadOptCheckpoint(join(root, "seed1-a"));
  try {
    assert.equal(renamed.info("model.decoder.layers.0.fc1.weight").storedName, "decoder.layers.0.fc1.weight");
    assert.deepEqual(
      renamed.tensor("model.decoder.layers.0.fc1.weight"),
      original.tensor("model.decoder.layers.0.fc1.weight"),
    );
  } finally {
    renamed.close();
    original.close();
  }
});

test("folders without weights, broken indexes and non-OPT models are refused clearly", () => {
  const empty = join(root, "empty");
  mkdirSync(empty, { recursive: true });
  copyFileSync(join(root, "seed1-a", "config.json"), join(empty, "config.json"));
  assert.throws(
    () => loadOptCheckpoint(empty),
    expectInputError(/no \*\.safetensors files; expected model\.safetensors or shards/),
  );
  assert.throws(
    () => readOptConfig(join(root, "nowhere")),
    expectInputError(/nowhere: no such folder; expected a checkpoint folder/),
  );
  mkdirSync(join(root, "no-config"), { recursive: true });
  assert.throws(() => readOptConfig(join(root, "no-config")), expectInputError(/no config\.json in this folder/));
  writeFileSync(
    join(empty, "model.safetensors.index.json"),
    JSON.stringify({ weight_map: { "model.decoder.embed_tokens.weight": "model-00001-of-00002.safetensors" } }),
  );
  assert.throws(
    () => loadOptCheckpoint(empty),
    expectInputError(
      /weight_map\.model\.decoder\.embed_tokens\.weight: shard model-00001-of-00002\.safetensors does not exist/,
    ),
  );

  const llama = findCatalogueModel("llama-2-7b")!;
  assert.throws(
    () => synthesizeOptWeights(llama, join(root, "llama"), { seed: 0 }),
    expectInputError(/^--model: synth-weights writes OPT checkpoints only; llama-2-7b is a llama model/),
  );
  assert.throws(() => synthesizeOptWeights(TINY, join(root, "bad-seed"), { seed: -1 }), expectInputError(/^--seed:/));
});

test("a checkpoint bigger than the free disk space is refused before anything is written", () => {
  const dir = join(root, "too-big");
  mkdirSync(dir, { recursive: true });
  const free = statfsSync(dir).bavail * statfsSync(dir).bsize;
  // Layers of 12 x 8192^2 fp16 values (1.5 GiB each), enough of them for twice the free space.
  const huge: ModelSpec = {
    ...TINY,
    name: "huge-opt",
    hiddenSize: 8192,
    ffnSize: 4 * 8192,
    numHeads: 64,
    numKvHeads: 64,
    wordEmbedDim: 8192,
    numLayers: Math.ceil((2 * free) / (24 * 8192 ** 2)) + 1,
  };
  assert.throws(
    () => synthesizeOptWeights(huge, dir, { seed: 0 }),
    expectInputError(
      /^--out: not enough disk space for huge-opt: the checkpoint needs .* GiB \(\d+ bytes\), .* has .* \(\d+ bytes\) free/,
    ),
  );
  assert.deepEqual(readdirSync(dir), []);
  assert.throws(
    () => synthesizeOptWeights(huge, join(dir, "new", "folder"), { seed: 0 }),
    expectInputError(/not enough disk space/),
  );
  assert.deepEqual(readdirSync(dir), [], "a refused run creates no folder");
});

test("spillway synth-weights prints a summary, or JSON", () => {
  const dir = join(root, "cli");
  const configDir = join(root, "seed1-a");
  const output = captureStdout(() => runSynthWeights({ model: configDir, out: dir, seed: "5", json: true }));
  const printed = JSON.parse(output) as { model: string; dir: string; files: string[]; bytes: number; seed: number };
  assert.deepEqual(printed, {
    model: "tiny-opt",
    dir,
    files: [join(dir, "model.safetensors"), join(dir, "config.json")],
    bytes: printed.bytes,
    seed: 5,
  });
  const text = captureStdout(() => runSynthWeights({ model: configDir, out: dir, seed: undefined, json: false }));
  assert.match(
    text,
    /^Wrote tiny-opt weights \(seed 0\) to .*cli: 2 files, [\d.]+ KiB \(model\.safetensors, config\.json\)\n$/,
  );
  assert.throws(
    () => runSynthWeights({ model: configDir, out: dir, seed: "1.5", json: false }),
    expectInputError(/^--seed: expected an integer >= 0 <= 4294967295, got 1\.5/),
  );
});

function captureStdout(run: () => void): string {
  const write = process.stdout.write.bind(process.stdout);
  let text = "";
  process.stdout.write = ((chunk: string | Uint8Array): boolean => {
    text += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    return true;
  }) as typeof process.stdout.write;
  try {
    run();
  } finally {
    process.stdout.write = write;
  }
  return text;
}

// opt-125m is written once (about 250 MB, a few seconds) and shared by the checks below.
const opt125m = findCatalogueModel("opt-125m")!;
const opt125mDir = join(root, "opt-125m");
before(() => {
  synthesizeOptWeights(opt125m, opt125mDir, { seed: 0 });
});

test("opt-125m: config reads back to the catalogue spec, every tensor loads, values have the intended scale", () => {
  assert.deepEqual(readOptConfig(opt125mDir), opt125m);
  assert.equal(sha256(join(opt125mDir, "model.safetensors")), OPT125M_SEED0_SHA256);
  const weights = loadOptCheckpoint(opt125mDir);
  try {
    assert.equal(weights.info("model.decoder.embed_positions.weight").shape[0], 2050);
    const fc1 = stats(weights.tensor("model.decoder.layers.0.fc1.weight"));
    assert.ok(Math.abs(fc1.std - INIT_STD) < 0.1 * INIT_STD, `fc1 std ${fc1.std}`);
    assert.ok(Math.abs(fc1.mean) < 0.001, `fc1 mean ${fc1.mean}`);
    const residualStd = INIT_STD / Math.sqrt(2 * 12);
    const init = optTensorInit(opt125m, "model.decoder.layers.11.fc2.weight");
    assert.deepEqual(init, { kind: "normal", std: residualStd });
    const fc2 = stats(weights.tensor("model.decoder.layers.11.fc2.weight"));
    assert.ok(Math.abs(fc2.std - residualStd) < 0.1 * residualStd, `fc2 std ${fc2.std}`);
    const tokens = stats(weights.tensor("model.decoder.embed_tokens.weight"));
    assert.ok(Math.abs(tokens.std - INIT_STD) < 0.1 * INIT_STD, `embed_tokens std ${tokens.std}`);
    assert.ok(weights.tensor("model.decoder.layers.5.self_attn_layer_norm.weight").every((v) => v === 1));
    assert.ok(weights.tensor("model.decoder.final_layer_norm.bias").every((v) => v === 0));
    const bias = stats(weights.tensor("model.decoder.layers.3.fc1.bias"));
    assert.ok(bias.std > 0.01 && bias.std < 0.03, `fc1 bias std ${bias.std}`);
  } finally {
    weights.close();
  }
  const file = openSafetensors(join(opt125mDir, "model.safetensors"));
  try {
    assert.equal(file.info("model.decoder.layers.0.fc1.weight").dtype, "F16");
    assert.deepEqual(file.metadata(), { format: "pt", generator: "spillway synth-weights", seed: "0" });
  } finally {
    file.close();
  }
});
