/**
 * An error in something a user gave us: a file, a flag, a field. It always says where (the file or
 * flag), which field, and what was expected, so the CLI can print it as one line and exit 2.
 */
export class InputError extends Error {
  readonly source: string;
  readonly field: string | undefined;

  constructor(source: string, field: string | undefined, message: string) {
    super(field ? `${source}: ${field}: ${message}` : `${source}: ${message}`);
    this.name = "InputError";
    this.source = source;
    this.field = field;
  }
}

/** Describes a received value briefly for error messages ("a string \"abc\"", "null", "an array"). */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string")
    return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value)}`;
  if (typeof value === "number") return Number.isNaN(value) ? "NaN" : `the number ${value}`;
  if (typeof value === "boolean") return `${value}`;
  if (typeof value === "object") return "an object";
  return typeof value;
}
