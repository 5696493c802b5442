/**
 * Reading an input file with a bound: every file Spillway reads (configs, profiles, plans, traces, runs,
 * samples) goes through readInputText, so /dev/zero, a FIFO or a huge file never makes it read without
 * end. Only a regular file is read ("-" reads standard input, with the same limit); one larger than the
 * limit for its kind is refused. A UTF-8 byte order mark at the start is dropped.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync } from "node:fs";
import { InputError } from "./input-error.js";

const MIB = 2 ** 20;

/**
 * The most bytes Spillway reads from one input file, by kind. Configs, profiles, plans, runs tables and
 * samples are small (a plan of the largest model is well under 1 MiB); traces (routing traces, Chrome
 * traces from simulate --trace) grow with the run but a JavaScript string holds at most 512 Mi chars.
 */
export const INPUT_LIMIT_BYTES = {
  /** Model configs, hardware profiles, plans, comparison and report inputs, runs tables, samples. */
  document: 64 * MIB,
  /** Routing traces and Chrome Trace Event files. */
  trace: 256 * MIB,
} as const;

const BYTE_ORDER_MARK = "\uFEFF";

/** `text` without a leading UTF-8 byte order mark. */
export function withoutByteOrderMark(text: string): string {
  return text.startsWith(BYTE_ORDER_MARK) ? text.slice(1) : text;
}

/** The name an error gives `path` ("<stdin>" for "-"). */
export function inputName(path: string): string {
  return path === "-" ? "<stdin>" : path;
}

/** How to read one input: its size limit and what it is, for the errors. */
export interface InputFileRule {
  /** The most bytes read (default INPUT_LIMIT_BYTES.document). */
  readonly maxBytes?: number;
  /** What the file should be, for the error on a folder or device (default "a file"). */
  readonly expected?: string;
  /** What the limit applies to, for the error on a large file (default "an input file"). */
  readonly what?: string;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** `size` is what was found: "123 bytes" or "more than 456 bytes". */
function tooLarge(name: string, size: string, maxBytes: number, what: string): InputError {
  return new InputError(
    name,
    undefined,
    `${size}; ${what} may hold at most ${maxBytes} bytes${maxBytes >= MIB ? ` (${Math.round(maxBytes / MIB)} MiB)` : ""}`,
  );
}

/** Reads `fd` to its end, refusing more than `maxBytes` (retrying a non-blocking descriptor that has no data yet). */
function readBounded(fd: number, maxBytes: number, name: string, what: string): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const chunk = Buffer.allocUnsafe(Math.min(MIB, maxBytes + 1 - total));
    let n: number;
    try {
      n = readSync(fd, chunk, 0, chunk.length, null);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") {
        Atomics.wait(sleeper, 0, 0, 5);
        continue;
      }
      if (code === "EOF") break;
      throw new InputError(name, undefined, `cannot read: ${(error as Error).message}`);
    }
    if (n === 0) break;
    chunks.push(chunk.subarray(0, n));
    total += n;
    if (total > maxBytes) throw tooLarge(name, `more than ${maxBytes} bytes`, maxBytes, what);
  }
  return Buffer.concat(chunks, total);
}

/**
 * The text of `path` ("-": standard input) as UTF-8, read only if it is a regular file of at most
 * `rule.maxBytes` bytes (standard input is read up to the same limit).
 */
export function readInputText(path: string, rule: InputFileRule = {}): string {
  const maxBytes = rule.maxBytes ?? INPUT_LIMIT_BYTES.document;
  const expected = rule.expected ?? "a file";
  const what = rule.what ?? "an input file";
  const name = inputName(path);
  if (path === "-") return withoutByteOrderMark(readBounded(0, maxBytes, name, what).toString("utf8"));
  if (path === "") throw new InputError("(empty file name)", undefined, `expected the name of ${expected}`);
  const notRegular = (isDirectory: boolean) =>
    new InputError(
      name,
      undefined,
      `not a regular file (${isDirectory ? "a folder" : "a device, pipe or socket"}); expected ${expected}`,
    );
  let fd: number;
  try {
    // Checked before opening: opening a FIFO for reading would wait for a writer.
    const stats = statSync(path);
    if (!stats.isFile()) throw notRegular(stats.isDirectory());
    if (stats.size > maxBytes) throw tooLarge(name, `${stats.size} bytes`, maxBytes, what);
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (error) {
    if (error instanceof InputError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError(
      name,
      undefined,
      code === "ENOENT"
        ? "no such file"
        : code === "ENOTDIR"
          ? "no such file (a part of the path is not a folder)"
          : code === "EACCES"
            ? "permission denied"
            : (error as Error).message,
    );
  }
  try {
    // The name may have been replaced between stat and open: check what was opened.
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw notRegular(stats.isDirectory());
    if (stats.size > maxBytes) throw tooLarge(name, `${stats.size} bytes`, maxBytes, what);
    return withoutByteOrderMark(readBounded(fd, maxBytes, name, what).toString("utf8"));
  } finally {
    closeSync(fd);
  }
}
