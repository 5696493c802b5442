/**
 * A prices file (`spillway sweep --prices FILE`): dollars per GPU-hour by profile name, as JSON
 * (`{"t4": 0.35, "2x8-h100": 2.99}`) or as CSV with the header `profile,dollarsPerGpuHour`; the name
 * `*` prices every profile not named. Names of profiles the sweep does not plan are allowed (a price
 * list serves many sweeps). Errors name the file, the line or key, and what was expected.
 */
import { parseCsvRecords } from "../../core/csv-records.js";
import { checkName, checkNumber, type FieldContext, fail } from "../../core/fields.js";
import { InputError } from "../../core/input-error.js";
import { readInputText } from "../../core/read-input-file.js";
import { parseJsonText } from "../../core/read-json-file.js";
import type { GpuHourPrices } from "./gpu-hour-prices.js";

/** The most dollars per GPU-hour taken: far above any GPU's rental price, below nonsense. */
export const MAX_DOLLARS_PER_GPU_HOUR = 10_000;

/** The name that prices every profile not named. */
export const EVERY_PROFILE = "*";

export const PRICE_RULE = { min: 0, max: MAX_DOLLARS_PER_GPU_HOUR } as const;

function pricesFrom(
  entries: readonly { name: string; value: unknown; ctx: FieldContext; key: string }[],
): GpuHourPrices {
  const byProfile: Record<string, number> = {};
  let all: number | undefined;
  for (const { name, value, ctx, key } of entries) {
    checkName(name, ctx, key);
    const dollars = checkNumber(value, ctx, key, PRICE_RULE);
    if (name === EVERY_PROFILE) {
      if (all !== undefined) fail(ctx, key, `${EVERY_PROFILE} is priced twice`);
      all = dollars;
    } else {
      if (Object.hasOwn(byProfile, name)) fail(ctx, key, `${JSON.stringify(name)} is priced twice`);
      byProfile[name] = dollars;
    }
  }
  return { ...(all !== undefined ? { all } : {}), byProfile };
}

export function parsePricesCsv(text: string, source: string): GpuHourPrices {
  const records = parseCsvRecords(text, source);
  const [header, ...rows] = records;
  if (header?.record.join(",") !== "profile,dollarsPerGpuHour")
    throw new InputError(
      header ? `${source}:${header.info.lines}` : source,
      undefined,
      `expected the header row profile,dollarsPerGpuHour, got ${JSON.stringify(header?.record.join(",") ?? "")}`,
    );
  return pricesFrom(
    rows.map(({ record, info }) => {
      const ctx = { source: `${source}:${info.lines}`, path: "" };
      const raw = record[1] ?? "";
      return {
        name: record[0] ?? "",
        value: raw === "" ? raw : Number.isFinite(Number(raw)) ? Number(raw) : raw,
        ctx,
        key: "dollarsPerGpuHour",
      };
    }),
  );
}

export function parsePricesJson(data: unknown, source: string): GpuHourPrices {
  const ctx: FieldContext = { source, path: "" };
  if (typeof data !== "object" || data === null || Array.isArray(data))
    fail(ctx, undefined, 'expected an object of dollars per GPU-hour by profile name, e.g. {"t4": 0.35}');
  return pricesFrom(Object.entries(data).map(([name, value]) => ({ name, value, ctx, key: name })));
}

/** The prices in `path`: JSON when its text starts with "{", else CSV. */
export function readPricesFile(path: string): GpuHourPrices {
  const source = path === "-" ? "<stdin>" : path;
  const text = readInputText(path, { what: "a prices file", expected: "a prices CSV or JSON file" });
  return text.trimStart().startsWith("{")
    ? parsePricesJson(parseJsonText(text, source), source)
    : parsePricesCsv(text, source);
}
