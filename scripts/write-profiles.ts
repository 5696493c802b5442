/**
 * `npm run profiles`: writes the shipped single-GPU profiles (profiles/*.json, scripts/compose-profiles.ts),
 * cluster profiles (profiles/clusters/*.json, scripts/compose-clusters.ts) and validation machines
 * (profiles/validation/*.json) from their parts.
 * `--check` writes nothing and exits 1 when a committed file differs from its composition.
 */
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { syncGeneratedFiles } from "../core/sync-generated-files.js";
import { CLUSTER_TABLE, CLUSTERS_DIR, composedClusterFiles, unusedInterconnects } from "./compose-clusters.js";
import {
  COMPOSE_FILE,
  composedProfileFiles,
  composedValidationFiles,
  PARTS_DIR,
  PROFILES_DIR,
  unusedParts,
  VALIDATION_DIR,
  VALIDATION_FILE,
} from "./compose-profiles.js";

const STALE = "differs from its parts: run npm run profiles";

/** Writes (or checks) one folder of composed files; returns how many were stale and the strays without a row. */
function sync(dir: string, files: Record<string, string>, table: string, check: boolean): number {
  if (!check) mkdirSync(dir, { recursive: true });
  const stale = syncGeneratedFiles(dir, files, check, STALE);
  const strays = readdirSync(dir).filter((f) => f.endsWith(".json") && !(f in files));
  for (const f of strays) process.stderr.write(`${join(dir, f)} has no row in ${table}\n`);
  return (check ? stale : 0) + strays.length;
}

function main(args: string[]): number {
  const check = args.includes("--check");
  const problems =
    sync(PROFILES_DIR, composedProfileFiles(), COMPOSE_FILE, check) +
    sync(CLUSTERS_DIR, composedClusterFiles(), CLUSTER_TABLE, check) +
    sync(VALIDATION_DIR, composedValidationFiles(), VALIDATION_FILE, check);
  const unused = [...unusedParts(), ...unusedInterconnects()];
  for (const f of unused) process.stderr.write(`${join(PARTS_DIR, f)} is used by no profile or cluster\n`);
  return problems || unused.length ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1])
  process.exitCode = main(process.argv.slice(2));
