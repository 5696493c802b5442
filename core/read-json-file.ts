import { InputError } from "./input-error.js";
import { type InputFileRule, inputName, readInputText, withoutByteOrderMark } from "./read-input-file.js";

/**
 * Reads and parses a JSON file ("-" reads standard input), turning every failure (missing file, not a
 * regular file, larger than the rule's limit, truncated or malformed JSON) into an InputError that
 * names the file and, for syntax errors, the line.
 */
export function readJsonFile(path: string, rule: InputFileRule = {}): unknown {
  return parseJsonText(readInputText(path, { expected: "a JSON file", ...rule }), inputName(path));
}

/** Parses JSON text (a leading UTF-8 byte order mark is allowed), errors naming `source` and the line. */
export function parseJsonText(json: string, source: string): unknown {
  const text = withoutByteOrderMark(json);
  try {
    return JSON.parse(text);
  } catch (error) {
    const message = (error as Error).message;
    const position = /position (\d+)/.exec(message);
    let where = "";
    if (position?.[1] !== undefined) {
      const offset = Number(position[1]);
      const before = text.slice(0, offset);
      const line = before.split("\n").length;
      const column = offset - before.lastIndexOf("\n");
      where = ` at line ${line}, column ${column}${offset >= text.trimEnd().length - 1 ? " (the file ends early: truncated?)" : ""}`;
    } else if (/end of (JSON )?input/i.test(message)) {
      where = " (the file ends early: truncated?)";
    }
    throw new InputError(source, undefined, `not valid JSON${where}: ${message}`);
  }
}
