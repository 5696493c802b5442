/**
 * An output folder (`report --out`, `synth-weights --out`) as it is before anything is written: absent,
 * or an existing folder. A symbolic link is refused (an output never follows a link), and so is anything
 * that is not a folder (a file, a pipe, a device), each with one line naming the path.
 */
import { lstatSync } from "node:fs";
import { InputError } from "./input-error.js";

/**
 * Whether `path` is an existing folder (false: it does not exist yet); throws an InputError for a link
 * or a non-folder. `what` finishes "--out names the folder ..." (e.g. "the report is written into").
 */
export function checkOutputFolder(path: string, what: string): boolean {
  if (path === "") throw new InputError("--out", undefined, "expected a folder name, got an empty string");
  let stats: ReturnType<typeof lstatSync>;
  try {
    stats = lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw new InputError(path, undefined, (error as Error).message);
  }
  if (stats.isSymbolicLink() || !stats.isDirectory())
    throw new InputError(
      path,
      undefined,
      `is ${stats.isSymbolicLink() ? "a symbolic link" : "not a folder"}; --out names the folder ${what}`,
    );
  return true;
}
