/**
 * Seeded mutations of the CLI's inputs for the fuzz suite: JSON documents (drop, duplicate, retype a
 * field; huge, negative, NaN-like, 1e308 and 1e999 numbers; truncation; a byte order mark; control
 * characters; a wrong root), CSV text (unterminated quotes, truncation, dropped and doubled lines,
 * junk cells) and command lines (unknown flags, a flag twice, a value missing, a switch with a value,
 * words after --, odd values).
 */

export type Rng = () => number;

export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}

/** Values a field may be turned into: wrong types, absurd numbers, names with control characters. */
export const ODD_VALUES: readonly unknown[] = [
  null,
  true,
  "",
  "x",
  "\u001b]0;owned\u0007",
  "a\u001b[2Jb",
  [],
  {},
  [1, 2],
  -1,
  0,
  0.5,
  1e308,
  -1e308,
  2 ** 53 + 2,
  5e-324,
  "NaN",
  "1e309",
];

/** Number spellings JSON allows that become absurd values (1e999 parses as Infinity). */
const ODD_NUMBER_TEXT = ["1e999", "-1e999", "1e308", "-0", "1e-400", "-1", "0", "123456789012345678901234567890"];

type JsonPath = readonly (string | number)[];

function nodes(value: unknown, path: JsonPath = [], out: JsonPath[] = []): JsonPath[] {
  out.push(path);
  if (Array.isArray(value)) value.forEach((item, i) => nodes(item, [...path, i], out));
  else if (value !== null && typeof value === "object")
    for (const [key, item] of Object.entries(value)) nodes(item, [...path, key], out);
  return out;
}

function parentOf(root: unknown, path: JsonPath): Record<string | number, unknown> {
  let node = root as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  return node;
}

function randomNode(rng: Rng, root: unknown, filter: (value: unknown) => boolean = () => true): JsonPath | undefined {
  const candidates = nodes(root).filter((p) => p.length > 0 && filter(valueAt(root, p)));
  return candidates.length ? pick(rng, candidates) : undefined;
}

function valueAt(root: unknown, path: JsonPath): unknown {
  return path.length === 0 ? root : parentOf(root, path)[path.at(-1)!];
}

export const JSON_MUTATIONS = [
  "drop-field",
  "duplicate-field",
  "retype-field",
  "odd-number",
  "truncate",
  "byte-order-mark",
  "control-characters",
  "unknown-field",
  "wrong-root",
  "deep-nesting",
  "empty",
  "binary",
] as const;
export type JsonMutation = (typeof JSON_MUTATIONS)[number];

/** Mutations that only remove or garble (never enlarge a model): safe for inputs whose size sets work. */
export const SHRINKING_JSON_MUTATIONS: readonly JsonMutation[] = [
  "drop-field",
  "truncate",
  "byte-order-mark",
  "wrong-root",
  "empty",
  "binary",
  "unknown-field",
];

/** `document` (parsed JSON) mutated by `mutation`, as file text. */
export function mutateJson(rng: Rng, document: unknown, mutation: JsonMutation): string {
  const root = structuredClone(document);
  const text = () => JSON.stringify(root, null, 2);
  switch (mutation) {
    case "drop-field": {
      const path = randomNode(rng, root);
      if (path) {
        const parent = parentOf(root, path);
        if (Array.isArray(parent)) parent.splice(path.at(-1) as number, 1);
        else delete parent[path.at(-1)!];
      }
      return text();
    }
    case "duplicate-field": {
      // JSON.parse keeps the last of two equal keys: the copy comes first, with an odd value.
      const path = randomNode(rng, root, () => true);
      const key = [...(path ?? [])].reverse().find((k) => typeof k === "string");
      const json = text();
      if (key === undefined) return json;
      const at = json.indexOf(`"${key}":`);
      return `${json.slice(0, at)}${JSON.stringify(key)}: ${JSON.stringify(pick(rng, ODD_VALUES))}, ${json.slice(at)}`;
    }
    case "retype-field": {
      const path = randomNode(rng, root);
      if (path) parentOf(root, path)[path.at(-1)!] = structuredClone(pick(rng, ODD_VALUES));
      return text();
    }
    case "odd-number": {
      const path = randomNode(rng, root, (v) => typeof v === "number");
      if (!path) return text();
      const marker = "__fuzz_number__";
      parentOf(root, path)[path.at(-1)!] = marker;
      return text().replace(`"${marker}"`, pick(rng, ODD_NUMBER_TEXT));
    }
    case "truncate": {
      const json = text();
      return json.slice(0, Math.floor(rng() * json.length));
    }
    case "byte-order-mark":
      return `\uFEFF${text()}`;
    case "control-characters": {
      const path = randomNode(rng, root, (v) => typeof v === "string");
      if (path) parentOf(root, path)[path.at(-1)!] = `${valueAt(root, path) as string}\u001b[31m\u0000\u009b`;
      return text();
    }
    case "unknown-field":
      if (root !== null && typeof root === "object" && !Array.isArray(root))
        (root as Record<string, unknown>).fuzzUnknownField = pick(rng, ODD_VALUES);
      return text();
    case "wrong-root":
      return JSON.stringify(pick(rng, [[], "plan", 42, null, true, [root]]));
    case "deep-nesting":
      return `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    case "empty":
      return pick(rng, ["", " \n", "{}"]);
    case "binary":
      return Array.from({ length: 64 }, () => String.fromCharCode(Math.floor(rng() * 256))).join("");
  }
}

export const TEXT_MUTATIONS = [
  "unterminated-quote",
  "stray-quote",
  "truncate",
  "byte-order-mark",
  "drop-line",
  "double-line",
  "odd-cell",
  "control-characters",
  "empty",
  "header-only",
  "extra-column",
] as const;
export type TextMutation = (typeof TEXT_MUTATIONS)[number];

const ODD_CELLS = ["", "-1", "1e308", "NaN", "Infinity", "0x10", "1.5", "abc", "\u001b[2J", "99999999999999999999"];

/** CSV or JSON Lines `text` mutated by `mutation`. */
export function mutateText(rng: Rng, text: string, mutation: TextMutation): string {
  const lines = text.split("\n");
  const row = () => 1 + Math.floor(rng() * Math.max(1, lines.length - 2));
  switch (mutation) {
    case "unterminated-quote": {
      const i = row();
      lines[i] = `"${lines[i] ?? ""}`;
      return lines.join("\n");
    }
    case "stray-quote": {
      const i = row();
      lines[i] = `${lines[i] ?? ""}x"y`;
      return lines.join("\n");
    }
    case "truncate":
      return text.slice(0, Math.floor(rng() * text.length));
    case "byte-order-mark":
      return `\uFEFF${text}`;
    case "drop-line":
      lines.splice(row(), 1);
      return lines.join("\n");
    case "double-line": {
      const i = row();
      lines.splice(i, 0, lines[i] ?? "");
      return lines.join("\n");
    }
    case "odd-cell": {
      const i = row();
      const cells = (lines[i] ?? "").split(",");
      cells[Math.floor(rng() * cells.length)] = pick(rng, ODD_CELLS);
      lines[i] = cells.join(",");
      return lines.join("\n");
    }
    case "control-characters": {
      const i = row();
      lines[i] = `${lines[i] ?? ""}\u0000\u001b[31m`;
      return lines.join("\n");
    }
    case "empty":
      return "";
    case "header-only":
      return lines
        .filter((l) => !l.startsWith("#"))
        .slice(0, 1)
        .join("\n");
    case "extra-column": {
      const i = row();
      lines[i] = `${lines[i] ?? ""},extra`;
      return lines.join("\n");
    }
  }
}

export const ARG_MUTATIONS = [
  "unknown-flag",
  "flag-twice",
  "missing-value",
  "missing-value-at-end",
  "switch-with-value",
  "after-double-dash",
  "odd-value",
  "drop-flag",
  "extra-word",
  "help-with-value",
] as const;
export type ArgMutation = (typeof ARG_MUTATIONS)[number];

const ODD_FLAG_VALUES = [
  "",
  "-1",
  "0",
  "1.5",
  "1e308",
  "NaN",
  "Infinity",
  "abc",
  "\u001b[2J",
  "x".repeat(5000),
  "-",
  "--",
  "=",
];

/** The flags of `args` (tokens starting with --), with the index of each. */
function flagIndexes(args: readonly string[]): number[] {
  return args.flatMap((a, i) => (a.startsWith("--") && a !== "--" ? [i] : []));
}

/**
 * `args` mutated by `mutation`. `pinned` flags are never dropped nor given odd values (they keep a
 * valid case cheap: a fixed policy instead of a search).
 */
export function mutateArgs(
  rng: Rng,
  args: readonly string[],
  mutation: ArgMutation,
  pinned: readonly string[] = [],
): string[] {
  const out = [...args];
  const flags = flagIndexes(out);
  const free = flags.filter((i) => !pinned.includes(out[i]!.split("=")[0]!));
  const valued = flags.filter(
    (i) => out[i + 1] !== undefined && !out[i + 1]!.startsWith("--") && !out[i]!.includes("="),
  );
  const freeValued = valued.filter((i) => free.includes(i));
  switch (mutation) {
    case "unknown-flag":
      out.splice(Math.floor(rng() * (out.length + 1)), 0, pick(rng, ["--bogus", "--bogus=1", "-z", "--no-bogus"]));
      return out;
    case "flag-twice": {
      if (!valued.length) return [...out, "--json", "--json"];
      const i = pick(rng, valued);
      return [...out, out[i]!, pick(rng, [out[i + 1]!, "other"])];
    }
    case "missing-value": {
      if (!valued.length) return out;
      const i = pick(rng, valued);
      out.splice(i + 1, 1);
      return out;
    }
    case "missing-value-at-end": {
      if (!valued.length) return [...out, "--out"];
      const i = pick(rng, valued);
      const flag = out[i]!;
      out.splice(i, 2);
      return [...out, flag];
    }
    case "switch-with-value":
      return [
        ...out,
        `${pick(rng, ["--json", "--quiet", "--compress-weight", "--overlap", "--no-overlap"])}=${pick(rng, ["2", "maybe", "", "yes"])}`,
      ];
    case "after-double-dash":
      return [...out, "--", pick(rng, ["extra", "--json", "-"])];
    case "odd-value": {
      if (!freeValued.length) return out;
      out[pick(rng, freeValued) + 1] = pick(rng, ODD_FLAG_VALUES);
      return out;
    }
    case "drop-flag": {
      if (!free.length) return out;
      const i = pick(rng, free);
      out.splice(i, valued.includes(i) ? 2 : 1);
      return out;
    }
    case "extra-word":
      out.splice(1 + Math.floor(rng() * out.length), 0, pick(rng, ["extra", "-", "plan.json", "\u001b[31m"]));
      return out;
    case "help-with-value":
      return [...out, pick(rng, ["--help=3", "--version=x", "--help=", "--help=maybe"])];
  }
}
