/**
 * The `flags` column of a measured-runs file: the policy a run used, written as Spillway plan flags,
 * and the engine's own knobs, read by a small strict parser (every token must be a known flag or its
 * value; a flag given twice, a missing or malformed value is an error naming the flag).
 *
 *   policy:  --gbs N --nb N --percent wg wc cg cc hg hc --cpu-attention --compress-weight
 *            --compress-cache --overlap [0|1] --no-overlap --pin-weight [0|1] --no-pin-weight
 *   knobs:   --ngl N --n-cpu-moe N --gguf-type T --no-kv-offload --ubatch-size N (llama.cpp), --fewer-batch (FlexGen)
 *
 * What a run leaves out: one sequence in one GPU batch (`--gbs 1 --nb 1`: a single-stream run, as
 * llama-bench's token generation measures), everything on the GPU (`--percent 100 0 100 0 100 0`,
 * FlexGen's flex_opt.py default), no compression, GPU attention, overlap and pinned weights on
 * (FlexGen's `--overlap` and `--pin-weight` defaults, and Spillway's plan flags').
 */
import { InputError } from "../core/input-error.js";
import { type Policy, placementFromPercents } from "../core/policy.js";
import type { EngineKnobs } from "./engine-model.js";
import type { EngineName } from "./engine-names.js";

export interface RunFlags {
  readonly policy: Policy;
  readonly knobs: EngineKnobs;
}

type FlagKind = "count" | "percent" | "switch" | "bool" | "word";

/** Every flag the column accepts: its kind and, for engine knobs, the engine that reads it. */
// biome-ignore format: one flag per line
const FLAGS: Readonly<Record<string, { kind: FlagKind; engine?: EngineName }>> = {
  "--gbs": { kind: "count" },
  "--nb": { kind: "count" },
  "--percent": { kind: "percent" },
  "--cpu-attention": { kind: "switch" },
  "--compress-weight": { kind: "switch" },
  "--compress-cache": { kind: "switch" },
  "--overlap": { kind: "bool" },
  "--no-overlap": { kind: "switch" },
  "--pin-weight": { kind: "bool" },
  "--no-pin-weight": { kind: "switch" },
  "--ngl": { kind: "count", engine: "llama.cpp" },
  "--n-cpu-moe": { kind: "count", engine: "llama.cpp" },
  "--gguf-type": { kind: "word", engine: "llama.cpp" },
  "--no-kv-offload": { kind: "switch", engine: "llama.cpp" },
  "--ubatch-size": { kind: "count", engine: "llama.cpp" },
  "--fewer-batch": { kind: "switch", engine: "flexgen" },
};

/** FlexGen's str2bool spellings (flex_opt.py), for `--overlap` and `--pin-weight` values. */
const BOOLEANS: Readonly<Record<string, boolean>> = { "1": true, true: true, "0": false, false: false };
const PERCENT_NAMES = ["wg", "wc", "cg", "cc", "hg", "hc"] as const;
const GGUF_TYPE = /^[A-Za-z0-9_]+$/;

/**
 * Reads one run's flags. `source` and `field` say where the text is (a file and "line 7, flags") for
 * errors; `engine` is the run's engine, whose knobs alone it accepts.
 */
export function parseRunFlags(text: string, engine: EngineName, source: string, field: string): RunFlags {
  const fail = (flag: string, message: string): never => {
    throw new InputError(source, field, `${flag}: ${message}`);
  };
  const tokens = text.split(/\s+/).filter((t) => t !== "");
  const values = new Map<string, string[]>();
  for (let i = 0; i < tokens.length; ) {
    const flag = tokens[i++]!;
    const spec = FLAGS[flag];
    if (!spec)
      fail(
        flag,
        flag.startsWith("--")
          ? `unknown flag; expected one of ${Object.keys(FLAGS).join(", ")}`
          : "expected a flag (--name), found a value with no flag before it",
      );
    if (spec!.engine && spec!.engine !== engine)
      fail(flag, `a knob of the ${spec!.engine} engine; this run's engine is ${engine}`);
    const negation = flag.startsWith("--no-") ? `--${flag.slice(5)}` : `--no-${flag.slice(2)}`;
    if (values.has(flag) || values.has(negation)) fail(flag, "given twice");
    const take = (n: number, what: string): string[] => {
      const taken = tokens.slice(i, i + n);
      if (taken.length < n || taken.some((t) => t.startsWith("--")))
        fail(flag, `expected ${what}, got ${taken.length ? taken.join(" ") : "nothing"}`);
      i += n;
      return taken;
    };
    if (spec!.kind === "count") values.set(flag, take(1, "an integer"));
    else if (spec!.kind === "percent") values.set(flag, take(6, "six percentages (wg wc cg cc hg hc)"));
    else if (spec!.kind === "word") values.set(flag, take(1, "a GGUF file type such as Q4_K_M"));
    else if (spec!.kind === "bool" && tokens[i] !== undefined && BOOLEANS[tokens[i]!.toLowerCase()] !== undefined)
      values.set(flag, [tokens[i++]!]);
    else values.set(flag, []);
  }

  const count = (flag: string, min: number): number | undefined => {
    const raw = values.get(flag)?.[0];
    if (raw === undefined) return undefined;
    if (!/^\d+$/.test(raw) || Number(raw) < min) fail(flag, `expected an integer >= ${min}, got ${raw}`);
    return Number(raw);
  };
  const bool = (flag: string): boolean => {
    if (values.has(`--no-${flag.slice(2)}`)) return false;
    const given = values.get(flag);
    return given === undefined || given.length === 0 ? true : BOOLEANS[given[0]!.toLowerCase()]!;
  };
  const percent = (values.get("--percent") ?? ["100", "0", "100", "0", "100", "0"]).map((raw, k) => {
    const value = Number(raw);
    if (!/^\d+(\.\d+)?$/.test(raw) || value > 100)
      fail("--percent", `${PERCENT_NAMES[k]}: expected a percentage 0..100, got ${raw}`);
    return value;
  });
  for (const k of [0, 2, 4]) {
    if (percent[k]! + percent[k + 1]! > 100)
      fail(
        "--percent",
        `${PERCENT_NAMES[k]}+${PERCENT_NAMES[k + 1]}: GPU and CPU shares add up to ${percent[k]! + percent[k + 1]!}, more than 100`,
      );
  }
  const ggufType = values.get("--gguf-type")?.[0];
  if (ggufType !== undefined && !GGUF_TYPE.test(ggufType))
    fail("--gguf-type", `expected a GGUF file type such as Q4_K_M, got ${ggufType}`);
  const nGpuLayers = count("--ngl", 0);
  const nCpuMoe = count("--n-cpu-moe", 0);
  const ubatchTokens = count("--ubatch-size", 1);
  const knobs: EngineKnobs = {
    ...(nGpuLayers !== undefined ? { nGpuLayers } : {}),
    ...(nCpuMoe !== undefined ? { nCpuMoe } : {}),
    ...(ggufType !== undefined ? { ggufType } : {}),
    ...(values.has("--no-kv-offload") ? { noKvOffload: true } : {}),
    ...(ubatchTokens !== undefined ? { ubatchTokens } : {}),
    ...(values.has("--fewer-batch") ? { fewerBatch: true } : {}),
  };
  const policy: Policy = {
    gpuBatchSize: count("--gbs", 1) ?? 1,
    numGpuBatches: count("--nb", 1) ?? 1,
    weights: placementFromPercents(percent[0]!, percent[1]!),
    cache: placementFromPercents(percent[2]!, percent[3]!),
    activations: placementFromPercents(percent[4]!, percent[5]!),
    compressWeight: values.has("--compress-weight"),
    compressCache: values.has("--compress-cache"),
    cpuAttention: values.has("--cpu-attention"),
    overlap: bool("--overlap"),
    pinWeight: bool("--pin-weight"),
  };
  return { policy, knobs };
}
