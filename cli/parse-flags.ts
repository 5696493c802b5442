/** Turning raw flag strings into validated values, with errors that name the flag. */
import { InputError } from "../core/input-error.js";

export function parseNumberFlag(
  flag: string,
  raw: unknown,
  rule: { min?: number; greaterThan?: number; max?: number; integer?: boolean; unit?: string } = {},
): number | undefined {
  if (raw === undefined) return undefined;
  if (Array.isArray(raw)) throw new InputError(`--${flag}`, undefined, "given more than once");
  const text = String(raw).trim();
  const value = text === "" ? NaN : Number(text);
  const expected = `${rule.integer ? "an integer" : "a number"}${rule.unit ? ` (${rule.unit})` : ""}${rule.min !== undefined ? ` >= ${rule.min}` : ""}${rule.greaterThan !== undefined ? ` > ${rule.greaterThan}` : ""}${rule.max !== undefined ? ` <= ${rule.max}` : ""}`;
  if (!Number.isFinite(value))
    throw new InputError(`--${flag}`, undefined, `expected ${expected}, got ${JSON.stringify(String(raw))}`);
  if (rule.integer && !Number.isInteger(value))
    throw new InputError(`--${flag}`, undefined, `expected ${expected}, got ${text}`);
  if (
    (rule.min !== undefined && value < rule.min) ||
    (rule.greaterThan !== undefined && value <= rule.greaterThan) ||
    (rule.max !== undefined && value > rule.max)
  ) {
    throw new InputError(`--${flag}`, undefined, `expected ${expected}, got ${text}`);
  }
  return value;
}

export type Percent6 = [number, number, number, number, number, number];

/** FlexGen's --percent wg wc cg cc hg hc: six integers 0..100, each pair summing to at most 100. */
export function parsePercentFlag(raw: unknown): Percent6 | undefined {
  if (raw === undefined) return undefined;
  const items = (Array.isArray(raw) ? raw : [raw]).flatMap((x) => String(x).split(/[\s,]+/)).filter((x) => x !== "");
  if (items.length !== 6)
    throw new InputError(
      "--percent",
      undefined,
      `expected six numbers (wg wc cg cc hg hc), got ${items.length}: ${items.join(" ")}`,
    );
  const names = ["wg", "wc", "cg", "cc", "hg", "hc"];
  const values = items.map((item, i) => {
    const v = Number(item);
    if (!Number.isFinite(v) || v < 0 || v > 100)
      throw new InputError("--percent", names[i], `expected a percentage 0..100, got ${JSON.stringify(item)}`);
    return v;
  }) as Percent6;
  for (const [i, what] of [
    [0, "weights"],
    [2, "cache"],
    [4, "activations"],
  ] as const) {
    const sum = values[i]! + values[i + 1]!;
    if (sum > 100 + 1e-9)
      throw new InputError(
        "--percent",
        `${names[i]}+${names[i + 1]}`,
        `${what} on GPU and CPU add up to ${sum}, more than 100`,
      );
  }
  return values;
}
