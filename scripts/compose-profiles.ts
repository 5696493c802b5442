/**
 * `npm run profiles`: writes the shipped hardware profiles (profiles/*.json) from their parts — a GPU
 * part (profiles/parts/gpus), a host part (CPU, host memory and the PCIe link as the host's slot
 * provides it: profiles/parts/hosts) and a disk part (profiles/parts/disks) — as the composition
 * table profiles/parts/compose.json names them. The written profiles are complete standalone files:
 * Spillway never opens a part. scripts/write-profiles.ts writes them (and the clusters).
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { asObject, child, type FieldContext, fail, readObject, readString, rejectUnknownKeys } from "../core/fields.js";
import { parseHardwareProfile } from "../core/hardware-profile.js";
import { readJsonFile } from "../core/read-json-file.js";

/** profiles/ in the source tree (this file runs from dist/scripts/). */
export const PROFILES_DIR = fileURLToPath(new URL("../../profiles/", import.meta.url));
export const PARTS_DIR = join(PROFILES_DIR, "parts");
export const COMPOSE_FILE = join(PARTS_DIR, "compose.json");
/**
 * Validation machines: the hosts of published engine measurements that no shipped profile describes. Composed
 * from the same parts, written to profiles/validation/ (which `spillway hardware` and the sweep do not list;
 * `--hardware profiles/validation/<name>.json` reads one) and used by the engines' validation tests.
 */
export const VALIDATION_FILE = join(PARTS_DIR, "validation.json");
export const VALIDATION_DIR = join(PROFILES_DIR, "validation");

export type PartKind = "gpu" | "host" | "disk";
export const PART_KINDS: readonly PartKind[] = ["gpu", "host", "disk"];

/** The sections each kind of part holds (besides its capacity and an `about` line that is not copied). */
const PART_SECTIONS: Record<PartKind, readonly string[]> = {
  gpu: ["gpu"],
  host: ["cpu", "hostToDevice", "deviceToHost"],
  disk: ["disk"],
};
/** The capacity each kind of part brings (capacityBytes.gpu, .cpu, .disk). */
const PART_CAPACITY: Record<PartKind, "gpu" | "cpu" | "disk"> = { gpu: "gpu", host: "cpu", disk: "disk" };

/** One row of the composition table: the profile's own text and the parts it is made of. */
export interface Composition {
  readonly description: string;
  readonly host: string;
  readonly parts: Readonly<Record<PartKind, string>>;
  /** FlexGen's fitted constants, for the one profile that describes FlexGen's own machine. */
  readonly flexgenFitted?: Record<string, unknown>;
  readonly notes?: string;
}

export function partPath(kind: PartKind, name: string, partsDir = PARTS_DIR): string {
  return join(partsDir, `${kind}s`, `${name}.json`);
}

/** The names of the part files of one kind on disk. */
export function partNames(kind: PartKind, partsDir = PARTS_DIR): string[] {
  return readdirSync(join(partsDir, `${kind}s`))
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.replace(/\.json$/, ""))
    .sort();
}

/** The composition table, validated: every row has its text and one part of each kind. */
export function readCompositionTable(path = COMPOSE_FILE): Record<string, Composition> {
  const root: FieldContext = { source: path, path: "" };
  const table = asObject(readJsonFile(path), root);
  const out: Record<string, Composition> = {};
  for (const [name, value] of Object.entries(table)) {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) fail(root, name, "a profile name is lower-case letters, digits and '-'");
    const ctx = child(root, name);
    const row = asObject(value, ctx);
    rejectUnknownKeys(row, ctx, ["description", "host", "parts", "flexgenFitted", "notes"]);
    const partsCtx = child(ctx, "parts");
    const parts = readObject(row, "parts", ctx);
    rejectUnknownKeys(parts, partsCtx, PART_KINDS);
    const named = Object.fromEntries(PART_KINDS.map((k) => [k, readString(parts, k, partsCtx)])) as Record<
      PartKind,
      string
    >;
    out[name] = {
      description: readString(row, "description", ctx),
      host: readString(row, "host", ctx),
      parts: named,
      ...(row.flexgenFitted !== undefined ? { flexgenFitted: readObject(row, "flexgenFitted", ctx) } : {}),
      ...(row.notes !== undefined ? { notes: readString(row, "notes", ctx) } : {}),
    };
  }
  return out;
}

/** A part's sections and capacity, checked to hold exactly what its kind holds. */
export function readPart(kind: PartKind, name: string, partsDir = PARTS_DIR): Record<string, unknown> {
  const path = partPath(kind, name, partsDir);
  const ctx: FieldContext = { source: path, path: "" };
  const part = asObject(readJsonFile(path), ctx);
  rejectUnknownKeys(part, ctx, ["about", "capacityBytes", ...PART_SECTIONS[kind]]);
  readString(part, "about", ctx);
  const capacity = readObject(part, "capacityBytes", ctx);
  rejectUnknownKeys(capacity, child(ctx, "capacityBytes"), [PART_CAPACITY[kind]]);
  readObject(capacity, PART_CAPACITY[kind], child(ctx, "capacityBytes"));
  for (const section of PART_SECTIONS[kind]) readObject(part, section, ctx);
  return part;
}

/** The kernel-class rates a profile may carry, by section (see engines/kernel-rates.ts). */
const KERNEL_RATES: Record<"gpu" | "cpu" | "disk", readonly string[]> = {
  gpu: ["elementwiseBytesPerSecond", "stridedBytesPerSecond", "gemmCurve"],
  cpu: [
    "streamBytesPerSecond",
    "fp16ToFp32ValuesPerSecond",
    "firstTouchBytesPerSecond",
    "pageableRelayBytesPerSecond",
    "singleThreadCopyBytesPerSecond",
    "eagerDispatchSeconds",
  ],
  disk: ["mmapReadBytesPerSecond"],
};

/**
 * A sentence listing the profile's kernel-class rates by kind: measured, datasheet (bounds or typical
 * values) only, and absent (the engines then derive them from the profile's other rates).
 */
export function kernelRateNote(profile: Record<string, Record<string, unknown>>): string {
  const measured: string[] = [];
  const datasheetOnly: string[] = [];
  const absent: string[] = [];
  for (const [section, keys] of Object.entries(KERNEL_RATES)) {
    for (const key of keys) {
      const value = profile[section]?.[key] as Record<string, unknown> | undefined;
      const name = `${section}.${key}`;
      if (value === undefined) absent.push(name);
      else if ("measured" in value || "samples" in value || "fitted" in value) measured.push(name);
      else datasheetOnly.push(name);
    }
  }
  const list = (names: string[]) => (names.length ? names.join(", ") : "none");
  return (
    `Kernel-class rates: measured: ${list(measured)}; datasheet bounds or typical values only: ${list(datasheetOnly)}; ` +
    `absent, so engines derive them from the rates above (engines/kernel-rates.ts): ${list(absent)}.`
  );
}

/** One profile built from its parts, in the profile file's key order. */
export function composeProfile(name: string, row: Composition, partsDir = PARTS_DIR): Record<string, unknown> {
  const gpu = readPart("gpu", row.parts.gpu, partsDir);
  const host = readPart("host", row.parts.host, partsDir);
  const disk = readPart("disk", row.parts.disk, partsDir);
  const capacity = (part: Record<string, unknown>) => part.capacityBytes as Record<string, unknown>;
  const profile: Record<string, unknown> = {
    name,
    description: row.description,
    host: row.host,
    capacityBytes: { gpu: capacity(gpu).gpu, cpu: capacity(host).cpu, disk: capacity(disk).disk },
    gpu: gpu.gpu,
    cpu: host.cpu,
    hostToDevice: host.hostToDevice,
    deviceToHost: host.deviceToHost,
    disk: disk.disk,
    ...(row.flexgenFitted ? { flexgenFitted: row.flexgenFitted } : {}),
  };
  const rates = kernelRateNote(profile as Record<string, Record<string, unknown>>);
  profile.notes = row.notes ? `${row.notes} ${rates}` : rates;
  // The composed profile must be one Spillway accepts; errors name the profile and the parts.
  parseHardwareProfile(
    JSON.parse(JSON.stringify(profile)),
    `profile ${name} (parts: gpu ${row.parts.gpu}, host ${row.parts.host}, disk ${row.parts.disk})`,
  );
  return profile;
}

/** File name (profiles/<name>.json) -> the exact text the generator writes, for every row of the table. */
export function composedProfileFiles(partsDir = PARTS_DIR, tableFile = "compose.json"): Record<string, string> {
  const table = readCompositionTable(join(partsDir, tableFile));
  return Object.fromEntries(
    Object.entries(table).map(([name, row]) => [
      `${name}.json`,
      JSON.stringify(composeProfile(name, row, partsDir), null, 2) + "\n",
    ]),
  );
}

/** profiles/validation/<name>.json -> its text, for every row of profiles/parts/validation.json. */
export function composedValidationFiles(partsDir = PARTS_DIR): Record<string, string> {
  return composedProfileFiles(partsDir, "validation.json");
}

/** Part files no row of the shipped or the validation table uses, as "<kind>s/<name>.json". */
export function unusedParts(partsDir = PARTS_DIR): string[] {
  const rows = ["compose.json", "validation.json"].flatMap((f) =>
    existsSync(join(partsDir, f)) ? Object.values(readCompositionTable(join(partsDir, f))) : [],
  );
  return PART_KINDS.flatMap((kind) => {
    const used = new Set(rows.map((row) => row.parts[kind]));
    return partNames(kind, partsDir)
      .filter((name) => !used.has(name))
      .map((name) => `${kind}s/${name}.json`);
  });
}
