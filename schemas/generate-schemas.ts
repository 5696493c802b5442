/**
 * `npm run schemas`: writes schemas/*.schema.json from schemas/definitions.ts (the TypeScript
 * description checked against the interfaces). `--check` writes nothing and exits 1 when a committed
 * file differs.
 */
import { fileURLToPath } from "node:url";
import { syncGeneratedFiles } from "../core/sync-generated-files.js";
import { schemaDocuments } from "./definitions.js";

/** The folder holding the published files: schemas/ in the source tree (this file runs from dist/schemas/). */
export const SCHEMAS_DIR = fileURLToPath(new URL("../../schemas/", import.meta.url));

/** File name -> the exact text the generator writes. */
export function generatedSchemaFiles(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(schemaDocuments()).map(([name, doc]) => [name, JSON.stringify(doc, null, 2) + "\n"]),
  );
}

function main(args: string[]): number {
  const check = args.includes("--check");
  const stale = syncGeneratedFiles(SCHEMAS_DIR, generatedSchemaFiles(), check, "is stale: run npm run schemas");
  return check && stale ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1])
  process.exitCode = main(process.argv.slice(2));
