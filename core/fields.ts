/**
 * Field readers for validating untyped input (parsed JSON, flags) at the edge. Every reader names the
 * source and the dotted field path in its error, and no NaN, infinity or out-of-range value passes.
 */
import { describeValue, InputError } from "./input-error.js";

export interface FieldContext {
  /** The file path or flag the data came from. */
  readonly source: string;
  /** Dotted path of the object being read, "" at the top. */
  readonly path: string;
}

export function fieldPath(ctx: FieldContext, key: string | number): string {
  if (typeof key === "number") return `${ctx.path}[${key}]`;
  return ctx.path ? `${ctx.path}.${key}` : key;
}

export function child(ctx: FieldContext, key: string | number): FieldContext {
  return { source: ctx.source, path: fieldPath(ctx, key) };
}

export function fail(ctx: FieldContext, key: string | number | undefined, message: string): never {
  const path = key === undefined ? ctx.path : fieldPath(ctx, key);
  throw new InputError(ctx.source, path || undefined, message);
}

export function asObject(value: unknown, ctx: FieldContext): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(ctx, undefined, `expected an object, got ${describeValue(value)}`);
  }
  return value as Record<string, unknown>;
}

export interface NumberRule {
  readonly min?: number;
  /** Smallest value excluded (value must be strictly greater). */
  readonly greaterThan?: number;
  readonly max?: number;
  readonly integer?: boolean;
}

export function checkNumber(
  value: unknown,
  ctx: FieldContext,
  key: string | number | undefined,
  rule: NumberRule = {},
): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    fail(ctx, key, `expected a finite number${ruleText(rule)}, got ${describeValue(value)}`);
  }
  if (rule.integer && !Number.isInteger(value)) fail(ctx, key, `expected an integer${ruleText(rule)}, got ${value}`);
  if (rule.min !== undefined && value < rule.min) fail(ctx, key, `expected a number${ruleText(rule)}, got ${value}`);
  if (rule.greaterThan !== undefined && value <= rule.greaterThan)
    fail(ctx, key, `expected a number${ruleText(rule)}, got ${value}`);
  if (rule.max !== undefined && value > rule.max) fail(ctx, key, `expected a number${ruleText(rule)}, got ${value}`);
  return value;
}

function ruleText(rule: NumberRule): string {
  const parts: string[] = [];
  if (rule.min !== undefined) parts.push(`>= ${rule.min}`);
  if (rule.greaterThan !== undefined) parts.push(`> ${rule.greaterThan}`);
  if (rule.max !== undefined) parts.push(`<= ${rule.max}`);
  return parts.length ? ` ${parts.join(" and ")}` : "";
}

export function readNumber(
  obj: Record<string, unknown>,
  key: string,
  ctx: FieldContext,
  rule: NumberRule = {},
): number {
  if (!(key in obj)) fail(ctx, key, `missing; expected a number${ruleText(rule)}`);
  return checkNumber(obj[key], ctx, key, rule);
}

/**
 * Reads a number by `rule` (its type and sign, with the reader's usual message), then checks it lies in
 * the physically meaningful `range` (core/physical-bounds.ts), naming the range when it does not.
 */
export function readBoundedNumber(
  obj: Record<string, unknown>,
  key: string,
  ctx: FieldContext,
  rule: NumberRule,
  range: NumberRule,
): number {
  return checkNumber(readNumber(obj, key, ctx, rule), ctx, key, range);
}

export function readOptionalNumber(
  obj: Record<string, unknown>,
  key: string,
  ctx: FieldContext,
  rule: NumberRule = {},
): number | undefined {
  if (obj[key] === undefined) return undefined;
  return checkNumber(obj[key], ctx, key, rule);
}

export function readString(obj: Record<string, unknown>, key: string, ctx: FieldContext): string {
  const value = obj[key];
  if (typeof value !== "string" || value.length === 0)
    fail(ctx, key, `expected a non-empty string, got ${describeValue(value)}`);
  return value;
}

/**
 * Characters a name must not hold: C0 and C1 controls (ESC starts a terminal escape sequence), DEL, and
 * the bidirectional overrides that reorder what a terminal shows. Names are printed as they are, so a
 * crafted file could otherwise rewrite the terminal it is shown on.
 */
const CONTROL_CHARACTER = /[\p{Cc}\u202a-\u202e\u2066-\u2069]/u;

/** `value` as a name (printed raw), refused if it holds a control character. */
export function checkName(value: string, ctx: FieldContext, key: string): string {
  const found = CONTROL_CHARACTER.exec(value);
  if (found)
    fail(
      ctx,
      key,
      `expected a name without control characters, got U+${found[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")} at position ${found.index}`,
    );
  return value;
}

/** A non-empty string field that is printed as a name: no control characters. */
export function readName(obj: Record<string, unknown>, key: string, ctx: FieldContext): string {
  return checkName(readString(obj, key, ctx), ctx, key);
}

export function readOptionalString(obj: Record<string, unknown>, key: string, ctx: FieldContext): string | undefined {
  if (obj[key] === undefined) return undefined;
  return readString(obj, key, ctx);
}

export function readObject(obj: Record<string, unknown>, key: string, ctx: FieldContext): Record<string, unknown> {
  if (!(key in obj)) fail(ctx, key, "missing; expected an object");
  return asObject(obj[key], child(ctx, key));
}

/** Rejects keys that are not in `known`, so a misspelt field is an error rather than silently ignored. */
export function rejectUnknownKeys(obj: Record<string, unknown>, ctx: FieldContext, known: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) fail(ctx, key, `unknown field; expected one of ${known.join(", ")}`);
  }
}
