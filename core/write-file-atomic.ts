import { renameSync, rmSync, writeFileSync } from "node:fs";
import { InputError } from "./input-error.js";

/** Writes a file so that a reader never sees it half-written and an existing file is replaced only once the new one is complete. */
export function writeFileAtomic(path: string, content: string | Uint8Array): void {
  const temporary = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(temporary, content);
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw new InputError(path, undefined, `cannot write: ${(error as Error).message}`);
  }
}
