/**
 * The fuzz suite's cases: for every input surface of the CLI (each command's flags, model configs and
 * specs, hardware profiles, plans, routing traces, runs and samples CSVs, safetensors headers, special
 * files) a valid command line over small fixtures, and seeded mutations of it. A case is a command line,
 * the files it needs written into its own folder, and what it was made from (for a failure's message).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mulberry32 } from "../../core/random.js";
import {
  ARG_MUTATIONS,
  type ArgMutation,
  JSON_MUTATIONS,
  type JsonMutation,
  mutateArgs,
  mutateJson,
  mutateText,
  pick,
  type Rng,
  SHRINKING_JSON_MUTATIONS,
  TEXT_MUTATIONS,
  type TextMutation,
} from "./fuzz-mutations.js";

/** The fixture files every case may name, by key. */
export const FIXTURE_KEYS = [
  "config",
  "spec",
  "profile",
  "plan",
  "weights",
  "routing",
  "routingJsonl",
  "runs",
  "samples",
] as const;
export type FixtureKey = (typeof FIXTURE_KEYS)[number];
export type Fixtures = Record<FixtureKey, string>;

/** A tiny OPT as a Hugging Face config.json: planning, running and simulating it take milliseconds. */
export const TINY_CONFIG = {
  model_type: "opt",
  _name_or_path: "facebook/opt-fuzz",
  hidden_size: 64,
  num_attention_heads: 4,
  num_hidden_layers: 2,
  ffn_dim: 256,
  vocab_size: 512,
  max_position_embeddings: 256,
  word_embed_proj_dim: 64,
  torch_dtype: "float16",
};

/** A fixed policy for the tiny model: plan scores it instead of searching. */
export const FIXED_POLICY = [
  "--gbs",
  "4",
  "--nb",
  "1",
  "--percent",
  "50",
  "50",
  "100",
  "0",
  "100",
  "0",
  "--compress-weight=false",
  "--compress-cache=false",
  "--cpu-attention=false",
];
const POLICY_FLAGS = ["--gbs", "--nb", "--percent", "--compress-weight", "--compress-cache", "--cpu-attention"];

export const RUNS_CSV =
  "engine,model,flags,prompt_len,gen_len,tokens_per_second,hardware,note\n" +
  "spillway,opt-1.3b,--gbs 8 --nb 1,128,16,900,rtx3090,fuzz\n" +
  'flexgen,opt-6.7b,"--gbs 4 --nb 2 --percent 50 50 100 0 100 0",256,32,40,rtx3090,\n';

export const SAMPLES_CSV =
  "measurement,size,shape,seconds\n" +
  "date,1,2026-01-01,1\n" +
  "h2d,1048576,,0.0001\n" +
  "d2h,1048576,,0.0001\n" +
  "matmul,4096,64x64x64,0.00002\n";

type FileKind = "json" | "text" | "safetensors" | "folder";

interface Surface {
  readonly name: string;
  readonly args: (f: Fixtures) => string[];
  /** Flags a mutation never drops nor sets to an odd value (they keep a valid case cheap). */
  readonly pinned?: readonly string[];
  /** The input files the case may mutate or replace with a special file. */
  readonly files: readonly FixtureKey[];
  /** Mutations that would only enlarge the work (a huge model to synthesise or run) are left out. */
  readonly shrinkOnly?: boolean;
  /** Only mutations that make the input invalid (the valid case is slow, e.g. rendering charts). */
  readonly invalidOnly?: boolean;
}

const KINDS: Record<FixtureKey, FileKind> = {
  config: "json",
  spec: "json",
  profile: "json",
  plan: "json",
  weights: "folder",
  routing: "text",
  routingJsonl: "text",
  runs: "text",
  samples: "text",
};

const tinyPlan = (f: Fixtures, model: string) => [
  "plan",
  "--model",
  model,
  "--hardware",
  f.profile,
  "--prompt-len",
  "16",
  "--gen-len",
  "4",
  ...FIXED_POLICY,
  "--out",
  "out/plan.json",
  "--json",
];

export const SURFACES: readonly Surface[] = [
  { name: "plan (config)", args: (f) => tinyPlan(f, f.config), pinned: POLICY_FLAGS, files: ["config", "profile"] },
  { name: "plan (spec)", args: (f) => tinyPlan(f, f.spec), pinned: POLICY_FLAGS, files: ["spec"] },
  {
    name: "plan (engine)",
    args: (f) => [...tinyPlan(f, f.config), "--engine", "llama.cpp", "--ngl", "1", "--gguf-type", "Q4_K_M"],
    pinned: POLICY_FLAGS,
    files: ["config"],
  },
  {
    name: "plan (routing)",
    args: (f) => [
      "plan",
      "--model",
      "mixtral-8x7b",
      "--hardware",
      "rtx3090",
      "--batch-size",
      "1",
      "--expert-cache",
      "2",
      "--expert-bits",
      "4",
      "--attention-bits",
      "4",
      "--prefetch-experts",
      "0",
      "--expert-compute",
      "gpu",
      "--expert-eviction",
      "lru",
      "--routing",
      f.routing,
      "--gen-len",
      "4",
      "--prompt-len",
      "16",
      "--json",
    ],
    pinned: ["--batch-size", "--expert-cache", "--expert-bits", "--attention-bits", "--prefetch-experts"],
    files: ["routing"],
    invalidOnly: true,
  },
  { name: "simulate", args: (f) => ["simulate", f.plan, "--json"], files: ["plan"] },
  {
    name: "simulate (trace)",
    args: (f) => ["simulate", f.plan, "--trace", "out/t.json", "--timeline", "--quiet"],
    files: ["plan"],
  },
  {
    name: "simulate (engine)",
    args: (f) => ["simulate", f.plan, "--engine", "flexgen", "--hardware", f.profile, "--json"],
    files: ["plan", "profile"],
  },
  {
    name: "export",
    args: (f) => ["export", f.plan, "--to", "flexgen", "--hardware", f.profile],
    files: ["plan", "profile"],
  },
  { name: "export (accelerate)", args: (f) => ["export", f.plan, "--to", "accelerate"], files: ["plan"] },
  {
    name: "run",
    args: (f) => ["run", f.plan, "--weights", f.weights, "--no-reference", "--json", "--trace", "out/r.json"],
    files: ["plan", "weights"],
    shrinkOnly: true,
  },
  {
    name: "calibrate",
    args: (f) => [
      "calibrate",
      f.runs,
      "--engine",
      "spillway",
      "--hardware",
      f.profile,
      "--out",
      "out/cal.json",
      "--json",
    ],
    files: ["runs", "profile"],
    invalidOnly: true,
  },
  {
    name: "compare (measured)",
    args: (f) => [
      "compare",
      "--model",
      "opt-1.3b",
      "--hardware",
      "rtx3090",
      "--prompt-len",
      "128",
      "--gen-len",
      "16",
      ...FIXED_POLICY,
      "--measured",
      f.runs,
      "--json",
    ],
    pinned: POLICY_FLAGS,
    files: ["runs"],
    invalidOnly: true,
  },
  {
    name: "profile (samples)",
    args: (f) => ["profile", "--from-samples", f.samples, "--out", "out/p.json", "--json"],
    files: ["samples"],
  },
  {
    name: "trace stats (csv)",
    args: (f) => ["trace", "stats", f.routing, "--cache", "1,2", "--json"],
    files: ["routing"],
  },
  {
    name: "trace stats (jsonl)",
    args: (f) => ["trace", "stats", f.routingJsonl, "--model", "mixtral-8x7b", "--json"],
    files: ["routingJsonl"],
  },
  {
    name: "trace convert",
    args: (f) => ["trace", "convert", f.routing, "--out", "out/r.jsonl", "--json"],
    files: ["routing"],
  },
  {
    name: "trace synth",
    args: () => [
      "trace",
      "synth",
      "--model",
      "mixtral-8x7b",
      "--tokens",
      "3",
      "--requests",
      "2",
      "--out",
      "out/s.csv",
      "--json",
    ],
    pinned: ["--tokens", "--requests"],
    files: [],
  },
  {
    name: "synth-weights",
    args: (f) => ["synth-weights", "--model", f.config, "--out", "out/w", "--seed", "3", "--json"],
    files: ["config"],
    shrinkOnly: true,
  },
  {
    name: "report",
    args: (f) => ["report", f.plan, "--out", "out/report", "--quiet"],
    files: ["plan"],
    invalidOnly: true,
  },
  { name: "models", args: () => ["models", "--json"], files: [] },
  { name: "hardware", args: () => ["hardware", "--json"], files: [] },
  { name: "devices", args: () => ["devices", "--json"], files: [] },
];

/** Special files an input may be replaced with; none is ever read without limit. */
export function specialFiles(folder: string, fifo: string | undefined): string[] {
  return ["/dev/zero", "/dev/urandom", "/dev/null", folder, join(folder, "missing.json"), ...(fifo ? [fifo] : [])];
}

export interface FuzzCase {
  readonly seed: number;
  readonly surface: string;
  /** What was done to the valid case: "args:flag-twice", "plan:truncate", "profile:/dev/zero", "none". */
  readonly mutation: string;
  readonly args: readonly string[];
  /** Whether the mutation always makes the input invalid, so the CLI must refuse it (exit 2). */
  readonly mustRefuse: boolean;
  /** The case's own folder (its cwd, its outputs, its mutated files). */
  readonly folder: string;
}

/** Mutations that leave no valid document (for surfaces whose valid case is slow). */
const INVALID_JSON_MUTATIONS: readonly JsonMutation[] = ["truncate", "wrong-root", "empty", "binary"];
const INVALID_TEXT_MUTATIONS: readonly TextMutation[] = ["unterminated-quote", "stray-quote", "empty"];

function mutateFile(rng: Rng, source: string, kind: FileKind, target: string, surface: Surface): string {
  if (kind === "json") {
    const options: readonly JsonMutation[] = surface.invalidOnly
      ? INVALID_JSON_MUTATIONS
      : surface.shrinkOnly
        ? SHRINKING_JSON_MUTATIONS
        : JSON_MUTATIONS;
    const mutation = pick(rng, options);
    writeFileSync(target, mutateJson(rng, JSON.parse(readFileSync(source, "utf8")), mutation));
    return mutation;
  }
  if (kind === "text") {
    const mutation = pick(rng, surface.invalidOnly ? INVALID_TEXT_MUTATIONS : TEXT_MUTATIONS);
    writeFileSync(target, mutateText(rng, readFileSync(source, "utf8"), mutation));
    return mutation;
  }
  // A weights folder: config.json mutated (shrinking only) or the safetensors header.
  mkdirSync(target, { recursive: true });
  const config = readFileSync(join(source, "config.json"), "utf8");
  const weights = readFileSync(join(source, "model.safetensors"));
  if (rng() < 0.4) {
    const mutation = pick(rng, SHRINKING_JSON_MUTATIONS);
    writeFileSync(join(target, "config.json"), mutateJson(rng, JSON.parse(config), mutation));
    writeFileSync(join(target, "model.safetensors"), weights);
    return `config.json ${mutation}`;
  }
  writeFileSync(join(target, "config.json"), config);
  const headerBytes = Number(weights.readBigUInt64LE(0));
  const header = JSON.parse(weights.subarray(8, 8 + headerBytes).toString("utf8")) as unknown;
  const data = weights.subarray(8 + headerBytes);
  const mutation = pick(rng, ["header", "header", "length", "truncate"] as const);
  let bytes: Buffer;
  if (mutation === "length") {
    bytes = Buffer.from(weights);
    bytes.writeBigUInt64LE(pick(rng, [0n, 7n, BigInt(weights.length), 2n ** 63n, 2n ** 64n - 1n]), 0);
  } else if (mutation === "truncate") {
    bytes = weights.subarray(0, Math.floor(rng() * weights.length));
  } else {
    const headerText = Buffer.from(mutateJson(rng, header, pick(rng, JSON_MUTATIONS)));
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(headerText.length), 0);
    bytes = Buffer.concat([length, headerText, data]);
  }
  writeFileSync(join(target, "model.safetensors"), bytes);
  return `model.safetensors ${mutation}`;
}

/** Flags that take a list: given twice, their values add up. */
const LIST_FLAGS = ["--percent", "--measured", "--engine"];

/** Command-line mutations that always leave a malformed command line. */
const ALWAYS_INVALID_ARGS: readonly ArgMutation[] = [
  "unknown-flag",
  "flag-twice",
  "missing-value",
  "missing-value-at-end",
  "switch-with-value",
  "after-double-dash",
  "extra-word",
  "help-with-value",
];

/**
 * Case `seed`: a surface, and one mutation of its arguments, of one of its files, or one file replaced
 * by a special file (or none: the valid case). Its files are written into `casesFolder`/seed/.
 */
export function makeCase(seed: number, fixtures: Fixtures, casesFolder: string, special: readonly string[]): FuzzCase {
  const rng = mulberry32(seed * 2654435761);
  const surface = pick(rng, SURFACES);
  const folder = join(casesFolder, String(seed));
  mkdirSync(join(folder, "out"), { recursive: true });
  const files: Fixtures = { ...fixtures };
  const roll = rng();
  let mutation = "none";
  let mustRefuse = false;
  let args: string[];
  if (surface.files.length && roll < 0.5) {
    const key = pick(rng, surface.files);
    const target = join(
      folder,
      `${key}${KINDS[key] === "json" ? ".json" : KINDS[key] === "folder" ? "" : key === "routingJsonl" ? ".jsonl" : ".csv"}`,
    );
    mutation = `${key}:${mutateFile(rng, fixtures[key], KINDS[key], target, surface)}`;
    files[key] = target;
    args = surface.args(files);
  } else if (surface.files.length && roll < 0.62) {
    const key = pick(rng, surface.files);
    files[key] = pick(rng, special);
    mutation = `${key}:${files[key]}`;
    mustRefuse = true;
    args = surface.args(files);
  } else if (roll < 0.95 || surface.invalidOnly) {
    const kind = pick(rng, ARG_MUTATIONS);
    mutation = `args:${kind}`;
    const valid = surface.args(files);
    args = mutateArgs(rng, valid, kind, surface.pinned ?? []);
    // A switch or a list flag given twice is allowed (--json --json, --measured a --measured b); every
    // other of these is a malformed command line.
    const repeated = args.slice(valid.length)[0];
    mustRefuse =
      ALWAYS_INVALID_ARGS.includes(kind) &&
      args.join("\0") !== valid.join("\0") &&
      !(kind === "flag-twice" && (repeated === "--json" || LIST_FLAGS.includes(repeated ?? "")));
    // A valid slow case stays out: only what makes the command line invalid.
    if (surface.invalidOnly && (kind === "drop-flag" || kind === "odd-value")) args = [...args, "--bogus"];
  } else {
    args = surface.args(files);
  }
  return { seed, surface: surface.name, mutation, args, mustRefuse, folder };
}
