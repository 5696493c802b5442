/**
 * A sweep's file, by its extension: `.csv` (sweep-csv.ts) or `.json` (the document `--json` prints).
 * Written atomically; read with the document size limit, only from a regular file.
 */
import { readInputText } from "../../core/read-input-file.js";
import { parseJsonText } from "../../core/read-json-file.js";
import { writeFileAtomic } from "../../core/write-file-atomic.js";
import { parseSweepResult } from "./parse-sweep.js";
import type { SweepResult } from "./sweep.js";
import { parseSweepCsv, sweepToCsv } from "./sweep-csv.js";

export type SweepFileFormat = "csv" | "json";

/** The format a file name asks for, or undefined when it ends in neither .csv nor .json. */
export function sweepFileFormat(path: string): SweepFileFormat | undefined {
  const lower = path.toLowerCase();
  return lower.endsWith(".csv") ? "csv" : lower.endsWith(".json") ? "json" : undefined;
}

export function sweepJson(result: SweepResult): string {
  return JSON.stringify(result, null, 2) + "\n";
}

/** Writes `result` to `path` as its extension says (the caller has checked it: sweepFileFormat). */
export function writeSweepFile(path: string, result: SweepResult): void {
  writeFileAtomic(path, sweepFileFormat(path) === "csv" ? sweepToCsv(result) : sweepJson(result));
}

/** Reads a sweep from a .csv or a JSON file ("-": standard input, JSON). */
export function readSweepFile(path: string): SweepResult {
  const source = path === "-" ? "<stdin>" : path;
  const text = readInputText(path, { what: "a sweep", expected: "a sweep CSV or JSON file" });
  if (sweepFileFormat(path) === "csv") return parseSweepCsv(text, source);
  return parseSweepResult(parseJsonText(text, source), source);
}
