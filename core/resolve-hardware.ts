import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type HardwareProfile, parseHardwareProfile } from "./hardware-profile.js";
import { InputError } from "./input-error.js";
import { readJsonFile } from "./read-json-file.js";

/** The shipped profiles folder (profiles/ at the package root, beside dist/). */
export function profilesDirectory(): string {
  return fileURLToPath(new URL("../../profiles/", import.meta.url));
}

/** The names of the JSON files in a folder, without ".json", sorted. */
export function jsonFileNames(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.replace(/\.json$/, ""))
    .sort();
}

export function shippedProfileNames(): string[] {
  return jsonFileNames(profilesDirectory());
}

export function loadShippedProfile(name: string): HardwareProfile {
  const path = `${profilesDirectory()}${name}.json`;
  return parseHardwareProfile(readJsonFile(path), path);
}

/** Resolves --hardware: a shipped profile name, or the path of a profile JSON file ("-" for stdin). */
export function resolveHardware(nameOrPath: string): HardwareProfile {
  const names = shippedProfileNames();
  if (names.includes(nameOrPath.toLowerCase())) return loadShippedProfile(nameOrPath.toLowerCase());
  if (nameOrPath === "-" || nameOrPath.endsWith(".json") || nameOrPath.includes("/") || existsSync(nameOrPath)) {
    return parseHardwareProfile(readJsonFile(nameOrPath), nameOrPath === "-" ? "<stdin>" : nameOrPath);
  }
  throw new InputError(
    "--hardware",
    undefined,
    `unknown hardware ${JSON.stringify(nameOrPath)}; expected a profile name (${names.join(", ")}) or the path of a profile JSON file`,
  );
}
