/**
 * Routing traces as CSV, one row per (request, token, layer, rank):
 *
 *   # spillway-routing-trace model=mixtral-8x7b num_layers=32 num_experts=8 experts_per_token=2
 *   request,token,phase,layer,rank,expert,gate_weight
 *   0,0,decode,0,0,3,0.6123
 *   0,0,decode,0,1,5,0.3877
 *
 * The first line (metadata) is optional when reading: without it, and without numbers from the caller
 * (e.g. --model), layers, experts and top-k are inferred as the largest index seen plus one. Every row
 * is validated: non-negative integers, phase "prefill" or "decode", layer < num_layers,
 * rank < experts_per_token, expert < num_experts, gate_weight finite in [0, 1], no expert twice in a
 * (request, token, layer), each (request, token, layer, rank) exactly once and every token complete.
 * Errors name the file, line number and column, and say what was expected.
 *
 * A trace with a speculative prefetcher's guesses (RoutingTrace.guesses, recorded by runtime/moe) adds
 * `guess_distance=a guesses_per_layer=m` to the metadata line and a last column `kind`: `route` for the
 * routing rows above, `guess` for a guess row, where `rank` is the guess's rank (< m), `layer` the
 * layer it names experts for (>= a) and `gate_weight` the guessing gate's renormalised probability:
 *
 *   0,5,decode,1,0,6,0.71,guess
 *
 * Every token then has m guess rows at every layer from a on (routing-guesses-builder.ts checks it).
 * Files without the column read as before.
 */
import { parse } from "csv-parse/sync";
import { csvInputError } from "../core/csv-input-error.js";
import { InputError } from "../core/input-error.js";
import { writeFileAtomic } from "../core/write-file-atomic.js";
import { type GuessShape, RoutingGuessesBuilder } from "./routing-guesses-builder.js";
import { guessesAt, phaseName, type RoutingTrace, type RoutingTraceMeta } from "./routing-trace.js";
import { type PartialRoutingMeta, type RoutingColumn, RoutingTraceBuilder } from "./routing-trace-builder.js";

export const ROUTING_CSV_COLUMNS: readonly RoutingColumn[] = [
  "request",
  "token",
  "phase",
  "layer",
  "rank",
  "expert",
  "gate_weight",
];
export const ROUTING_CSV_MAGIC = "# spillway-routing-trace";
/** The optional last column of a trace with guesses, and its two values. */
export const ROUTING_CSV_KIND_COLUMN = "kind";
const KIND_ROUTE = "route";
const KIND_GUESS = "guess";

const INTEGER = /^\d+$/;
const MAX_INDEX = 2 ** 31 - 1;

/** Formats a gate weight with at most 6 decimals (enough for a float32 in [0, 1], and byte-stable). */
export function formatGateWeight(weight: number): string {
  return String(Math.round(weight * 1e6) / 1e6);
}

export function metadataLine(meta: RoutingTraceMeta, guesses?: GuessShape): string {
  const guessKeys = guesses ? ` guess_distance=${guesses.distance} guesses_per_layer=${guesses.perLayer}` : "";
  return `${ROUTING_CSV_MAGIC} model=${meta.model} num_layers=${meta.numLayers} num_experts=${meta.numExperts} experts_per_token=${meta.expertsPerToken}${guessKeys}`;
}

/** The trace as CSV text (metadata line, header, rows in trace order; a token's guess rows after its routing rows). */
export function routingTraceToCsv(trace: RoutingTrace): string {
  const { numLayers, expertsPerToken } = trace.meta;
  const guesses = trace.guesses;
  const header = guesses ? [...ROUTING_CSV_COLUMNS, ROUTING_CSV_KIND_COLUMN] : ROUTING_CSV_COLUMNS;
  const parts: string[] = [metadataLine(trace.meta, guesses), header.join(",")];
  const routeSuffix = guesses ? `,${KIND_ROUTE}` : "";
  let slot = 0;
  for (let i = 0; i < trace.numTokens; i++) {
    const prefix = `${trace.requests[i]},${trace.tokens[i]},${phaseName(trace.phases[i]!)},`;
    for (let l = 0; l < numLayers; l++) {
      for (let r = 0; r < expertsPerToken; r++, slot++) {
        parts.push(
          `${prefix}${l},${r},${trace.experts[slot]},${formatGateWeight(trace.gateWeights[slot]!)}${routeSuffix}`,
        );
      }
    }
    if (!guesses) continue;
    for (let l = guesses.distance; l < numLayers; l++) {
      const base = (i * numLayers + l) * guesses.perLayer;
      guessesAt(guesses, numLayers, i, l).forEach((expert, r) => {
        parts.push(`${prefix}${l},${r},${expert},${formatGateWeight(guesses.weights[base + r]!)},${KIND_GUESS}`);
      });
    }
  }
  return parts.join("\n") + "\n";
}

export function writeRoutingCsv(path: string, trace: RoutingTrace): void {
  writeFileAtomic(path, routingTraceToCsv(trace));
}

/** Parses the optional metadata line; `source` names the file for errors. */
function parseMetadataLine(line: string, source: string): PartialRoutingMeta & { guesses?: GuessShape } {
  const fields: Record<string, string> = {};
  for (const item of line
    .slice(ROUTING_CSV_MAGIC.length)
    .trim()
    .split(/\s+/)
    .filter((s) => s !== "")) {
    const eq = item.indexOf("=");
    if (eq <= 0)
      throw new InputError(
        source,
        "line 1",
        `expected key=value metadata after "${ROUTING_CSV_MAGIC}", got ${JSON.stringify(item)}`,
      );
    fields[item.slice(0, eq)] = item.slice(eq + 1);
  }
  const known = ["model", "num_layers", "num_experts", "experts_per_token", "guess_distance", "guesses_per_layer"];
  for (const key of Object.keys(fields)) {
    if (!known.includes(key))
      throw new InputError(source, `line 1, ${key}`, `unknown metadata key; expected one of ${known.join(", ")}`);
  }
  const count = (key: string): number | undefined => {
    const raw = fields[key];
    if (raw === undefined) return undefined;
    if (!INTEGER.test(raw) || Number(raw) < 1)
      throw new InputError(source, `line 1, ${key}`, `expected a positive integer, got ${JSON.stringify(raw)}`);
    return Number(raw);
  };
  const meta: {
    model?: string;
    numLayers?: number;
    numExperts?: number;
    expertsPerToken?: number;
    guesses?: GuessShape;
  } = {};
  const distance = count("guess_distance");
  const perLayer = count("guesses_per_layer");
  if ((distance === undefined) !== (perLayer === undefined))
    throw new InputError(
      source,
      `line 1, ${distance === undefined ? "guess_distance" : "guesses_per_layer"}`,
      "expected guess_distance and guesses_per_layer together (a trace with guesses) or neither",
    );
  if (distance !== undefined && perLayer !== undefined) meta.guesses = { distance, perLayer };
  if (fields.model !== undefined) meta.model = fields.model;
  const numLayers = count("num_layers");
  const numExperts = count("num_experts");
  const expertsPerToken = count("experts_per_token");
  if (numLayers !== undefined) meta.numLayers = numLayers;
  if (numExperts !== undefined) meta.numExperts = numExperts;
  if (expertsPerToken !== undefined) meta.expertsPerToken = expertsPerToken;
  if (meta.numExperts !== undefined && meta.expertsPerToken !== undefined && meta.expertsPerToken > meta.numExperts) {
    throw new InputError(
      source,
      "line 1, experts_per_token",
      `expected at most num_experts (${meta.numExperts}), got ${meta.expertsPerToken}`,
    );
  }
  return meta;
}

/**
 * Reads a routing CSV. `given` (e.g. from --model) overrides nothing in the file: when both say how
 * many layers/experts/top-k there are, they must agree.
 */
export function parseRoutingCsv(text: string, source: string, given: PartialRoutingMeta = {}): RoutingTrace {
  const newline = text.indexOf("\n");
  const firstLine = (newline < 0 ? text : text.slice(0, newline)).replace(/\r$/, "");
  const { guesses: guessShape, ...fromFile } = firstLine.startsWith(ROUTING_CSV_MAGIC)
    ? parseMetadataLine(firstLine, source)
    : {};
  const meta = mergeMeta(fromFile, given, source);
  const where = (line: number, column: RoutingColumn) => `line ${line}, column ${column}`;
  const builder = new RoutingTraceBuilder(source, where);
  const guessBuilder = new RoutingGuessesBuilder(source, where);
  const routeLimits = { layer: meta.numLayers, rank: meta.expertsPerToken, expert: meta.numExperts };
  const guessLimits = { ...routeLimits, rank: guessShape?.perLayer };
  let limits = routeLimits;
  let columnIndex: number[] | undefined;
  let kindIndex = -1;
  let columns = ROUTING_CSV_COLUMNS.length;

  const integer = (record: string[], line: number, column: RoutingColumn, index: number): number => {
    const raw = record[index]!.trim();
    const limit = column === "layer" || column === "rank" || column === "expert" ? limits[column] : undefined;
    const expected = limit !== undefined ? `an integer 0..${limit - 1}` : "a non-negative integer";
    if (!INTEGER.test(raw))
      throw new InputError(source, where(line, column), `expected ${expected}, got ${JSON.stringify(raw)}`);
    const value = Number(raw);
    if (value > MAX_INDEX || (limit !== undefined && value >= limit)) {
      const why =
        column === "layer"
          ? ` (${limit} layers)`
          : column === "rank"
            ? ` (top-${limit} routing)`
            : column === "expert"
              ? ` (${limit} experts)`
              : "";
      throw new InputError(source, where(line, column), `expected ${expected}${why}, got ${raw}`);
    }
    return value;
  };

  try {
    parse(text, {
      comment: "#",
      relax_column_count: true,
      skip_empty_lines: true,
      on_record: (record: string[], context: { lines: number }) => {
        const line = context.lines;
        if (!columnIndex) {
          const header = record.map((h) => h.trim());
          columnIndex = ROUTING_CSV_COLUMNS.map((column) => {
            const index = header.indexOf(column);
            if (index < 0)
              throw new InputError(
                source,
                `line ${line}, header`,
                `missing column ${JSON.stringify(column)}; expected the header ${ROUTING_CSV_COLUMNS.join(",")}`,
              );
            return index;
          });
          kindIndex = header.indexOf(ROUTING_CSV_KIND_COLUMN);
          columns = header.length;
          const extra = header.find(
            (h) => !(ROUTING_CSV_COLUMNS as readonly string[]).includes(h) && h !== ROUTING_CSV_KIND_COLUMN,
          );
          if (extra !== undefined)
            throw new InputError(
              source,
              `line ${line}, header`,
              `unknown column ${JSON.stringify(extra)}; expected the header ${ROUTING_CSV_COLUMNS.join(",")}`,
            );
          return null;
        }
        if (record.length !== columns) {
          throw new InputError(
            source,
            `line ${line}`,
            `expected ${columns} values (${ROUTING_CSV_COLUMNS.join(",")}${kindIndex >= 0 ? `,${ROUTING_CSV_KIND_COLUMN}` : ""}), got ${record.length}`,
          );
        }
        const kind = kindIndex >= 0 ? record[kindIndex]!.trim() : KIND_ROUTE;
        if (kind !== KIND_ROUTE && kind !== KIND_GUESS)
          throw new InputError(
            source,
            `line ${line}, column ${ROUTING_CSV_KIND_COLUMN}`,
            `expected "${KIND_ROUTE}" or "${KIND_GUESS}", got ${JSON.stringify(kind)}`,
          );
        limits = kind === KIND_GUESS ? guessLimits : routeLimits;
        const [ci, ti, pi, li, ri, ei, wi] = columnIndex as [number, number, number, number, number, number, number];
        const phase = record[pi]!.trim();
        if (phase !== "prefill" && phase !== "decode")
          throw new InputError(
            source,
            where(line, "phase"),
            `expected "prefill" or "decode", got ${JSON.stringify(phase)}`,
          );
        const rawWeight = record[wi]!.trim();
        const weight = rawWeight === "" ? NaN : Number(rawWeight);
        if (!Number.isFinite(weight) || weight < 0 || weight > 1)
          throw new InputError(
            source,
            where(line, "gate_weight"),
            `expected a number in [0, 1], got ${JSON.stringify(rawWeight)}`,
          );
        (kind === KIND_GUESS ? guessBuilder : builder).add(
          integer(record, line, "request", ci),
          integer(record, line, "token", ti),
          phase,
          integer(record, line, "layer", li),
          integer(record, line, "rank", ri),
          integer(record, line, "expert", ei),
          weight,
          line,
        );
        return null;
      },
    });
  } catch (error) {
    throw csvInputError(error, source);
  }
  if (!columnIndex)
    throw new InputError(source, undefined, `empty; expected the header ${ROUTING_CSV_COLUMNS.join(",")} and rows`);
  const trace = builder.finish(meta);
  const guesses = guessBuilder.finish(trace, guessShape);
  return guesses ? { ...trace, guesses } : trace;
}

/** Combines metadata from a file with metadata from the caller; a disagreement is an error. */
export function mergeMeta(fromFile: PartialRoutingMeta, given: PartialRoutingMeta, source: string): PartialRoutingMeta {
  const out: { model?: string; numLayers?: number; numExperts?: number; expertsPerToken?: number } = { ...given };
  for (const key of ["numLayers", "numExperts", "expertsPerToken"] as const) {
    const a = fromFile[key];
    const b = given[key];
    if (a !== undefined && b !== undefined && a !== b) {
      throw new InputError(
        source,
        key,
        `the file says ${a} but the model${given.model ? ` ${given.model}` : ""} has ${b}`,
      );
    }
    if (a !== undefined) out[key] = a;
  }
  if (fromFile.model !== undefined && given.model === undefined) out.model = fromFile.model;
  return out;
}
