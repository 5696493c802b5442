/**
 * Schema issues worded for people: the first issue of a user's file as an InputError that names the
 * file, the field (as core/fields.ts writes paths: `policy.layerGroups[1].compute`) and what was
 * expected, in the words the hand-written field readers use ("expected a finite number >= 0, got the
 * string \"x\"", "missing; expected an object", "unknown field; expected one of ...").
 */
import { describeValue, InputError } from "../core/input-error.js";
import type { JsonSchema } from "./schema-builder.js";
import { resolveRef, type SchemaIssue, type SchemaPath, schemaIssues } from "./validate.js";

/** `a.b[0].c` for a path (core/fields.ts's form) below the field path `at`, undefined for the root. */
export function fieldPathOf(path: SchemaPath, at = ""): string | undefined {
  let out = at;
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out ? `.${p}` : p;
  return out || undefined;
}

function rangeText(s: JsonSchema): string {
  const parts: string[] = [];
  if (typeof s.minimum === "number") parts.push(`>= ${s.minimum}`);
  if (typeof s.exclusiveMinimum === "number") parts.push(`> ${s.exclusiveMinimum}`);
  if (typeof s.maximum === "number") parts.push(`<= ${s.maximum}`);
  return parts.length ? ` ${parts.join(" and ")}` : "";
}

/** What a schema accepts, in words ("an integer >= 1", "one of \"gpu\", \"cpu\"", "an object"). */
export function describeSchema(schema: JsonSchema | undefined, root: JsonSchema): string {
  if (!schema) return "a value";
  const s = resolveRef(schema, root);
  if (Array.isArray(s.enum)) return `one of ${(s.enum as unknown[]).map((e) => JSON.stringify(e)).join(", ")}`;
  const types = s.type === undefined ? [] : Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
  const words = types.map((t) => {
    switch (t) {
      case "integer":
        return `an integer${rangeText(s)}`;
      case "number":
        return `a finite number${rangeText(s)}`;
      case "string":
        return typeof s.minLength === "number" && s.minLength > 0 ? "a non-empty string" : "a string";
      case "boolean":
        return "true or false";
      case "object":
        return "an object";
      case "array":
        return typeof s.minItems === "number" && s.minItems > 0 ? "a non-empty array" : "an array";
      case "null":
        return "null";
      default:
        return t;
    }
  });
  return words.length ? words.join(" or ") : "a value";
}

/** The issue in the field readers' words (without the file and field). */
export function issueMessage(issue: SchemaIssue, root: JsonSchema): string {
  const s = issue.schema ? resolveRef(issue.schema, root) : {};
  switch (issue.kind) {
    case "type": {
      const v = issue.value;
      if (s.type === "integer" && typeof v === "number" && Number.isFinite(v))
        return `expected an integer${rangeText(s)}, got ${v}`;
      return `expected ${describeSchema(s, root)}, got ${describeValue(v)}`;
    }
    case "enum":
      return `expected ${describeSchema(s, root)}, got ${describeValue(issue.value)}`;
    case "range":
      return `expected a number${rangeText(s)}, got ${String(issue.value)}`;
    case "minLength":
      return `expected ${describeSchema(s, root)}, got ${describeValue(issue.value)}`;
    case "minItems": {
      const n = (issue.value as unknown[]).length;
      return s.minItems === 1
        ? "expected a non-empty array, got an empty one"
        : `expected at least ${String(s.minItems)} items, got ${n}`;
    }
    case "missing":
      return `missing; expected ${describeSchema(issue.schema, root)}`;
    case "unexpected":
      return `unknown field; expected one of ${Object.keys((s.properties ?? {}) as object).join(", ")}`;
    case "anyOf": {
      const branches = s.anyOf as JsonSchema[];
      const keys = branches.map((b) =>
        Array.isArray(b.required) && b.required.length === 1 && Object.keys(b).length === 1
          ? (b.required[0] as string)
          : undefined,
      );
      return keys.every((k) => k !== undefined)
        ? `expected at least one of ${keys.join(", ")}`
        : "matches none of the forms the schema allows";
    }
    case "oneOf":
      return "expected to match exactly one of the forms the schema allows";
  }
}

/** The issue as an InputError naming `source` and the field (below the field path `at`). */
export function issueError(issue: SchemaIssue, source: string, root: JsonSchema, at = ""): InputError {
  return new InputError(source, fieldPathOf(issue.path, at), issueMessage(issue, root));
}

export interface SchemaCheckOptions {
  /** The document whose $defs `schema` refers to (default: `schema` itself). */
  readonly root?: JsonSchema;
  /** Field path of `value` within its file, for messages (default: the file's top). */
  readonly at?: string;
}

/** Throws an InputError for the first way `value` fails `schema`. */
export function checkAgainstSchema(
  value: unknown,
  schema: JsonSchema,
  source: string,
  options: SchemaCheckOptions = {},
): void {
  const root = options.root ?? schema;
  const first = schemaIssues(value, schema, root)[0];
  if (first) throw issueError(first, source, root, options.at);
}
