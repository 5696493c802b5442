/**
 * Reading a sweep back (`spillway report` charts one): the JSON document `spillway sweep` writes, and
 * its rows, each checked field by field (an InputError names the file, the field and what was expected).
 * The CSV form (sweep-csv.ts) has the same fields as columns and is checked by the same rules.
 */
import {
  asObject,
  child,
  type FieldContext,
  fail,
  readBoundedNumber,
  readName,
  readNumber,
  readObject,
  readOptionalNumber,
  rejectUnknownKeys,
} from "../../core/fields.js";
import { describeValue } from "../../core/input-error.js";
import { MAX_CLUSTER_NODES, MAX_GPUS_PER_NODE } from "../../core/physical-bounds.js";
import { COST_MODEL_NAMES, type CostModelName } from "../../core/plan.js";
import { SCHEDULE_NAMES, type ScheduleName } from "../../core/schedule-name.js";
import type { Workload } from "../../core/workload.js";
import { dollarsPerMillionTokens } from "./gpu-hour-prices.js";
import type { SweepResult } from "./sweep.js";
import type { SweepRow } from "./sweep-row.js";

/** Every field of a row, in the order the CSV's columns follow. */
export const SWEEP_ROW_FIELDS = [
  "profile",
  "kind",
  "gpu",
  "nodes",
  "gpusPerNode",
  "gpus",
  "fits",
  "gpuBatchSize",
  "numGpuBatches",
  "stages",
  "microBatches",
  "throughputTokensPerSecond",
  "bottleneck",
  "dollarsPerGpuHour",
  "dollarsPerMillionTokens",
  "reason",
  "tensorParallelSize",
] as const satisfies readonly (keyof SweepRow)[];

function readChoice<T extends string>(
  o: Record<string, unknown>,
  key: string,
  ctx: FieldContext,
  choices: readonly T[],
): T {
  const value = o[key];
  if (typeof value !== "string" || !(choices as readonly string[]).includes(value))
    fail(ctx, key, `expected one of ${choices.join(", ")}, got ${describeValue(value)}`);
  return value as T;
}

function readOptionalName(o: Record<string, unknown>, key: string, ctx: FieldContext): string | undefined {
  return o[key] === undefined ? undefined : readName(o, key, ctx);
}

export function parseSweepRow(data: unknown, ctx: FieldContext): SweepRow {
  const o = asObject(data, ctx);
  rejectUnknownKeys(o, ctx, SWEEP_ROW_FIELDS);
  const nodes = readBoundedNumber(o, "nodes", ctx, { min: 1, integer: true }, { max: MAX_CLUSTER_NODES });
  const gpusPerNode = readBoundedNumber(o, "gpusPerNode", ctx, { min: 1, integer: true }, { max: MAX_GPUS_PER_NODE });
  const gpus = readNumber(o, "gpus", ctx, { min: 1, integer: true });
  if (gpus !== nodes * gpusPerNode)
    fail(ctx, "gpus", `expected nodes x gpusPerNode = ${nodes * gpusPerNode}, got ${gpus}`);
  if (typeof o.fits !== "boolean") fail(ctx, "fits", `expected true or false, got ${describeValue(o.fits)}`);
  const fits = o.fits;
  const reason = readOptionalName(o, "reason", ctx);
  if (!fits && reason === undefined) fail(ctx, "reason", "missing: a row that does not fit says why");
  const count = (key: string, max?: number) =>
    readOptionalNumber(o, key, ctx, { min: 1, integer: true, ...(max !== undefined ? { max } : {}) });
  const throughput = readOptionalNumber(o, "throughputTokensPerSecond", ctx, { min: 0 });
  if (fits && !(throughput !== undefined && throughput > 0))
    fail(
      ctx,
      "throughputTokensPerSecond",
      `expected a number > 0 for a row that fits, got ${describeValue(throughput)}`,
    );
  const price = readOptionalNumber(o, "dollarsPerGpuHour", ctx, { min: 0 });
  const cost = readOptionalNumber(o, "dollarsPerMillionTokens", ctx, { min: 0 });
  if (cost !== undefined) {
    if (!fits || price === undefined || throughput === undefined)
      fail(ctx, "dollarsPerMillionTokens", "given for a row without a plan that fits and a price");
    const expected = dollarsPerMillionTokens(gpus, price, throughput);
    if (Math.abs(cost - expected) > 1e-9 * Math.max(1, expected))
      fail(
        ctx,
        "dollarsPerMillionTokens",
        `expected gpus x dollarsPerGpuHour / 3600 / throughputTokensPerSecond x 1e6 = ${expected}, got ${cost}`,
      );
  }
  const optional = {
    gpuBatchSize: count("gpuBatchSize"),
    numGpuBatches: count("numGpuBatches"),
    stages: count("stages", gpus),
    microBatches: count("microBatches"),
    tensorParallelSize: count("tensorParallelSize", gpusPerNode),
    throughputTokensPerSecond: throughput,
    bottleneck: readOptionalName(o, "bottleneck", ctx),
    dollarsPerGpuHour: price,
    dollarsPerMillionTokens: cost,
    reason,
  };
  return {
    profile: readName(o, "profile", ctx),
    kind: readChoice(o, "kind", ctx, ["gpu", "cluster"] as const),
    gpu: readName(o, "gpu", ctx),
    nodes,
    gpusPerNode,
    gpus,
    fits,
    ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)),
  };
}

/** The sweep's heading fields, shared by the JSON document and every CSV row. */
export function parseSweepHeading(
  o: Record<string, unknown>,
  ctx: FieldContext,
  workload: Record<string, unknown>,
  workloadCtx: FieldContext,
): { model: string; workload: Workload; costModel: CostModelName; schedule: ScheduleName } {
  return {
    model: readName(o, "model", ctx),
    workload: {
      promptLen: readNumber(workload, "promptLen", workloadCtx, { min: 1, integer: true }),
      genLen: readNumber(workload, "genLen", workloadCtx, { min: 1, integer: true }),
    },
    costModel: readChoice(o, "costModel", ctx, COST_MODEL_NAMES),
    schedule: readChoice(o, "schedule", ctx, SCHEDULE_NAMES),
  };
}

/** Validates parsed JSON as a sweep result (`spillway sweep --json` or `--out FILE.json`). */
export function parseSweepResult(data: unknown, source: string): SweepResult {
  const ctx: FieldContext = { source, path: "" };
  const o = asObject(data, ctx);
  rejectUnknownKeys(o, ctx, ["kind", "model", "workload", "costModel", "schedule", "rows"]);
  if (o.kind !== "sweep") fail(ctx, "kind", `expected "sweep", got ${describeValue(o.kind)}`);
  const workload = readObject(o, "workload", ctx);
  const heading = parseSweepHeading(o, ctx, workload, child(ctx, "workload"));
  rejectUnknownKeys(workload, child(ctx, "workload"), ["promptLen", "genLen"]);
  if (!Array.isArray(o.rows) || o.rows.length === 0)
    fail(ctx, "rows", `expected a non-empty array of rows, got ${describeValue(o.rows)}`);
  const rows = o.rows.map((r, i) => parseSweepRow(r, child(child(ctx, "rows"), i)));
  checkUniqueProfiles(rows, (i) => ({ source, path: `rows[${i}]` }));
  return { kind: "sweep", ...heading, rows };
}

/** A sweep plans each profile once: a name given twice is refused. */
export function checkUniqueProfiles(rows: readonly SweepRow[], where: (index: number) => FieldContext): void {
  const seen = new Set<string>();
  rows.forEach((r, i) => {
    if (seen.has(r.profile))
      fail(where(i), "profile", `${JSON.stringify(r.profile)} is in the sweep twice; each profile is one row`);
    seen.add(r.profile);
  });
}
