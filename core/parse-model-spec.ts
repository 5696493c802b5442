/**
 * parseModelSpec(): a model spec given as JSON in Spillway's own format (`--model spec.json`). Such a
 * file may leave out what has a default (numKvHeads: numHeads, wordEmbedDim: hiddenSize,
 * bytesPerParam: 2); with the defaults filled in it must be what the plan schema's ModelSpec
 * definition accepts (checked against it), and then a consistent model (checkModelConsistency).
 */

import { planSchemaDocument } from "../schemas/definitions.js";
import type { JsonSchema } from "../schemas/schema-builder.js";
import { checkAgainstSchema } from "../schemas/schema-input-error.js";
import type { FieldContext } from "./fields.js";
import { checkModelConsistency, type ModelSpec } from "./model-spec.js";

function withDefaults(o: Record<string, unknown>): Record<string, unknown> {
  const defaults: Record<string, unknown> = { numKvHeads: o.numHeads, wordEmbedDim: o.hiddenSize, bytesPerParam: 2 };
  const out: Record<string, unknown> = { ...o };
  for (const [key, value] of Object.entries(defaults))
    if (out[key] === undefined && value !== undefined) out[key] = value;
  for (const key of Object.keys(out)) if (out[key] === undefined) delete out[key];
  return out;
}

/** A copy with its keys in the schema's order (the order plan() writes a model spec in). */
function inSchemaOrder(value: unknown, schema: JsonSchema): unknown {
  const properties = schema.properties as Record<string, JsonSchema> | undefined;
  if (!properties || typeof value !== "object" || value === null) return structuredClone(value);
  const o = value as Record<string, unknown>;
  return Object.fromEntries(
    Object.keys(properties)
      .filter((k) => o[k] !== undefined)
      .map((k) => [k, inSchemaOrder(o[k], properties[k]!)]),
  );
}

export function parseModelSpec(data: unknown, source: string): ModelSpec {
  const ctx: FieldContext = { source, path: "" };
  const filled =
    typeof data === "object" && data !== null && !Array.isArray(data)
      ? withDefaults(data as Record<string, unknown>)
      : data;
  const root = planSchemaDocument();
  checkAgainstSchema(filled, { $ref: "#/$defs/ModelSpec" }, source, { root });
  const spec = inSchemaOrder(filled, (root.$defs as Record<string, JsonSchema>).ModelSpec!) as ModelSpec;
  return checkModelConsistency(spec, ctx);
}
