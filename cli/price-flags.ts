/**
 * `spillway sweep --price NAME=DOLLARS` (repeated; a bare `--price DOLLARS` prices every profile) and
 * `--prices FILE` (planner/sweep/read-prices-file.ts): dollars per GPU-hour, a flag's price over the
 * file's. A flag naming a profile the sweep does not plan is refused (a misspelt name would otherwise
 * leave a profile unpriced without a word).
 */
import { InputError } from "../core/input-error.js";
import type { GpuHourPrices } from "../planner/sweep/gpu-hour-prices.js";
import { PRICE_RULE, readPricesFile } from "../planner/sweep/read-prices-file.js";
import { parseNumberFlag } from "./parse-flags.js";

export function pricesFromFlags(
  priceFlags: readonly unknown[] | undefined,
  pricesFile: unknown,
  profiles: readonly string[],
): GpuHourPrices | undefined {
  if (Array.isArray(pricesFile)) throw new InputError("--prices", undefined, "given more than once");
  const fromFile = pricesFile === undefined ? undefined : readPricesFile(String(pricesFile));
  if (!priceFlags?.length) return fromFile;
  let all = fromFile?.all;
  const byProfile: Record<string, number> = { ...fromFile?.byProfile };
  const named = new Set<string>();
  let bare = false;
  for (const raw of priceFlags) {
    const text = String(raw);
    const at = text.lastIndexOf("=");
    const name = at < 0 ? undefined : text.slice(0, at).trim();
    const dollars = parseNumberFlag("price", at < 0 ? text : text.slice(at + 1), {
      ...PRICE_RULE,
      unit: "$ per GPU-hour",
    })!;
    if (name === undefined) {
      if (bare) throw new InputError("--price", undefined, "a price for every profile is given twice");
      bare = true;
      all = dollars;
      continue;
    }
    if (!profiles.includes(name))
      throw new InputError(
        "--price",
        undefined,
        `${JSON.stringify(name)} is not a profile of this sweep; expected NAME=DOLLARS with NAME one of ${profiles.join(", ")}, or DOLLARS alone for every profile`,
      );
    if (named.has(name)) throw new InputError("--price", undefined, `${name} is priced twice`);
    named.add(name);
    byProfile[name] = dollars;
  }
  return { ...(all !== undefined ? { all } : {}), byProfile };
}
