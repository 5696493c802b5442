/**
 * A CSV text as its records, each with the line it ends on (for errors that name FILE:LINE); blank
 * lines and `#` comment lines skipped, cells trimmed. csv-parse's errors become InputErrors naming the
 * file and line (csv-input-error.ts).
 */
import { parse } from "csv-parse/sync";
import { csvInputError } from "./csv-input-error.js";

export interface CsvRecord {
  readonly record: readonly string[];
  readonly info: { readonly lines: number };
}

export function parseCsvRecords(text: string, source: string): CsvRecord[] {
  try {
    return parse(text, { comment: "#", skip_empty_lines: true, trim: true, info: true }) as unknown as CsvRecord[];
  } catch (error) {
    throw csvInputError(error, source);
  }
}
