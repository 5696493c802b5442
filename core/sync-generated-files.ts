/**
 * Writes generated files into a folder, or with `check` only reports the ones that differ: the shared
 * step of `npm run schemas` and `npm run profiles`. Returns how many files were stale.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export function syncGeneratedFiles(
  dir: string,
  files: Readonly<Record<string, string>>,
  check: boolean,
  staleMessage: string,
): number {
  let stale = 0;
  for (const [name, text] of Object.entries(files)) {
    const path = join(dir, name);
    let current: string | undefined;
    try {
      current = readFileSync(path, "utf8");
    } catch {
      current = undefined;
    }
    if (current === text) continue;
    stale++;
    if (check) process.stderr.write(`${path} ${staleMessage}\n`);
    else {
      writeFileSync(path, text);
      process.stdout.write(`wrote ${path}\n`);
    }
  }
  return stale;
}
