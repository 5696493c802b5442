/**
 * csv-parse's errors (an unterminated quote, a stray quote, a bad record) as InputErrors that name the
 * file and the line, `FILE:LINE: not valid CSV: ...`, like every other input error. An error that is
 * already an InputError (thrown by a record callback) is returned unchanged.
 */
import { InputError } from "./input-error.js";

export function csvInputError(error: unknown, source: string): Error {
  if (error instanceof InputError) return error;
  if (!(error instanceof Error)) return new InputError(source, undefined, `not valid CSV: ${String(error)}`);
  const lines = (error as { lines?: unknown }).lines;
  const where = typeof lines === "number" && Number.isInteger(lines) && lines > 0 ? `${source}:${lines}` : source;
  return new InputError(where, undefined, `not valid CSV: ${error.message.replace(/\s*\n\s*/g, "; ")}`);
}
