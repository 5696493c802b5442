/**
 * A minimal JSON Schema validator for the subset the published schemas use: type (string or array),
 * properties, required, additionalProperties (boolean or schema), items, minItems, enum, minimum,
 * exclusiveMinimum, maximum, $ref to "#/$defs/...", anyOf and oneOf. Anything else in a schema is an
 * error here, so a schema cannot silently use a keyword this validator ignores.
 */
import type { JsonSchema } from "./schema-builder.js";

const KNOWN = new Set(["$schema", "$id", "title", "description", "$defs", "type", "properties", "required", "additionalProperties", "items", "minItems", "enum", "minimum", "exclusiveMinimum", "maximum", "$ref", "anyOf", "oneOf"]);

function typeOk(type: string, v: unknown): boolean {
  switch (type) {
    case "object": return typeof v === "object" && v !== null && !Array.isArray(v);
    case "array": return Array.isArray(v);
    case "string": return typeof v === "string";
    case "number": return typeof v === "number" && Number.isFinite(v);
    case "integer": return typeof v === "number" && Number.isInteger(v);
    case "boolean": return typeof v === "boolean";
    case "null": return v === null;
    default: throw new Error(`unsupported type ${type}`);
  }
}

/** Errors ("<path>: message"), empty when `value` satisfies `schema` (resolving $ref in `root`). */
export function validate(value: unknown, schema: JsonSchema, root: JsonSchema = schema, path = ""): string[] {
  for (const k of Object.keys(schema)) if (!KNOWN.has(k)) throw new Error(`${path || "/"}: unsupported schema keyword ${k}`);
  const at = path || "/";
  if (typeof schema.$ref === "string") {
    const m = /^#\/\$defs\/(.+)$/.exec(schema.$ref);
    const target = m ? (root.$defs as Record<string, JsonSchema> | undefined)?.[m[1]!] : undefined;
    if (!target) throw new Error(`${at}: unresolvable $ref ${schema.$ref}`);
    return validate(value, target, root, path);
  }
  const errors: string[] = [];
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
    if (!types.some((t) => typeOk(t, value))) return [`${at}: expected ${types.join(" or ")}, got ${JSON.stringify(value)?.slice(0, 60)}`];
  }
  if (schema.enum !== undefined && !(schema.enum as unknown[]).some((e) => e === value)) errors.push(`${at}: expected one of ${JSON.stringify(schema.enum)}, got ${JSON.stringify(value)}`);
  if (typeof value === "number") {
    if (typeof schema.minimum === "number" && value < schema.minimum) errors.push(`${at}: ${value} is below the minimum ${schema.minimum}`);
    if (typeof schema.exclusiveMinimum === "number" && value <= schema.exclusiveMinimum) errors.push(`${at}: ${value} is not above ${schema.exclusiveMinimum}`);
    if (typeof schema.maximum === "number" && value > schema.maximum) errors.push(`${at}: ${value} is above the maximum ${schema.maximum}`);
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === "number" && value.length < schema.minItems) errors.push(`${at}: expected at least ${schema.minItems} items`);
    if (schema.items !== undefined) value.forEach((item, i) => errors.push(...validate(item, schema.items as JsonSchema, root, `${path}/${i}`)));
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
    for (const key of (schema.required ?? []) as string[]) if (!(key in o)) errors.push(`${at}: missing required property ${key}`);
    for (const [key, v] of Object.entries(o)) {
      const p = properties[key];
      if (p !== undefined) errors.push(...validate(v, p, root, `${path}/${key}`));
      else if (schema.additionalProperties === false) errors.push(`${at}: unexpected property ${key}`);
      else if (typeof schema.additionalProperties === "object" && schema.additionalProperties !== null) errors.push(...validate(v, schema.additionalProperties as JsonSchema, root, `${path}/${key}`));
    }
  }
  if (schema.anyOf !== undefined) {
    const branches = schema.anyOf as JsonSchema[];
    if (!branches.some((b) => validate(value, b, root, path).length === 0)) errors.push(`${at}: matches none of anyOf (${branches.map((b) => JSON.stringify(b)).join(", ")})`);
  }
  if (schema.oneOf !== undefined) {
    const n = (schema.oneOf as JsonSchema[]).filter((b) => validate(value, b, root, path).length === 0).length;
    if (n !== 1) errors.push(`${at}: matches ${n} of oneOf, expected exactly 1`);
  }
  return errors;
}
