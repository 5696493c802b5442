/**
 * A tiny typed JSON Schema (draft 2020-12) builder. Every builder returns the schema together with the
 * TypeScript type of the JSON it accepts (a phantom type parameter), so a schema can be checked against
 * the interface it describes at compile time: `Matches<Infer<typeof schema>, Jsonify<Plan>>` is `true`
 * only when both have the same keys at every level, the same optionality and mutually assignable
 * values. A field added to, removed from or retyped in the interface then fails `tsc` until the schema
 * follows, and `npm run schemas` regenerates the published files.
 */

export type JsonSchema = { readonly [key: string]: unknown };

declare const VALUE: unique symbol;

/** A schema for JSON values of type V, with the named definitions it refers to. */
export interface Schema<V> {
  readonly schema: JsonSchema;
  readonly defs: Readonly<Record<string, JsonSchema>>;
  /** Phantom: never present at run time. */
  readonly [VALUE]?: V;
}

export type Infer<S> = S extends Schema<infer V> ? V : never;

interface Optional<V> {
  readonly optional: Schema<V>;
}

type Field = Schema<any> | Optional<any>;
type Fields = Readonly<Record<string, Field>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
type FieldValue<F> = F extends Optional<infer V> ? V : F extends Schema<infer V> ? V : never;
type ObjectOf<F extends Fields> = Simplify<
  { [K in keyof F as F[K] extends Optional<any> ? never : K]: FieldValue<F[K]> } & {
    [K in keyof F as F[K] extends Optional<any> ? K : never]?: FieldValue<F[K]>;
  }
>;

const leaf = <V>(schema: JsonSchema): Schema<V> => ({ schema, defs: {} });
const clean = (o: Record<string, unknown>): JsonSchema =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

function mergeDefs(...parts: readonly Schema<unknown>[]): Record<string, JsonSchema> {
  const out: Record<string, JsonSchema> = {};
  for (const p of parts) {
    for (const [name, def] of Object.entries(p.defs)) {
      if (out[name] !== undefined && JSON.stringify(out[name]) !== JSON.stringify(def))
        throw new Error(`two different definitions named ${name}`);
      out[name] = def;
    }
  }
  return out;
}

export interface NumberRules {
  readonly description?: string;
  readonly integer?: boolean;
  readonly minimum?: number;
  readonly exclusiveMinimum?: number;
  readonly maximum?: number;
}

export const num = (rules: NumberRules = {}): Schema<number> =>
  leaf(
    clean({
      type: rules.integer ? "integer" : "number",
      description: rules.description,
      minimum: rules.minimum,
      exclusiveMinimum: rules.exclusiveMinimum,
      maximum: rules.maximum,
    }),
  );
/** A number that is one of the given values (checked as `number`, for fields typed `number`). */
export const numberIn = (values: readonly number[], description?: string): Schema<number> =>
  leaf(clean({ type: values.every(Number.isInteger) ? "integer" : "number", enum: [...values], description }));
export const int = (rules: Omit<NumberRules, "integer"> = {}): Schema<number> => num({ ...rules, integer: true });
export const str = (description?: string): Schema<string> => leaf(clean({ type: "string", description }));
/** A string of at least one character (names, paths). */
export const nonEmptyStr = (description?: string): Schema<string> =>
  leaf(clean({ type: "string", description, minLength: 1 }));
export const bool = (description?: string): Schema<boolean> => leaf(clean({ type: "boolean", description }));

/** One of the given strings or numbers. */
export function oneOfValues<const V extends readonly (string | number)[]>(
  values: V,
  description?: string,
): Schema<V[number]> {
  const types = [
    ...new Set(values.map((v) => (typeof v === "string" ? "string" : Number.isInteger(v) ? "integer" : "number"))),
  ];
  return leaf(clean({ type: types.length === 1 ? types[0] : types, enum: [...values], description }));
}

export function arr<V>(
  items: Schema<V>,
  rules: { readonly description?: string; readonly minItems?: number } = {},
): Schema<V[]> {
  return {
    schema: clean({ type: "array", description: rules.description, minItems: rules.minItems, items: items.schema }),
    defs: items.defs,
  };
}

/** An object with any keys, each value of one schema (TypeScript's Record<string, V>). */
export function record<V>(values: Schema<V>, description?: string): Schema<Record<string, V>> {
  return { schema: clean({ type: "object", description, additionalProperties: values.schema }), defs: values.defs };
}

/** Any JSON value (left to the document it comes from). */
export const anyValue = (description?: string): Schema<unknown> => leaf(clean({ description }));

export const opt = <V>(schema: Schema<V>): Optional<V> => ({ optional: schema });

export interface ObjectRules {
  readonly description?: string;
  /**
   * Optional keys a file may carry that the parser accepts and ignores (comments such as "note"):
   * in the schema, not in the checked type.
   */
  readonly fileOnly?: Fields;
  /** At least one of these keys must be present. */
  readonly requireOneOf?: readonly string[];
  /** Allow keys beyond the listed ones (a structural supertype: the listed keys are what readers use). */
  readonly open?: boolean;
}

/** A closed object (additionalProperties: false unless `open`): the given keys, required unless wrapped in opt(). */
export function obj<const F extends Fields>(fields: F, rules: ObjectRules = {}): Schema<ObjectOf<F>> {
  const all: Record<string, Field> = { ...fields, ...(rules.fileOnly ?? {}) };
  const schemaOf = (f: Field): Schema<unknown> => ("optional" in f ? f.optional : f);
  const properties = Object.fromEntries(Object.entries(all).map(([k, f]) => [k, schemaOf(f).schema]));
  const required = Object.entries(fields)
    .filter(([, f]) => !("optional" in f))
    .map(([k]) => k);
  return {
    schema: clean({
      type: "object",
      description: rules.description,
      properties,
      required,
      additionalProperties: rules.open ? undefined : false,
      anyOf: rules.requireOneOf ? rules.requireOneOf.map((k) => ({ required: [k] })) : undefined,
    }),
    defs: mergeDefs(...Object.values(all).map(schemaOf)),
  };
}

/** Names a schema: it is emitted once under $defs and referred to by $ref. */
export function named<V>(name: string, s: Schema<V>): Schema<V> {
  return { schema: { $ref: `#/$defs/${name}` }, defs: { ...mergeDefs(s), [name]: s.schema } };
}

/** A published schema document. */
export function document(id: string, title: string, description: string, s: Schema<unknown>): JsonSchema {
  const defs = Object.fromEntries(Object.entries(s.defs).sort(([a], [b]) => a.localeCompare(b)));
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: id,
    title,
    description,
    ...s.schema,
    ...(Object.keys(defs).length ? { $defs: defs } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Type-level checks

/**
 * The type a value has once through JSON.stringify and JSON.parse: readonly dropped, keys whose value
 * may be undefined become optional (JSON.stringify drops them).
 */
export type Jsonify<T> = T extends string | number | boolean | null
  ? T
  : T extends readonly (infer E)[]
    ? Jsonify<E>[]
    : T extends object
      ? Simplify<
          { -readonly [K in keyof T as undefined extends T[K] ? never : K]: Jsonify<T[K]> } & {
            -readonly [K in keyof T as undefined extends T[K] ? K : never]?: Jsonify<Exclude<T[K], undefined>>;
          }
        >
      : never;

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

type SameKeysDeep<A, B> = [A] extends [readonly (infer EA)[]]
  ? [B] extends [readonly (infer EB)[]]
    ? SameKeysDeep<EA, EB>
    : false
  : [A] extends [object]
    ? [B] extends [object]
      ? Same<Extract<keyof A, string>, Extract<keyof B, string>> extends true
        ? {
            [K in keyof A]-?: K extends keyof B ? SameKeysDeep<NonNullable<A[K]>, NonNullable<B[K]>> : false;
          }[keyof A] extends true
          ? true
          : [keyof A] extends [never]
            ? true
            : false
        : false
      : false
    : true;

/** `true` when A and B are mutually assignable and have the same keys (and optionality) at every level. */
export type Matches<A, B> = Same<A, B> extends true ? SameKeysDeep<A, B> : false;

/** Compile-time assertion: `assertMatches<Infer<typeof s>, Jsonify<T>>(true)` fails to compile on drift. */
export function assertMatches<A, B>(ok: Matches<A, B>): void {
  void ok;
}
