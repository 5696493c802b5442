/**
 * `spillway trace ...`: routing traces of Mixture-of-Experts models.
 *
 *   spillway trace synth --model mixtral-8x7b --tokens 2000 --seed 1 --out t.csv [--requests 4] [--prompt-tokens 0] [--json]
 *   spillway trace stats t.csv [--cache 1,2,3,4] [--model M] [--json]
 *   spillway trace convert t.csv --out t.jsonl [--json]
 *
 * Every subcommand takes --quiet (no text but errors; --json still prints).
 * Bad input throws InputError (the CLI prints it and exits 2).
 */
import { InputError } from "../core/input-error.js";
import type { ModelSpec } from "../core/model-spec.js";
import { MODEL_CATALOGUE } from "../models/catalogue.js";
import { resolveModel } from "../models/resolve-model.js";
import { writeMegatronJsonl } from "../routing/megatron-jsonl.js";
import { metaFromModel, ROUTING_FORMATS, type RoutingFormat, readRoutingTrace } from "../routing/read-routing-trace.js";
import { writeRoutingCsv } from "../routing/routing-csv.js";
import { type RoutingStats, routingStats } from "../routing/routing-stats.js";
import { type RoutingTrace, rowCount } from "../routing/routing-trace.js";
import { MAX_SYNTH_SEED, synthRouting } from "../routing/synth-routing.js";
import { commandHead } from "./command-heads.js";
import { defineCommand } from "./command-module.js";
import { parseNumberFlag } from "./parse-flags.js";
import { EXIT_CODES_EPILOG } from "./terminal.js";

/** Largest synthetic trace (token x layer x rank slots): about 768 MiB in memory. */
export const MAX_SYNTH_SLOTS = 128 * 2 ** 20;

export interface TraceSynthArgs {
  readonly model: string;
  readonly tokens: string;
  readonly seed?: string | undefined;
  readonly requests?: string | undefined;
  readonly "prompt-tokens"?: string | undefined;
  readonly out: string;
  readonly format?: RoutingFormat | undefined;
  readonly json?: boolean | undefined;
  readonly quiet?: boolean | undefined;
}

export interface TraceStatsArgs {
  readonly file: string;
  readonly cache?: string | undefined;
  readonly model?: string | undefined;
  readonly format?: RoutingFormat | undefined;
  readonly json?: boolean | undefined;
  readonly quiet?: boolean | undefined;
}

export interface TraceConvertArgs {
  readonly file: string;
  readonly out: string;
  readonly model?: string | undefined;
  readonly from?: RoutingFormat | undefined;
  readonly format?: RoutingFormat | undefined;
  readonly json?: boolean | undefined;
  readonly quiet?: boolean | undefined;
}

function moeModelNames(): string {
  return MODEL_CATALOGUE.filter((m) => m.moe)
    .map((m) => m.name)
    .join(", ");
}

/** Resolves --model and insists on a Mixture-of-Experts model. */
export function resolveMoeModel(name: string): ModelSpec {
  const model = resolveModel(name);
  if (!model.moe)
    throw new InputError(
      "--model",
      undefined,
      `${model.name} is not a Mixture-of-Experts model; expected one with experts (catalogue: ${moeModelNames()}) or a config.json that has them`,
    );
  return model;
}

/** Output format from --format, else from the extension (.jsonl/.ndjson: Megatron JSONL; else CSV). */
function outputFormat(path: string, format: RoutingFormat | undefined): RoutingFormat {
  if (format) return format;
  return /\.(jsonl|ndjson)$/i.test(path) ? "megatron-jsonl" : "csv";
}

function writeTrace(path: string, trace: RoutingTrace, format: RoutingFormat): void {
  if (format === "csv") writeRoutingCsv(path, trace);
  else writeMegatronJsonl(path, trace);
}

export function runTraceSynth(argv: TraceSynthArgs): void {
  const model = resolveMoeModel(argv.model);
  const tokens = parseNumberFlag("tokens", argv.tokens, { min: 1, integer: true })!;
  const requests = parseNumberFlag("requests", argv.requests, { min: 1, integer: true }) ?? 1;
  const promptTokens = parseNumberFlag("prompt-tokens", argv["prompt-tokens"], { min: 0, integer: true }) ?? 0;
  const seed = parseNumberFlag("seed", argv.seed, { min: 0, max: MAX_SYNTH_SEED, integer: true }) ?? 0;
  const slots = (tokens + promptTokens) * requests * model.numLayers * model.moe!.expertsPerToken;
  if (slots > MAX_SYNTH_SLOTS) {
    throw new InputError(
      "--tokens",
      undefined,
      `${requests} request(s) x ${tokens + promptTokens} tokens x ${model.numLayers} layers x top-${model.moe!.expertsPerToken} is ${slots} rows; expected at most ${MAX_SYNTH_SLOTS}`,
    );
  }
  const trace = synthRouting({ model, tokens, seed, requests, promptTokens });
  const format = outputFormat(argv.out, argv.format);
  writeTrace(argv.out, trace, format);
  if (argv.json) {
    process.stdout.write(
      JSON.stringify(
        { model: model.name, out: argv.out, format, seed, requests, tokens, promptTokens, rows: rowCount(trace) },
        null,
        2,
      ) + "\n",
    );
    return;
  }
  if (argv.quiet) return;
  process.stdout.write(
    `Wrote ${argv.out}: ${model.name} routing, ${requests} request(s) x ${tokens} decode tokens${promptTokens ? ` (+${promptTokens} prefill)` : ""}, seed ${seed}, ${rowCount(trace)} rows\n`,
  );
}

/** "1,2,3,4" -> [1, 2, 3, 4], each an integer 1..numExperts. */
export function parseCacheSizes(raw: string | undefined, numExperts: number): number[] {
  if (raw === undefined) return [1, 2, 3, 4].filter((k) => k <= numExperts);
  if (Array.isArray(raw))
    throw new InputError(
      "--cache",
      undefined,
      "given more than once; expected one comma-separated list such as 1,2,3,4",
    );
  const items = String(raw)
    .split(",")
    .map((s) => s.trim());
  const sizes = items.map((item) => {
    const value = item === "" ? NaN : Number(item);
    if (!Number.isInteger(value) || value < 1 || value > numExperts) {
      throw new InputError(
        "--cache",
        undefined,
        `expected comma-separated integers 1..${numExperts} (expert slots per layer), got ${JSON.stringify(item)}`,
      );
    }
    return value;
  });
  return [...new Set(sizes)];
}

export function runTraceStats(argv: TraceStatsArgs): RoutingStats {
  const given = argv.model ? metaFromModel(resolveMoeModel(argv.model)) : {};
  const trace = readRoutingTrace(argv.file, { ...(argv.format ? { format: argv.format } : {}), given });
  const stats = routingStats(trace, { cacheSizes: parseCacheSizes(argv.cache, trace.meta.numExperts) });
  if (argv.json) process.stdout.write(JSON.stringify(stats, null, 2) + "\n");
  else if (!argv.quiet) process.stdout.write(formatRoutingStats(stats, argv.file) + "\n");
  return stats;
}

export function runTraceConvert(argv: TraceConvertArgs): void {
  const given = argv.model ? metaFromModel(resolveMoeModel(argv.model)) : {};
  const trace = readRoutingTrace(argv.file, { ...(argv.from ? { format: argv.from } : {}), given });
  const format = outputFormat(argv.out, argv.format);
  writeTrace(argv.out, trace, format);
  if (argv.json)
    process.stdout.write(
      JSON.stringify(
        { in: argv.file, out: argv.out, format, tokens: trace.numTokens, rows: rowCount(trace) },
        null,
        2,
      ) + "\n",
    );
  else if (!argv.quiet)
    process.stdout.write(`Wrote ${argv.out} (${format}): ${trace.numTokens} tokens, ${rowCount(trace)} rows\n`);
}

const f3 = (x: number) => (Number.isNaN(x) ? "-" : x.toFixed(3));

export function formatRoutingStats(s: RoutingStats, source: string): string {
  const sizes = Object.keys(s.lruHitRate);
  const range = (values: number[]) => `${f3(Math.min(...values))}-${f3(Math.max(...values))}`;
  const mid = Math.floor(s.numLayers / 2);
  const lines = [
    `Routing trace ${source}: ${s.model}, ${s.numLayers} layers, ${s.numExperts} experts, top-${s.expertsPerToken}; ${s.requests} request(s), ${s.tokensUsed} ${s.phase === "decode" ? "decode " : ""}tokens`,
    `LRU hit rate (mean over layers): ${sizes.map((k) => `k=${k} ${f3(s.lruHitRate[k]!)}`).join("  ")}`,
    `Popularity entropy: ${f3(s.popularityEntropyBits.mean)} bits of ${f3(s.maxEntropyBits)} (layers ${range(s.popularityEntropyBits.perLayer)}); top expert share ${f3(s.topExpertShare.mean)} (layers ${range(s.topExpertShare.perLayer)}; uniform ${f3(1 / s.numExperts)})`,
    `First-choice repetition: mean ${f3(s.repetitionRate.mean)}; layer 0 ${f3(s.repetitionRate.perLayer[0]!)}, layer ${mid} ${f3(s.repetitionRate.perLayer[mid]!)}, layer ${s.numLayers - 1} ${f3(s.repetitionRate.perLayer[s.numLayers - 1]!)}`,
    `Next-layer predictability: ${f3(s.nextLayerPredictability.mean)} (popularity-only baseline ${f3(s.nextLayerBaseline.mean)}; random ${f3(s.expertsPerToken / s.numExperts)})`,
    ...(s.recordedGuesses
      ? [
          `Recorded guesses: ${s.recordedGuesses.perLayer} per token, ${s.recordedGuesses.distance} layer(s) ahead; the first ${Math.min(s.expertsPerToken, s.recordedGuesses.perLayer)} name ${f3(s.recordedGuesses.recall)} of the routed experts`,
        ]
      : []),
    "",
    ["layer", ...sizes.map((k) => `lru k=${k}`), "entropy", "top share", "repeat", "next"]
      .map((h) => h.padStart(10))
      .join(""),
  ];
  for (let l = 0; l < s.numLayers; l++) {
    const cells = [
      String(l),
      ...sizes.map((k) => f3(s.lruHitRatePerLayer[k]![l]!)),
      f3(s.popularityEntropyBits.perLayer[l]!),
      f3(s.topExpertShare.perLayer[l]!),
      f3(s.repetitionRate.perLayer[l]!),
      l + 1 < s.numLayers ? f3(s.nextLayerPredictability.perLayer[l]!) : "",
    ];
    lines.push(cells.map((c) => c.padStart(10)).join(""));
  }
  return lines.join("\n");
}

const QUIET = { type: "boolean", default: false, describe: "print no text but errors (--json still prints)" } as const;

const traceSynthCommand = defineCommand({
  command: "synth",
  describe: "write a seeded synthetic routing trace calibrated to published Mixtral statistics",
  builder: (s) =>
    s
      .option("model", {
        type: "string",
        demandOption: true,
        describe: `an MoE model: catalogue name (${moeModelNames()}) or config.json`,
      })
      .option("tokens", { type: "string", demandOption: true, describe: "decode tokens per request" })
      .option("requests", { type: "string", describe: "independent requests (default 1)" })
      .option("prompt-tokens", { type: "string", describe: "prefill tokens per request before decoding (default 0)" })
      .option("seed", { type: "string", describe: "random seed (default 0)" })
      .option("out", {
        type: "string",
        demandOption: true,
        describe: "file to write (.csv, or .jsonl for Megatron-style JSON Lines)",
      })
      .option("format", { choices: ROUTING_FORMATS, describe: "output format (default: from the extension)" })
      .option("json", { type: "boolean", default: false, describe: "print a JSON summary" })
      .option("quiet", QUIET)
      .epilog(EXIT_CODES_EPILOG)
      .example(
        "$0 trace synth --model mixtral-8x7b --tokens 2000 --requests 4 --seed 1 --out t.csv",
        "8,000 decode tokens",
      ),
  handler: (argv) => runTraceSynth(argv),
});

const traceStatsCommand = defineCommand({
  command: "stats <file>",
  describe: "LRU hit rates by cache size, popularity entropy, repetition and next-layer predictability of a trace",
  builder: (s) =>
    s
      .positional("file", {
        type: "string",
        demandOption: true,
        describe: "a routing trace (.csv, or Megatron-style .jsonl)",
      })
      .option("cache", { type: "string", describe: "comma-separated expert slots per layer (default 1,2,3,4)" })
      .option("model", { type: "string", describe: "MoE model giving layers/experts/top-k when the file does not" })
      .option("format", { choices: ROUTING_FORMATS, describe: "input format (default: from the extension or content)" })
      .option("json", { type: "boolean", default: false, describe: "print the statistics as JSON" })
      .option("quiet", QUIET)
      .epilog(EXIT_CODES_EPILOG)
      .example("$0 trace stats t.csv --cache 1,2,3,4 --json", "hit rates keyed by cache size"),
  handler: (argv) => {
    runTraceStats(argv);
  },
});

const traceConvertCommand = defineCommand({
  command: "convert <file>",
  describe: "convert a routing trace between CSV and Megatron-style JSON Lines",
  builder: (s) =>
    s
      .positional("file", { type: "string", demandOption: true, describe: "the trace to read" })
      .option("out", { type: "string", demandOption: true, describe: "file to write (.csv or .jsonl)" })
      .option("from", { choices: ROUTING_FORMATS, describe: "input format (default: from the extension or content)" })
      .option("format", { choices: ROUTING_FORMATS, describe: "output format (default: from the extension)" })
      .option("model", { type: "string", describe: "MoE model giving layers/experts/top-k when the file does not" })
      .option("json", { type: "boolean", default: false, describe: "print a JSON summary of the file written" })
      .option("quiet", QUIET)
      .epilog(EXIT_CODES_EPILOG)
      .example("$0 trace convert t.csv --out t.jsonl", "CSV to Megatron-style JSON Lines"),
  handler: (argv) => runTraceConvert(argv),
});

/** `trace synth|stats|convert`: a command of subcommands (yargs runs the subcommand's handler). */
export const traceCommand = defineCommand({
  ...commandHead("trace"),
  builder: (t) =>
    t
      .command(traceSynthCommand)
      .command(traceStatsCommand)
      .command(traceConvertCommand)
      .epilog(EXIT_CODES_EPILOG)
      .example(
        "$0 trace synth --model mixtral-8x7b --tokens 500 --out t.csv && $0 trace stats t.csv",
        "synthesise a trace and summarise it",
      )
      .demandCommand(1, "name a trace subcommand: synth, stats or convert"),
  handler: () => {},
});
