/**
 * `--offload-dir DIR` (run, compare, profile): the parent folder of the disk tier's offload files,
 * checked before any work: it must be an existing folder (a link to one is fine: only a new folder of
 * Spillway's own is made inside it, and removed when the run ends).
 */
import { statSync } from "node:fs";
import { InputError } from "../core/input-error.js";

export function checkOffloadDir(path: string | undefined): void {
  if (path === undefined || path === "") return;
  let isFolder = false;
  try {
    isFolder = statSync(path).isDirectory();
  } catch {
    isFolder = false;
  }
  if (!isFolder)
    throw new InputError(
      "--offload-dir",
      undefined,
      `expected an existing folder for the disk tier's offload files, got ${JSON.stringify(path)}`,
    );
}
