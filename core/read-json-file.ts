import { readFileSync } from "node:fs";
import { InputError } from "./input-error.js";

/**
 * Reads and parses a JSON file ("-" reads standard input), turning every failure (missing file,
 * truncated or malformed JSON) into an InputError that names the file and, for syntax errors, the line.
 */
export function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === "ENOENT"
        ? "no such file"
        : code === "EISDIR"
          ? "is a directory, expected a JSON file"
          : (error as Error).message;
    throw new InputError(path, undefined, reason);
  }
  return parseJsonText(text, path === "-" ? "<stdin>" : path);
}

export function parseJsonText(text: string, source: string): unknown {
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
