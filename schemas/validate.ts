/**
 * A minimal JSON Schema validator for the subset the published schemas use: type (string or array),
 * properties, required, additionalProperties (boolean or schema), items, minItems, minLength, enum,
 * minimum, exclusiveMinimum, maximum, $ref to "#/$defs/...", anyOf and oneOf. Anything else in a schema
 * is an error here, so a schema cannot silently use a keyword this validator ignores.
 *
 * schemaIssues() lists what is wrong as data (where, which rule, the schema and value there);
 * validate() words each issue as "<JSON pointer>: message", and schema-input-error.ts words the first
 * one as an InputError for readers of user files.
 */
import type { JsonSchema } from "./schema-builder.js";

const KNOWN = new Set([
  "$schema",
  "$id",
  "title",
  "description",
  "$defs",
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "minItems",
  "minLength",
  "enum",
  "minimum",
  "exclusiveMinimum",
  "maximum",
  "$ref",
  "anyOf",
  "oneOf",
]);

export type SchemaPath = readonly (string | number)[];

/** One way a value fails its schema. `schema` is the (resolved) schema at `path`; `value` the value there. */
export type SchemaIssue =
  | {
      readonly kind: "type" | "enum" | "range" | "minItems" | "minLength" | "anyOf" | "oneOf";
      readonly path: SchemaPath;
      readonly schema: JsonSchema;
      readonly value: unknown;
    }
  /** A required property is absent: `schema` is the property's schema (undefined if the schema lists none). */
  | {
      readonly kind: "missing";
      readonly path: SchemaPath;
      readonly key: string;
      readonly schema: JsonSchema | undefined;
      readonly value: undefined;
    }
  /** A property the (closed) object schema does not list: `schema` is the object's schema. */
  | {
      readonly kind: "unexpected";
      readonly path: SchemaPath;
      readonly key: string;
      readonly schema: JsonSchema;
      readonly value: unknown;
    };

function typeOk(type: string, v: unknown): boolean {
  switch (type) {
    case "object":
      return typeof v === "object" && v !== null && !Array.isArray(v);
    case "array":
      return Array.isArray(v);
    case "string":
      return typeof v === "string";
    case "number":
      return typeof v === "number" && Number.isFinite(v);
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "boolean":
      return typeof v === "boolean";
    case "null":
      return v === null;
    default:
      throw new Error(`unsupported type ${type}`);
  }
}

/** Follows a "#/$defs/..." reference (repeatedly) to the schema it names. */
export function resolveRef(schema: JsonSchema, root: JsonSchema, path: SchemaPath = []): JsonSchema {
  let s = schema;
  while (typeof s.$ref === "string") {
    const m = /^#\/\$defs\/(.+)$/.exec(s.$ref);
    const target = m ? (root.$defs as Record<string, JsonSchema> | undefined)?.[m[1]!] : undefined;
    if (!target) throw new Error(`${pointer(path)}: unresolvable $ref ${s.$ref}`);
    s = target;
  }
  return s;
}

/** "/a/0/b" for a path, "/" for the root. */
export function pointer(path: SchemaPath): string {
  return path.length ? path.map((p) => `/${p}`).join("") : "/";
}

/**
 * Every issue, depth first in the value's key order; within an object, problems inside the values it
 * has come before its unknown keys, and those before its missing required keys.
 */
export function schemaIssues(
  value: unknown,
  schema: JsonSchema,
  root: JsonSchema = schema,
  path: SchemaPath = [],
): SchemaIssue[] {
  for (const k of Object.keys(schema))
    if (!KNOWN.has(k)) throw new Error(`${pointer(path)}: unsupported schema keyword ${k}`);
  if (typeof schema.$ref === "string") return schemaIssues(value, resolveRef(schema, root, path), root, path);
  const issue = (kind: "type" | "enum" | "range" | "minItems" | "minLength" | "anyOf" | "oneOf"): SchemaIssue => ({
    kind,
    path,
    schema,
    value,
  });
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
    if (!types.some((t) => typeOk(t, value))) return [issue("type")];
  }
  const issues: SchemaIssue[] = [];
  if (schema.enum !== undefined && !(schema.enum as unknown[]).some((e) => e === value)) issues.push(issue("enum"));
  if (typeof value === "number") {
    const below = typeof schema.minimum === "number" && value < schema.minimum;
    const notAbove = typeof schema.exclusiveMinimum === "number" && value <= schema.exclusiveMinimum;
    const above = typeof schema.maximum === "number" && value > schema.maximum;
    if (below || notAbove || above) issues.push(issue("range"));
  }
  if (typeof value === "string" && typeof schema.minLength === "number" && value.length < schema.minLength)
    issues.push(issue("minLength"));
  if (Array.isArray(value)) {
    if (typeof schema.minItems === "number" && value.length < schema.minItems) issues.push(issue("minItems"));
    if (schema.items !== undefined)
      value.forEach((item, i) => issues.push(...schemaIssues(item, schema.items as JsonSchema, root, [...path, i])));
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
    const unexpected: SchemaIssue[] = [];
    for (const [key, v] of Object.entries(o)) {
      const p = properties[key];
      if (p !== undefined) issues.push(...schemaIssues(v, p, root, [...path, key]));
      else if (schema.additionalProperties === false)
        unexpected.push({ kind: "unexpected", path: [...path, key], key, schema, value: v });
      else if (typeof schema.additionalProperties === "object" && schema.additionalProperties !== null)
        issues.push(...schemaIssues(v, schema.additionalProperties as JsonSchema, root, [...path, key]));
    }
    issues.push(...unexpected);
    for (const key of (schema.required ?? []) as string[]) {
      if (!(key in o))
        issues.push({ kind: "missing", path: [...path, key], key, schema: properties[key], value: undefined });
    }
  }
  if (schema.anyOf !== undefined) {
    const branches = schema.anyOf as JsonSchema[];
    if (!branches.some((b) => schemaIssues(value, b, root, path).length === 0)) issues.push(issue("anyOf"));
  }
  if (schema.oneOf !== undefined) {
    const n = (schema.oneOf as JsonSchema[]).filter((b) => schemaIssues(value, b, root, path).length === 0).length;
    if (n !== 1) issues.push(issue("oneOf"));
  }
  return issues;
}

/** Errors ("<path>: message"), empty when `value` satisfies `schema` (resolving $ref in `root`). */
export function validate(value: unknown, schema: JsonSchema, root: JsonSchema = schema): string[] {
  return schemaIssues(value, schema, root).map((i) => {
    const at = pointer(i.kind === "missing" || i.kind === "unexpected" ? i.path.slice(0, -1) : i.path);
    const s = i.schema ?? {};
    switch (i.kind) {
      case "type": {
        const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
        return `${at}: expected ${types.join(" or ")}, got ${JSON.stringify(i.value)?.slice(0, 60)}`;
      }
      case "enum":
        return `${at}: expected one of ${JSON.stringify(s.enum)}, got ${JSON.stringify(i.value)}`;
      case "range": {
        const v = i.value as number;
        if (typeof s.minimum === "number" && v < s.minimum) return `${at}: ${v} is below the minimum ${s.minimum}`;
        if (typeof s.exclusiveMinimum === "number" && v <= s.exclusiveMinimum)
          return `${at}: ${v} is not above ${s.exclusiveMinimum}`;
        return `${at}: ${v} is above the maximum ${String(s.maximum)}`;
      }
      case "minLength":
        return `${at}: expected at least ${String(s.minLength)} characters`;
      case "minItems":
        return `${at}: expected at least ${String(s.minItems)} items`;
      case "missing":
        return `${at}: missing required property ${i.key}`;
      case "unexpected":
        return `${at}: unexpected property ${i.key}`;
      case "anyOf":
        return `${at}: matches none of anyOf (${(s.anyOf as JsonSchema[]).map((b) => JSON.stringify(b)).join(", ")})`;
      case "oneOf":
        return `${at}: matches ${(s.oneOf as JsonSchema[]).filter((b) => schemaIssues(i.value, b, root, i.path).length === 0).length} of oneOf, expected exactly 1`;
    }
  });
}
