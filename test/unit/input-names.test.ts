/**
 * Names are printed raw, so a name with a control character (an escape sequence) is refused where it is
 * read, naming the field; error messages that quote a file's bytes are printed as one escaped line.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { oneLine } from "../../cli/one-line.js";
import { parseHardwareProfile } from "../../core/hardware-profile.js";
import { InputError } from "../../core/input-error.js";
import { parseModelSpec } from "../../core/parse-model-spec.js";
import { parsePlan } from "../../core/parse-plan.js";
import { loadShippedProfile } from "../../core/resolve-hardware.js";
import { modelSpecFromHfConfig } from "../../models/hf-config.js";
import { plan } from "../../planner/plan.js";
import { TINY_OPT } from "../helpers.js";

const ESCAPE = "\u001b]0;owned\u0007";
const refused = (field: string) => (e: unknown) =>
  e instanceof InputError && e.message.includes(`${field}: expected a name without control characters`);

test("a hardware profile's names with control characters are refused, naming the field", () => {
  const profile = structuredClone(loadShippedProfile("rtx3090")) as unknown as Record<string, Record<string, unknown>>;
  for (const [path, set] of [
    ["name", (p: typeof profile) => Object.assign(p, { name: `rtx${ESCAPE}` })],
    ["gpu.name", (p: typeof profile) => Object.assign(p.gpu!, { name: `gpu\u001b[2J` })],
    ["cpu.name", (p: typeof profile) => Object.assign(p.cpu!, { name: "cpu\u009b" })],
  ] as const) {
    const copy = structuredClone(profile);
    set(copy);
    assert.throws(() => parseHardwareProfile(copy, "p.json"), refused(path));
  }
});

test("model specs, Hugging Face configs and plans with control characters in names are refused", async () => {
  assert.throws(() => parseModelSpec({ ...TINY_OPT, name: `tiny${ESCAPE}` }, "m.json"), refused("name"));
  const config = {
    model_type: "opt",
    hidden_size: 64,
    num_attention_heads: 4,
    num_hidden_layers: 2,
    ffn_dim: 256,
    vocab_size: 512,
    max_position_embeddings: 256,
  };
  assert.throws(
    () => modelSpecFromHfConfig({ ...config, _name_or_path: `org/x\u001b[31m` }, "c.json"),
    refused("_name_or_path"),
  );
  assert.throws(
    () => modelSpecFromHfConfig(config, `/tmp/bad\u001b[31mname.json`),
    refused("name (from the file's path)"),
  );
  assert.equal(modelSpecFromHfConfig(config, "/tmp/fine-name.json").name, "fine-name");
  const made = await plan({
    model: TINY_OPT,
    hardware: loadShippedProfile("rtx3090"),
    workload: { promptLen: 16, genLen: 4 },
    fixed: {
      gbs: 4,
      nb: 1,
      percent: [100, 0, 100, 0, 100, 0],
      compressWeight: false,
      compressCache: false,
      cpuAttention: false,
    },
  });
  const json = JSON.parse(JSON.stringify(made)) as Record<string, unknown>;
  assert.equal(parsePlan(json, "p.json").model, TINY_OPT.name);
  assert.throws(() => parsePlan({ ...json, hardware: `rtx${ESCAPE}` }, "p.json"), refused("hardware"));
  assert.throws(
    () => parsePlan({ ...json, modelSpec: { ...(json.modelSpec as object), name: "a\u202eb" } }, "p.json"),
    refused("modelSpec.name"),
  );
});

test("oneLine escapes newlines and control characters, keeping the rest", () => {
  assert.equal(
    oneLine('p.json: not valid JSON: Unexpected token, "\u001b[2J\n{" is'),
    'p.json: not valid JSON: Unexpected token, "\\u001b[2J\\n{" is',
  );
  assert.equal(oneLine("plain – ünïcode"), "plain – ünïcode");
});
