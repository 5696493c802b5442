/**
 * A sweep as CSV: a header row of the heading fields (model, promptLen, genLen, costModel, schedule,
 * repeated on every row so each row stands alone) and the row fields, named as in the JSON
 * (parse-sweep.ts SWEEP_ROW_FIELDS); an empty cell is a field the row does not have. Read back with the
 * same checks as the JSON, errors naming FILE:LINE and the column.
 */
import { parseCsvRecords } from "../../core/csv-records.js";
import type { FieldContext } from "../../core/fields.js";
import { InputError } from "../../core/input-error.js";
import { checkUniqueProfiles, parseSweepHeading, parseSweepRow, SWEEP_ROW_FIELDS } from "./parse-sweep.js";
import type { SweepResult } from "./sweep.js";

const HEADING_COLUMNS = ["model", "promptLen", "genLen", "costModel", "schedule"] as const;
export const SWEEP_CSV_COLUMNS = [...HEADING_COLUMNS, ...SWEEP_ROW_FIELDS] as const;
const NUMERIC_COLUMNS = new Set<string>([
  "promptLen",
  "genLen",
  "nodes",
  "gpusPerNode",
  "gpus",
  "gpuBatchSize",
  "numGpuBatches",
  "stages",
  "microBatches",
  "tensorParallelSize",
  "throughputTokensPerSecond",
  "dollarsPerGpuHour",
  "dollarsPerMillionTokens",
]);

/** A CSV cell: quoted when it holds a comma, a quote or a line break. */
function cell(value: unknown): string {
  if (value === undefined) return "";
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function sweepToCsv(result: SweepResult): string {
  const heading: Record<(typeof HEADING_COLUMNS)[number], unknown> = {
    model: result.model,
    promptLen: result.workload.promptLen,
    genLen: result.workload.genLen,
    costModel: result.costModel,
    schedule: result.schedule,
  };
  const lines = [SWEEP_CSV_COLUMNS.join(",")];
  for (const row of result.rows) {
    const values: Record<string, unknown> = { ...heading, ...row };
    lines.push(SWEEP_CSV_COLUMNS.map((c) => cell(values[c])).join(","));
  }
  return lines.join("\n") + "\n";
}

/** A cell as the JSON value it stands for: a number, true/false, a string; undefined when empty. */
function cellValue(column: string, text: string): unknown {
  if (text === "") return undefined;
  if (column === "fits") return text === "true" ? true : text === "false" ? false : text;
  if (NUMERIC_COLUMNS.has(column)) {
    const n = Number(text);
    return Number.isFinite(n) ? n : text;
  }
  return text;
}

export function parseSweepCsv(text: string, source: string): SweepResult {
  const records = parseCsvRecords(text, source);
  const [header, ...rows] = records;
  if (!header) throw new InputError(source, undefined, `empty; expected a header row: ${SWEEP_CSV_COLUMNS.join(",")}`);
  header.record.forEach((name, i) => {
    if (!(SWEEP_CSV_COLUMNS as readonly string[]).includes(name))
      throw new InputError(
        `${source}:${header.info.lines}`,
        `column ${i + 1}`,
        `unknown column ${JSON.stringify(name)}; expected ${SWEEP_CSV_COLUMNS.join(", ")}`,
      );
    if (header.record.indexOf(name) !== i)
      throw new InputError(
        `${source}:${header.info.lines}`,
        `column ${i + 1}`,
        `column ${JSON.stringify(name)} given twice`,
      );
  });
  for (const column of [...HEADING_COLUMNS, "profile", "kind", "gpu", "nodes", "gpusPerNode", "gpus", "fits"])
    if (!header.record.includes(column))
      throw new InputError(`${source}:${header.info.lines}`, undefined, `missing column ${JSON.stringify(column)}`);
  if (rows.length === 0) throw new InputError(source, undefined, "no rows: a header row and nothing below it");
  let first: ReturnType<typeof parseSweepHeading> | undefined;
  const contexts: FieldContext[] = [];
  const parsed = rows.map(({ record, info }) => {
    const ctx: FieldContext = { source: `${source}:${info.lines}`, path: "" };
    contexts.push(ctx);
    const values: Record<string, unknown> = {};
    header.record.forEach((name, i) => {
      const v = cellValue(name, record[i] ?? "");
      if (v !== undefined) values[name] = v;
    });
    const { model, promptLen, genLen, costModel, schedule, ...row } = values;
    const heading = parseSweepHeading({ model, costModel, schedule }, ctx, { promptLen, genLen }, ctx);
    if (first && JSON.stringify(heading) !== JSON.stringify(first))
      throw new InputError(
        ctx.source,
        undefined,
        `model, workload or cost model differ from the first row's (${first.model}, prompt ${first.workload.promptLen}, ${first.workload.genLen} generated, ${first.costModel}); a sweep is of one model and workload`,
      );
    first ??= heading;
    return parseSweepRow(row, ctx);
  });
  checkUniqueProfiles(parsed, (i) => contexts[i]!);
  return { kind: "sweep", ...first!, rows: parsed };
}
