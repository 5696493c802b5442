/**
 * Measured runs: the throughput an engine achieved for a model, workload and policy on one machine,
 * read from
 *  (a) a runs CSV with a header row: `engine,model,flags,prompt_len,gen_len,tokens_per_second` and
 *      optionally `hardware,note` (any order; `#` starts a comment line). `model` is a catalogue name
 *      (a path is never opened from a runs file), `flags` the policy and the engine's knobs as flags
 *      (engines/run-flags.ts), `tokens_per_second` generated tokens per second over the whole run;
 *  (b) a `spillway compare --json` file: one run of Spillway's runtime (engine "spillway"), its model,
 *      workload and policy as the comparison records them and its measured throughput.
 * A file is read only if it is a regular file of at most MAX_RUNS_FILE_BYTES; every error names the
 * file, the line and the column or field, and what was expected.
 */
import { parse } from "csv-parse/sync";
import { csvInputError } from "../core/csv-input-error.js";
import { asObject, child, type FieldContext, fail, readNumber, readObject } from "../core/fields.js";
import { InputError } from "../core/input-error.js";
import type { ModelSpec } from "../core/model-spec.js";
import { parseModelSpec } from "../core/parse-model-spec.js";
import type { Policy } from "../core/policy.js";
import { readInputText } from "../core/read-input-file.js";
import { parseJsonText } from "../core/read-json-file.js";
import type { Workload } from "../core/workload.js";
import { findCatalogueModel, MODEL_CATALOGUE } from "../models/catalogue.js";
import { parseComparison } from "../reports/read-report-input.js";
import type { EngineKnobs } from "./engine-model.js";
import { ENGINE_NAMES, type EngineName } from "./engine-names.js";
import { parseRunFlags } from "./run-flags.js";

export interface MeasuredRun {
  readonly engine: EngineName;
  readonly model: ModelSpec;
  readonly workload: Workload;
  /** The policy as the run asked for it (the engine realizes it by its own rule). */
  readonly policy: Policy;
  readonly knobs: EngineKnobs;
  /** Generated tokens per second over the whole run (prefill included), as measured. */
  readonly measuredTokensPerSecond: number;
  /** Where the run was read: "FILE:LINE" for a runs CSV, "FILE" for a comparison file. */
  readonly source: string;
  /** The machine the run was measured on (a profile name), when the file says. */
  readonly hardware?: string;
  readonly note?: string;
}

/** Runs files larger than this are refused (a runs table of this size would hold ~100,000 runs). */
export const MAX_RUNS_FILE_BYTES = 16 * 2 ** 20;

export const REQUIRED_RUN_COLUMNS = ["engine", "model", "flags", "prompt_len", "gen_len", "tokens_per_second"] as const;
export const OPTIONAL_RUN_COLUMNS = ["hardware", "note"] as const;
type RunColumn = (typeof REQUIRED_RUN_COLUMNS)[number] | (typeof OPTIONAL_RUN_COLUMNS)[number];

/** The text of `path`, refusing anything but a regular file of at most MAX_RUNS_FILE_BYTES. */
export function readRunsText(path: string): string {
  return readInputText(path, {
    maxBytes: MAX_RUNS_FILE_BYTES,
    expected: "a runs CSV or a comparison JSON file",
    what: "a runs file",
  });
}

/** The runs in `path`: a comparison JSON file (its text starts with "{") or a runs CSV. */
export function readRunsFile(path: string): MeasuredRun[] {
  const text = readRunsText(path);
  if (text.trim() === "")
    throw new InputError(path, undefined, "empty; expected a runs CSV with a header row or a comparison JSON file");
  if (text.trimStart().startsWith("{")) return [runFromComparison(parseJsonText(text, path), path)];
  return parseRunsCsv(text, path);
}

/** The runs of every file, in order. */
export function readMeasuredRuns(paths: readonly string[]): MeasuredRun[] {
  return paths.flatMap((path) => readRunsFile(path));
}

function catalogueModel(name: string, source: string, field: string): ModelSpec {
  const model = findCatalogueModel(name);
  if (!model)
    throw new InputError(
      source,
      field,
      `unknown model ${JSON.stringify(name)}; expected a catalogue name (${MODEL_CATALOGUE.map((m) => m.name).join(", ")}); a runs file names models, it does not open files`,
    );
  return model;
}

function checkWorkload(workload: Workload, model: ModelSpec, source: string, field: string): Workload {
  if (workload.promptLen + workload.genLen > model.maxPositions)
    throw new InputError(
      source,
      field,
      `prompt ${workload.promptLen} + generated ${workload.genLen} tokens exceed ${model.name}'s ${model.maxPositions} positions`,
    );
  return workload;
}

/** Parses a runs CSV; `source` names the file in errors and in each run's source. */
export function parseRunsCsv(text: string, source: string): MeasuredRun[] {
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, {
      comment: "#",
      skip_empty_lines: true,
      info: true,
      trim: true,
    }) as unknown as typeof records;
  } catch (error) {
    throw csvInputError(error, source);
  }
  const [header, ...rows] = records;
  if (!header)
    throw new InputError(source, undefined, "no header row; expected the columns " + REQUIRED_RUN_COLUMNS.join(","));
  const known: readonly string[] = [...REQUIRED_RUN_COLUMNS, ...OPTIONAL_RUN_COLUMNS];
  const index = new Map<RunColumn, number>();
  header.record.forEach((name, i) => {
    const where = `line ${header.info.lines}, column ${i + 1}`;
    if (!known.includes(name))
      throw new InputError(source, where, `unknown column ${JSON.stringify(name)}; expected ${known.join(", ")}`);
    if (index.has(name as RunColumn)) throw new InputError(source, where, `column ${JSON.stringify(name)} given twice`);
    index.set(name as RunColumn, i);
  });
  for (const column of REQUIRED_RUN_COLUMNS)
    if (!index.has(column))
      throw new InputError(
        source,
        `line ${header.info.lines}`,
        `missing column "${column}"; the header must name ${REQUIRED_RUN_COLUMNS.join(", ")}`,
      );
  if (rows.length === 0) throw new InputError(source, undefined, "no runs: a header row and no rows below it");
  return rows.map(({ record, info }) => {
    const line = info.lines;
    const cell = (column: RunColumn) => {
      const i = index.get(column);
      return i === undefined ? "" : (record[i] ?? "");
    };
    const where = (column: RunColumn) => `line ${line}, ${column}`;
    const integer = (column: "prompt_len" | "gen_len") => {
      const raw = cell(column);
      if (!/^\d+$/.test(raw) || Number(raw) < 1)
        throw new InputError(source, where(column), `expected an integer >= 1, got ${JSON.stringify(raw)}`);
      return Number(raw);
    };
    const engineText = cell("engine");
    if (!(ENGINE_NAMES as readonly string[]).includes(engineText))
      throw new InputError(
        source,
        where("engine"),
        `expected one of ${ENGINE_NAMES.join(", ")}, got ${JSON.stringify(engineText)}`,
      );
    const engine = engineText as EngineName;
    const model = catalogueModel(cell("model"), source, where("model"));
    const workload = checkWorkload(
      { promptLen: integer("prompt_len"), genLen: integer("gen_len") },
      model,
      source,
      where("gen_len"),
    );
    const rateText = cell("tokens_per_second");
    const measured = rateText === "" ? Number.NaN : Number(rateText);
    if (!Number.isFinite(measured) || measured <= 0)
      throw new InputError(
        source,
        where("tokens_per_second"),
        `expected a number > 0, got ${JSON.stringify(rateText)}`,
      );
    const { policy, knobs } = parseRunFlags(cell("flags"), engine, source, where("flags"));
    const hardware = cell("hardware");
    const note = cell("note");
    return {
      engine,
      model,
      workload,
      policy,
      knobs,
      measuredTokensPerSecond: measured,
      source: `${source}:${line}`,
      ...(hardware ? { hardware } : {}),
      ...(note ? { note } : {}),
    };
  });
}

/** One run of Spillway's runtime from a `spillway compare --json` document; `source` names the file. */
export function runFromComparison(data: unknown, source: string): MeasuredRun {
  const ctx: FieldContext = { source, path: "" };
  const o = asObject(data, ctx);
  if (!("measured" in o && "predicted" in o))
    fail(
      ctx,
      undefined,
      "expected a runs CSV or a comparison (spillway compare --json); this JSON has no measured figures",
    );
  const comparison = parseComparison(o, source);
  if (o.workload === undefined)
    fail(
      ctx,
      "workload",
      "missing: the comparison was written before compare recorded workloads; run spillway compare again",
    );
  const w = readObject(o, "workload", ctx);
  const wc = child(ctx, "workload");
  const model =
    o.modelSpec !== undefined
      ? parseModelSpec(o.modelSpec, `${source} (modelSpec)`)
      : catalogueModel(comparison.model, source, "model");
  const workload = checkWorkload(
    {
      promptLen: readNumber(w, "promptLen", wc, { min: 1, integer: true }),
      genLen: readNumber(w, "genLen", wc, { min: 1, integer: true }),
    },
    model,
    source,
    "workload",
  );
  const measured = comparison.measured.throughputTokensPerSecond;
  if (!(measured > 0))
    fail(child(ctx, "measured"), "throughputTokensPerSecond", `expected a number > 0, got ${measured}`);
  return {
    engine: "spillway",
    model,
    workload,
    policy: comparison.policy,
    knobs: {},
    measuredTokensPerSecond: measured,
    source,
    ...(typeof o.hardware === "string" ? { hardware: o.hardware } : {}),
  };
}

/**
 * The runs of `engine` among `runs` (others are set aside, and counted), each checked to have been
 * measured on `hardware` where its file names a machine. An InputError names `what` (the files) when
 * none is left, and the run when one names another machine.
 */
export function runsOfEngine(
  runs: readonly MeasuredRun[],
  engine: EngineName,
  hardware: { readonly name: string },
  what: string,
): { runs: MeasuredRun[]; setAside: number } {
  const chosen = runs.filter((run) => run.engine === engine);
  if (chosen.length === 0)
    throw new InputError(
      what,
      undefined,
      `no runs of the ${engine} engine (found ${runs.length} runs of ${[...new Set(runs.map((r) => r.engine))].join(", ") || "no engine"})`,
    );
  for (const run of chosen) {
    if (run.hardware !== undefined && run.hardware.toLowerCase() !== hardware.name.toLowerCase())
      throw new InputError(
        run.source,
        "hardware",
        `measured on ${JSON.stringify(run.hardware)}, but the profile is ${JSON.stringify(hardware.name)}: score and calibrate one machine's runs against that machine's profile`,
      );
  }
  return { runs: chosen, setAside: runs.length - chosen.length };
}

/**
 * Runs that repeat an earlier one exactly (engine, model, workload, policy, knobs, machine and measured
 * token/s), each with the source of the run it repeats: the same file given twice, or a row pasted twice.
 * A repeat weighs twice in a fit, and leaving one copy out still leaves its twin in, so a leave-one-out
 * error reads better than it is. Repeated measurements of one configuration differ in their token/s and
 * are not repeats.
 */
export function repeatedRuns(runs: readonly MeasuredRun[]): { readonly run: MeasuredRun; readonly repeats: string }[] {
  const first = new Map<string, string>();
  const out: { run: MeasuredRun; repeats: string }[] = [];
  for (const run of runs) {
    const key = JSON.stringify([
      run.engine,
      run.model,
      run.workload,
      run.policy,
      run.knobs,
      run.hardware ?? null,
      run.measuredTokensPerSecond,
    ]);
    const earlier = first.get(key);
    if (earlier === undefined) first.set(key, run.source);
    else out.push({ run, repeats: earlier });
  }
  return out;
}

/** One warning line per repeated run (repeatedRuns), ending with what the repeat does to `consequence`. */
export function repeatedRunWarnings(runs: readonly MeasuredRun[], consequence: string): string[] {
  return repeatedRuns(runs).map(
    ({ run, repeats }) =>
      `Warning: the run at ${run.source} repeats the one at ${repeats} (same engine, model, workload, policy and measured token/s): ${consequence}`,
  );
}
