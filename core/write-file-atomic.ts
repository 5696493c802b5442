import {
  closeSync,
  constants,
  fchmodSync,
  fsyncSync,
  lstatSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { InputError } from "./input-error.js";
import { removeOnSignal, removeStaleTemporaries, temporaryPathFor } from "./temporary-files.js";

/**
 * What a write to `path` would replace: nothing, or a regular file (whose permission bits the new file
 * keeps). A symbolic link, a device, a pipe or a folder is refused: an output never follows a link nor
 * replaces what is not a plain file. Call it before long work, so that a bad output fails early.
 */
export function checkOutputPath(path: string): { readonly mode: number | undefined } {
  if (path === "") throw new InputError("--out", undefined, "expected a file name, got an empty string");
  let stats: ReturnType<typeof lstatSync> | undefined;
  try {
    stats = lstatSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") {
      checkOutputFolderExists(path);
      return { mode: undefined };
    }
    throw new InputError(path, undefined, `cannot write: ${(error as Error).message}`);
  }
  if (stats.isSymbolicLink())
    throw new InputError(
      path,
      undefined,
      "is a symbolic link; Spillway does not write through links (name the file itself)",
    );
  if (!stats.isFile())
    throw new InputError(
      path,
      undefined,
      `is ${stats.isDirectory() ? "a folder" : "not a regular file (a device, pipe or socket)"}; expected a file to write`,
    );
  return { mode: stats.mode & 0o7777 };
}

/** A new output's folder must exist: Spillway makes no folder for a file output, and fails before the work. */
function checkOutputFolderExists(path: string): void {
  const folder = dirname(path);
  let isFolder: boolean;
  try {
    isFolder = statSync(folder).isDirectory();
  } catch {
    isFolder = false;
  }
  if (!isFolder) throw new InputError(path, undefined, `cannot write: ${folder} is not an existing folder`);
}

/**
 * Creates the temporary `temporary` for writing with the permission bits `mode` (those of the file it
 * will replace; the umask's default where none): O_EXCL | O_NOFOLLOW, so it fails if anything, a link
 * included, already has the name. Returns the file descriptor.
 */
export function openTemporaryExclusively(temporary: string, mode: number | undefined): number {
  const fd = openSync(
    temporary,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0),
    mode ?? 0o666,
  );
  try {
    if (mode !== undefined) fchmodSync(fd, mode);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  return fd;
}

/**
 * Writes a file so that a reader never sees it half-written and an existing file is replaced only once
 * the new one is complete: the content goes to a new, unpredictably named file in the same folder,
 * created exclusively (never through a planted link), then renamed over the target. An existing file's
 * permission bits are kept; links, devices and folders are refused (checkOutputPath). The temporary is
 * named by temporaryPathFor, removed on SIGINT/SIGTERM/SIGHUP, and stale ones of the same target left
 * by killed runs are removed first (core/temporary-files.ts).
 */
export function writeFileAtomic(path: string, content: string | Uint8Array): void {
  const { mode } = checkOutputPath(path);
  removeStaleTemporaries(path);
  const temporary = temporaryPathFor(path);
  const forget = removeOnSignal(temporary);
  let fd: number | undefined;
  try {
    fd = openTemporaryExclusively(temporary, mode);
    const bytes = typeof content === "string" ? Buffer.from(content, "utf8") : content;
    let written = 0;
    while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temporary, path);
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    rmSync(temporary, { force: true });
    throw new InputError(path, undefined, `cannot write: ${(error as Error).message}`);
  } finally {
    forget();
  }
}
