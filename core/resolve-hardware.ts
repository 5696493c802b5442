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

/** Whether a --hardware that is no shipped name is read as a file: "-", a .json name, a path, or an existing file. */
export function isHardwarePath(nameOrPath: string): boolean {
  return nameOrPath === "-" || nameOrPath.endsWith(".json") || nameOrPath.includes("/") || existsSync(nameOrPath);
}

/** A --hardware that is neither a shipped profile name nor a file (`also`: other names accepted, e.g. clusters). */
export function unknownHardwareError(nameOrPath: string, also = ""): InputError {
  return new InputError(
    "--hardware",
    undefined,
    `unknown hardware ${JSON.stringify(nameOrPath)}; expected a profile name (${shippedProfileNames().join(", ")})${also} or the path of a profile JSON file`,
  );
}

/** Resolves --hardware: a shipped profile name, or the path of a profile JSON file ("-" for stdin). */
export function resolveHardware(nameOrPath: string): HardwareProfile {
  if (shippedProfileNames().includes(nameOrPath.toLowerCase())) return loadShippedProfile(nameOrPath.toLowerCase());
  if (isHardwarePath(nameOrPath))
    return parseHardwareProfile(readJsonFile(nameOrPath), nameOrPath === "-" ? "<stdin>" : nameOrPath);
  throw unknownHardwareError(nameOrPath);
}
