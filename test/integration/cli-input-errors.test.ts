import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { runCli } from "../helpers.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-input-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const t4 = readFileSync(new URL("../../../profiles/t4.json", import.meta.url), "utf8");

const CASES: { name: string; args: string[]; expect: RegExp }[] = [
  {
    name: "a non-numeric --gpu-mem",
    args: ["plan", "--gpu-mem", "abc"],
    expect: /--gpu-mem: expected a number \(GiB\) >= 0, got "abc"/,
  },
  { name: "a negative --cpu-mem", args: ["plan", "--cpu-mem", "-4"], expect: /--cpu-mem: .*got -4/ },
  {
    name: "a --tensor-parallel that does not divide the node's GPUs",
    args: ["plan", "--model", "opt-125m", "--hardware", "1x4-t4", "--tensor-parallel", "3"],
    expect: /--tensor-parallel: expected one of 1, 2, 4 \(divisors of 1x4-t4's 4 GPUs per node.*got 3/,
  },
  {
    name: "a --tensor-parallel on one GPU",
    args: ["plan", "--tensor-parallel", "2"],
    expect: /--tensor-parallel: applies to cluster profiles only/,
  },
  {
    name: "an unknown model",
    args: ["plan", "--model", "opt-9000b"],
    expect: /--model: unknown model "opt-9000b"; expected a catalogue name/,
  },
  {
    name: "an unknown flag",
    args: ["plan", "--frobnicate", "3"],
    expect: /^spillway: unknown flag --frobnicate \(spillway plan --help\)$/m,
  },
  { name: "an unknown negated flag", args: ["plan", "--no-such-flag"], expect: /unknown flag --no-such-flag \(/ },
  {
    name: "an unknown command",
    args: ["plann"],
    expect: /^spillway: unknown command plann; expected one of plan, simulate, .* \(spillway --help\)$/m,
  },
  { name: "a missing plan file argument", args: ["simulate"], expect: /^spillway: simulate: missing its argument/ },
  {
    name: "a model FlexGen's cost model cannot cost",
    args: ["plan", "--model", "llama-2-7b", "--cost-model", "flexgen"],
    expect: /--cost-model: FlexGen's cost model covers OPT models only; llama-2-7b is a llama model/,
  },
  {
    name: "a wrong --percent count",
    args: ["plan", "--percent", "10", "20"],
    expect: /--percent: expected six numbers/,
  },
  {
    name: "an over-full --percent pair",
    args: ["plan", "--percent", "60", "50", "0", "100", "100", "0"],
    expect: /--percent: wg\+wc: weights on GPU and CPU add up to 110/,
  },
  { name: "a fractional --gbs", args: ["plan", "--gbs", "2.5"], expect: /--gbs: expected an integer >= 1, got 2.5/ },
  {
    name: "a bad --cost-model",
    args: ["plan", "--cost-model", "magic"],
    expect: /^spillway: --cost-model: expected one of spillway, flexgen, got "magic" \(spillway plan --help\)$/m,
  },
  {
    name: "a missing profile file",
    args: ["plan", "--hardware", join(dir, "none.json")],
    expect: /none\.json: no such file/,
  },
  {
    name: "a truncated profile",
    args: ["plan", "--hardware", file("truncated.json", t4.slice(0, 400))],
    expect: /truncated\.json: not valid JSON at line \d+, column \d+ \(the file ends early: truncated\?\)/,
  },
  {
    name: "a profile with a wrong type",
    args: ["plan", "--hardware", file("wrongtype.json", t4.replace('"cores": 32', '"cores": "thirty-two"'))],
    expect: /wrongtype\.json: cpu\.cores: expected a finite number >= 1, got the string "thirty-two"/,
  },
  {
    name: "a profile with a negative bandwidth",
    args: ["plan", "--hardware", file("negative.json", t4.replace('"value": 12000000000', '"value": -12000000000'))],
    expect:
      /negative\.json: hostToDevice\.pinnedBytesPerSecond\.measured\.value: expected a number > 0, got -12000000000/,
  },
  {
    name: "a profile with a misspelt field",
    args: ["plan", "--hardware", file("misspelt.json", t4.replace('"host":', '"hots":'))],
    expect: /misspelt\.json: hots: unknown field/,
  },
  {
    name: "a config.json of an unsupported family",
    args: ["plan", "--model", file("gpt2.json", JSON.stringify({ model_type: "gpt2", n_embd: 768 }))],
    expect:
      /gpt2\.json: model_type: unsupported model type "gpt2"; supported: opt, llama, mistral, qwen2, mixtral, qwen2_moe, olmoe, qwen3_moe/,
  },
  {
    name: "a config.json with a string size",
    args: ["plan", "--model", file("opt-bad.json", JSON.stringify({ model_type: "opt", hidden_size: "768" }))],
    expect: /opt-bad\.json: hidden_size: expected a finite number >= 1, got the string "768"/,
  },
  {
    name: "a config.json that is an array",
    args: ["plan", "--model", file("array.json", "[1, 2]")],
    expect: /array\.json: expected an object, got an array/,
  },
  {
    name: "a config.json with indivisible heads",
    args: [
      "plan",
      "--model",
      file(
        "heads.json",
        JSON.stringify({
          model_type: "llama",
          hidden_size: 4096,
          num_attention_heads: 30,
          num_hidden_layers: 2,
          intermediate_size: 11008,
          vocab_size: 32000,
          max_position_embeddings: 4096,
        }),
      ),
    ],
    expect: /heads\.json: numHeads: hidden size 4096 is not divisible by 30 heads/,
  },
  {
    name: "a prompt longer than the model's positions",
    args: ["plan", "--model", "opt-125m", "--prompt-len", "4000"],
    expect: /--prompt-len: prompt 4000 \+ generated 32 tokens exceed opt-125m's 2048 positions/,
  },
];

for (const c of CASES) {
  test(`bad input: ${c.name} exits 2 with one clear line and no stack trace`, () => {
    const out = runCli(c.args);
    assert.equal(out.status, 2, out.stderr + out.stdout);
    assert.match(out.stderr, c.expect);
    assert.equal(out.stderr.trimEnd().split("\n").length, 1, `one line: ${out.stderr}`);
    assert.doesNotMatch(out.stderr, /\n\s+at /, "no stack trace");
    assert.equal(out.stdout, "");
  });
}

test("--out writes the plan atomically and leaves an existing file alone when planning fails", () => {
  const out = join(dir, "plan.json");
  writeFileSync(out, "previous");
  const failed = runCli([
    "plan",
    "--model",
    "opt-175b",
    "--gpu-mem",
    "1",
    "--cpu-mem",
    "1",
    "--disk-mem",
    "1",
    "--out",
    out,
  ]);
  assert.equal(failed.status, 1);
  assert.match(failed.stderr, /no policy fits opt-175b/);
  assert.equal(readFileSync(out, "utf8"), "previous");
  const ok = runCli(["plan", "--model", "opt-1.3b", "--out", out, "--quiet"]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout, "");
  assert.equal(JSON.parse(readFileSync(out, "utf8")).model, "opt-1.3b");
});

test("--model and --hardware read standard input with -", () => {
  const out = runCli(["plan", "--hardware", "-", "--model", "opt-1.3b", "--json"], t4);
  assert.equal(out.status, 0, out.stderr);
  assert.equal(JSON.parse(out.stdout).hardware, "t4");
});
