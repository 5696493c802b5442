/**
 * Classifies the files given to `spillway report` by content: a plan (`spillway plan --out`/`--json`),
 * a Chrome trace (`simulate --trace`, `run --trace`), a comparison (`spillway compare --json`) or a
 * sweep (`spillway sweep --json`, or its `--out` file: a `.csv` file is read as a sweep).
 * Anything else is an InputError naming the file and what was expected.
 */

import { asObject, child, type FieldContext, readNumber, readObject, readString } from "../core/fields.js";
import { describeValue, InputError } from "../core/input-error.js";
import { parsePlan } from "../core/parse-plan.js";
import { parsePolicy } from "../core/parse-policy.js";
import type { Plan } from "../core/plan.js";
import { INPUT_LIMIT_BYTES } from "../core/read-input-file.js";
import { readJsonFile } from "../core/read-json-file.js";
import { parseSweepResult } from "../planner/sweep/parse-sweep.js";
import type { SweepResult } from "../planner/sweep/sweep.js";
import { readSweepFile, sweepFileFormat } from "../planner/sweep/sweep-file.js";
import type { Comparison, Figures } from "../runtime/compare.js";
import { parseTrace, type Trace } from "./read-trace.js";

export type ReportInput =
  | { readonly kind: "plan"; readonly path: string; readonly plan: Plan }
  | { readonly kind: "trace"; readonly path: string; readonly trace: Trace }
  | { readonly kind: "comparison"; readonly path: string; readonly comparison: Comparison }
  | { readonly kind: "sweep"; readonly path: string; readonly sweep: SweepResult };

const EXPECTED =
  "expected a plan (spillway plan --out or --json), a trace (spillway simulate --trace or run --trace), a sweep (spillway sweep --json or --out FILE.csv|.json) or a comparison (spillway compare --json)";

function readFigures(o: Record<string, unknown>, key: string, ctx: FieldContext): Figures {
  const c = child(ctx, key);
  const f = readObject(o, key, ctx);
  const busy = f.busySeconds;
  const busySeconds: Record<string, number> = {};
  if (busy !== undefined) {
    const b = readObject(f, "busySeconds", c);
    for (const k of Object.keys(b)) busySeconds[k] = readNumber(b, k, child(c, "busySeconds"), { min: 0 });
  }
  const peak = readObject(f, "peakBytes", c);
  const pc = child(c, "peakBytes");
  return {
    throughputTokensPerSecond: readNumber(f, "throughputTokensPerSecond", c, { min: 0 }),
    prefillSeconds: readNumber(f, "prefillSeconds", c, { min: 0 }),
    decodeSeconds: readNumber(f, "decodeSeconds", c, { min: 0 }),
    busySeconds,
    peakBytes: {
      gpu: readNumber(peak, "gpu", pc, { min: 0 }),
      cpu: readNumber(peak, "cpu", pc, { min: 0 }),
      disk: readNumber(peak, "disk", pc, { min: 0 }),
    },
  };
}

export function parseComparison(data: unknown, source: string): Comparison {
  const ctx: FieldContext = { source, path: "" };
  const o = asObject(data, ctx);
  const e =
    typeof o.relativeError === "object" && o.relativeError !== null ? (o.relativeError as Record<string, unknown>) : {};
  // Not charted; kept when numeric (JSON writes an undefined ratio as null).
  const ratio = (key: string) => (typeof e[key] === "number" ? (e[key] as number) : Number.NaN);
  const workload = o.workload === undefined ? undefined : readObject(o, "workload", ctx);
  const wctx = child(ctx, "workload");
  return {
    model: readString(o, "model", ctx),
    ...(workload
      ? {
          workload: {
            promptLen: readNumber(workload, "promptLen", wctx, { min: 1, integer: true }),
            genLen: readNumber(workload, "genLen", wctx, { min: 1, integer: true }),
          },
        }
      : {}),
    policy: parsePolicy(o.policy, child(ctx, "policy")),
    predicted: readFigures(o, "predicted", ctx),
    simulated: readFigures(o, "simulated", ctx),
    measured: readFigures(o, "measured", ctx),
    relativeError: {
      throughput: ratio("throughput"),
      prefill: ratio("prefill"),
      decode: ratio("decode"),
      simulatedThroughput: ratio("simulatedThroughput"),
    },
    matchesReference: typeof o.matchesReference === "boolean" ? o.matchesReference : undefined,
  };
}

export function classifyReportInput(data: unknown, path: string): ReportInput {
  if (typeof data !== "object" || data === null || Array.isArray(data))
    throw new InputError(path, undefined, `${EXPECTED}; got ${describeValue(data)}`);
  const o = data as Record<string, unknown>;
  if (o.kind === "sweep") return { kind: "sweep", path, sweep: parseSweepResult(o, path) };
  if ("traceEvents" in o) return { kind: "trace", path, trace: parseTrace(o, path) };
  if ("simulated" in o && "measured" in o && "predicted" in o)
    return { kind: "comparison", path, comparison: parseComparison(o, path) };
  if ("modelSpec" in o && "policy" in o) return { kind: "plan", path, plan: parsePlan(o, path) };
  const keys = Object.keys(o).slice(0, 6);
  throw new InputError(
    path,
    undefined,
    `${EXPECTED}; found an object with ${keys.length ? `keys ${keys.join(", ")}${Object.keys(o).length > 6 ? ", …" : ""}` : "no keys"}`,
  );
}

export function readReportInput(path: string): ReportInput {
  if (sweepFileFormat(path) === "csv") return { kind: "sweep", path, sweep: readSweepFile(path) };
  // A report input may be a Chrome trace, which grows with the run: the trace limit applies.
  return classifyReportInput(readJsonFile(path, { maxBytes: INPUT_LIMIT_BYTES.trace, what: "a report input" }), path);
}
