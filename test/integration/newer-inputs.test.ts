/**
 * Issue 18's input contract on the commands and flags added since (calibrate's runs CSV and
 * --prior-weight, plan --tensor-parallel and --engine with its knobs, sweep, export of pipeline plans,
 * profile, simulate/run --trace, synth-weights, --backend cuda without the addon): each bad input exits 2
 * with one stderr line naming the file or flag and what was expected, prints nothing on stdout, and
 * writes or truncates nothing. All cases run in one worker process (the CLI in-process), so the file
 * takes a few seconds.
 */
import assert from "node:assert/strict";
import { lstatSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { makeBadOutputTargets } from "../bad-output-targets.js";
import { CliWorker } from "../fuzz/cli-worker.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-newer-inputs-"));
const { precious, link, folder, targets, assertUntouched } = makeBadOutputTargets(dir);
const passwdLink = join(dir, "passwd-link");
symlinkSync("/etc/passwd", passwdLink);
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const HEADER = "engine,model,flags,prompt_len,gen_len,tokens_per_second";
const goodRuns = file(
  "runs.csv",
  `${HEADER}\nspillway,opt-30b,--gbs 4 --nb 1 --percent 20 80 100 0 100 0,512,32,5\nspillway,opt-30b,--gbs 8 --nb 1 --percent 20 80 100 0 100 0,512,32,6\n`,
);
const noColumn = file("no-column.csv", "engine,model,flags,prompt_len,gen_len\nspillway,opt-30b,--gbs 4,512,32\n");
const nonNumeric = file(
  "non-numeric.csv",
  `${HEADER}\nspillway,opt-30b,--gbs 4 --nb 1 --percent 20 80 100 0 100 0,512,32,fast\n`,
);
const empty = file("empty.csv", "");

// --backend cuda without the addon, wherever the addon is built (the worker inherits the environment).
process.env.SPILLWAY_CUDA_ADDON = join(dir, "no-such-addon.node");
const worker = new CliWorker(30_000);
after(() => {
  worker.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The --out targets that must be refused: a link, a link to /etc/passwd, a folder, a pipe, a missing folder. */
const BAD_OUTS = [...targets, { path: passwdLink, expect: /passwd-link: is a symbolic link/ }];

const calibrate = (runs: string, ...more: string[]) => [
  "calibrate",
  "--engine",
  "spillway",
  runs,
  "--hardware",
  "t4",
  "--out",
  join(dir, "never.json"),
  ...more,
];
const A100S = ["plan", "--model", "opt-30b", "--hardware", "1x8-a100-80g"];
const FIXED = ["--model", "opt-125m", "--gbs", "1", "--nb", "1", "--percent", "100", "0", "100", "0", "100", "0"];

const CASES: { name: string; args: () => string[]; expect: RegExp }[] = [
  {
    name: "calibrate: a runs CSV without tokens_per_second",
    args: () => calibrate(noColumn),
    expect: /no-column\.csv: line 1: missing column "tokens_per_second"/,
  },
  {
    name: "calibrate: a non-numeric token/s",
    args: () => calibrate(nonNumeric),
    expect: /non-numeric\.csv: line 2, tokens_per_second: expected a number > 0, got "fast"/,
  },
  {
    name: "calibrate: an empty runs file",
    args: () => calibrate(empty),
    expect: /empty\.csv: empty; expected a runs CSV/,
  },
  {
    name: "calibrate: a folder as the runs file",
    args: () => calibrate(folder),
    expect: /folder: not a regular file \(a folder\); expected a runs CSV/,
  },
  {
    name: "calibrate: a negative --prior-weight",
    args: () => calibrate(goodRuns, "--prior-weight", "-1"),
    expect: /--prior-weight: expected a number >= 0, got -1/,
  },
  {
    name: "calibrate: a NaN --prior-weight",
    args: () => calibrate(goodRuns, "--prior-weight", "NaN"),
    expect: /--prior-weight: expected a number >= 0, got "NaN"/,
  },
  {
    name: "calibrate: an unknown --engine",
    args: () => ["calibrate", "--engine", "vllm-x", goodRuns, "--hardware", "t4", "--out", join(dir, "never.json")],
    expect: /--engine: expected one of spillway, flexgen, .*got "vllm-x"/,
  },
  {
    name: "calibrate: a cluster as --hardware",
    args: () => [
      "calibrate",
      "--engine",
      "spillway",
      goodRuns,
      "--hardware",
      "1x4-t4",
      "--out",
      join(dir, "never.json"),
    ],
    expect:
      /--hardware: 1x4-t4 is a cluster; calibrate fits one GPU's profile: expected a profile name \(.*t4.*\) or the path/,
  },
  {
    name: "calibrate: an unknown --hardware name",
    args: () => ["calibrate", "--engine", "spillway", goodRuns, "--hardware", "t5", "--out", join(dir, "never.json")],
    expect: /--hardware: unknown hardware "t5"; expected a profile name \(.*\) or the path of a profile JSON file/,
  },
  ...BAD_OUTS.map((out) => ({
    name: `calibrate --out onto ${out.path}`,
    args: () => ["calibrate", "--engine", "spillway", goodRuns, "--hardware", "t4", "--out", out.path],
    expect: out.expect,
  })),
  ...["0", "-1", "1.5"].map((value) => ({
    name: `plan --tensor-parallel ${value}`,
    args: () => [...A100S, "--tensor-parallel", value],
    expect: new RegExp(`--tensor-parallel: expected an integer >= 1, got ${value}`),
  })),
  {
    name: "plan --tensor-parallel 3 on 8 GPUs",
    args: () => [...A100S, "--tensor-parallel", "3"],
    expect: /--tensor-parallel: expected one of 1, 2, 4, 8 \(divisors of 1x8-a100-80g's 8 GPUs per node.*got 3/,
  },
  {
    name: "plan --engine with an unknown name",
    args: () => ["plan", "--engine", "flexgen2"],
    expect: /--engine: expected one of spillway, flexgen, llama\.cpp, .*got "flexgen2"/,
  },
  {
    name: "plan --ngl with --engine flexgen",
    args: () => ["plan", "--model", "opt-30b", "--engine", "flexgen", "--ngl", "10"],
    expect: /--ngl: is a setting of --engine llama\.cpp \(the engine here is flexgen\)/,
  },
  {
    name: "plan --fewer-batch with --engine llama.cpp",
    args: () => ["plan", "--model", "opt-30b", "--engine", "llama.cpp", "--fewer-batch"],
    expect: /--fewer-batch: is a setting of --engine flexgen \(the engine here is llama\.cpp\)/,
  },
  ...BAD_OUTS.map((out) => ({
    name: `plan --out onto ${out.path}`,
    args: () => ["plan", ...FIXED, "--out", out.path],
    expect: out.expect,
  })),
  ...BAD_OUTS.map((out) => ({
    name: `sweep --out onto ${out.path}`,
    args: () => ["sweep", "--model", "opt-125m", "--hardware", "t4", "--out", out.path],
    expect: out.expect,
  })),
  ...BAD_OUTS.map((out) => ({
    name: `export --out onto ${out.path}`,
    args: () => ["export", join(dir, "p.json"), "--to", "flexgen", "--out", out.path],
    expect: out.expect,
  })),
  ...BAD_OUTS.map((out) => ({
    name: `simulate --trace onto ${out.path}`,
    args: () => ["simulate", join(dir, "p.json"), "--trace", out.path],
    expect: out.expect,
  })),
  ...BAD_OUTS.map((out) => ({
    name: `profile --out onto ${out.path} (refused before measuring)`,
    args: () => ["profile", "--backend", "cpu", "--quick", "--out", out.path],
    expect: out.expect,
  })),
  {
    name: "profile --from-samples without a column",
    args: () => ["profile", "--from-samples", noColumn, "--out", join(dir, "never.json")],
    expect:
      /no-column\.csv: line 1, header: missing column "measurement"; expected the header measurement,size,shape,seconds/,
  },
  ...[precious, join(dir, "missing")].map((path) => ({
    name: `run --offload-dir ${path} (not a folder)`,
    args: () => ["run", join(dir, "p.json"), "--weights", folder, "--offload-dir", path],
    expect: /^spillway: --offload-dir: expected an existing folder for the disk tier's offload files, got ".*"\n$/,
  })),
  {
    name: "profile --offload-dir onto a file (refused before measuring)",
    args: () => ["profile", "--quick", "--offload-dir", precious, "--out", join(dir, "never.json")],
    expect: /--offload-dir: expected an existing folder/,
  },
  {
    name: "compare --weights onto a file (refused before planning)",
    args: () => ["compare", "--model", "opt-125m", "--weights", precious],
    expect: /precious\.txt: not a folder; expected a checkpoint folder/,
  },
  {
    name: "compare --weights onto a folder without config.json",
    args: () => ["compare", "--model", "opt-125m", "--weights", folder],
    expect: /folder: no config\.json in this folder/,
  },
  {
    name: "synth-weights --out onto a link",
    args: () => ["synth-weights", "--model", "opt-125m", "--out", link],
    expect: /link\.json: is a symbolic link; --out names the folder the checkpoint is written into/,
  },
  ...["profile --backend cuda", "run PLAN --weights DIR --backend cuda", "compare --weights DIR --backend cuda"].map(
    (line) => ({
      name: `${line} without the CUDA addon`,
      args: () =>
        line
          .split(" ")
          .map((word) => (word === "PLAN" ? join(dir, "p.json") : word === "DIR" ? folder : word))
          .concat(line.startsWith("profile") ? ["--out", join(dir, "never.json")] : []),
      expect:
        /^spillway: --backend cuda: the CUDA addon is not built \(.*no-such-addon\.node does not exist\): run `npm run build:cuda`/,
    }),
  ),
];

test("the newer commands and flags: every bad input exits 2 with one line, and nothing is written", async () => {
  // A plan to export and simulate: a fixed policy is scored, not searched.
  const made = await worker.run(["plan", ...FIXED, "--out", join(dir, "p.json"), "--quiet"]);
  assert.equal(made.status, 0, made.stderr);
  const before = readdirSync(dir).sort();
  const failures: string[] = [];
  for (const c of CASES) {
    const r = await worker.run(c.args(), dir);
    const lines = r.stderr.split("\n").filter(Boolean);
    if (r.status !== 2 || lines.length !== 1 || r.stdout !== "" || !c.expect.test(r.stderr))
      failures.push(
        `${c.name}: exit ${r.status}, stdout ${JSON.stringify(r.stdout.slice(0, 80))}, stderr ${JSON.stringify(r.stderr.slice(0, 300))}`,
      );
  }
  assert.deepEqual(failures, []);
  assert.deepEqual(readdirSync(dir).sort(), before, "no file made or left behind");
  assertUntouched();
  assert.ok(lstatSync(passwdLink).isSymbolicLink());
});
