/**
 * An error message as one printable line: newlines, other control characters and bidirectional
 * overrides escaped (\n, \u001b), so an error that quotes a file's bytes (a JSON parser's excerpt) can
 * neither break the one-line contract of exit 2 nor send escape sequences to the terminal.
 */
const UNPRINTABLE = /[\p{Cc}\u202a-\u202e\u2066-\u2069]/gu;

export function oneLine(message: string): string {
  return message.replace(UNPRINTABLE, (c) =>
    c === "\n"
      ? "\\n"
      : c === "\r"
        ? "\\r"
        : c === "\t"
          ? " "
          : `\\u${c.codePointAt(0)!.toString(16).padStart(4, "0")}`,
  );
}
