/**
 * The shipped cluster profiles (profiles/clusters/*.json), composed as single-GPU profiles are: each
 * row of profiles/parts/clusters.json names the single-GPU composition (a row of compose.json) that
 * describes one GPU with its host share and disk, the interconnect parts between GPUs of a node and
 * between nodes (profiles/parts/interconnects), and, when that row describes a whole host that its GPUs
 * share, how many GPUs share it: every host and disk rate and capacity is then divided among them, and
 * the source says so. `npm run profiles` writes them with the single-GPU profiles.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseClusterProfile } from "../core/cluster-profile.js";
import {
  asObject,
  child,
  type FieldContext,
  fail,
  readBoundedNumber,
  readObject,
  readOptionalString,
  readString,
  rejectUnknownKeys,
} from "../core/fields.js";
import { readJsonFile } from "../core/read-json-file.js";
import { jsonFileNames } from "../core/resolve-hardware.js";
import { type Composition, composeProfile, PARTS_DIR, readCompositionTable } from "./compose-profiles.js";

// The cluster folder and table, beside the single-GPU profiles and their parts.
export const CLUSTERS_DIR = fileURLToPath(new URL("../../profiles/clusters/", import.meta.url));
export const CLUSTER_TABLE = fileURLToPath(new URL("../../profiles/parts/clusters.json", import.meta.url));

/** One row of the cluster table. */
export interface ClusterComposition {
  readonly description: string;
  readonly nodes: number;
  readonly gpusPerNode: number;
  /** The compose.json row describing one GPU, its host and its disk. */
  readonly gpuProfile: string;
  /** When gpuProfile's host and disk are a whole node shared by this many GPUs (absent: already one GPU's share). */
  readonly hostSharedBy?: number;
  readonly intraNode?: string;
  readonly interNode?: string;
  readonly notes?: string;
}

export function readClusterTable(path = CLUSTER_TABLE): Record<string, ClusterComposition> {
  const root: FieldContext = { source: path, path: "" };
  const table = asObject(readJsonFile(path), root);
  const out: Record<string, ClusterComposition> = {};
  for (const [name, value] of Object.entries(table)) {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) fail(root, name, "a cluster name is lower-case letters, digits and '-'");
    const ctx = child(root, name);
    const row = asObject(value, ctx);
    rejectUnknownKeys(row, ctx, [
      "description",
      "nodes",
      "gpusPerNode",
      "gpuProfile",
      "hostSharedBy",
      "intraNode",
      "interNode",
      "notes",
    ]);
    const optional = (key: string) => {
      const v = readOptionalString(row, key, ctx);
      return v === undefined ? {} : { [key]: v };
    };
    out[name] = {
      description: readString(row, "description", ctx),
      nodes: readBoundedNumber(row, "nodes", ctx, { min: 1, integer: true }, {}),
      gpusPerNode: readBoundedNumber(row, "gpusPerNode", ctx, { min: 1, integer: true }, {}),
      gpuProfile: readString(row, "gpuProfile", ctx),
      ...(row.hostSharedBy !== undefined
        ? { hostSharedBy: readBoundedNumber(row, "hostSharedBy", ctx, { min: 2, integer: true }, {}) }
        : {}),
      ...optional("intraNode"),
      ...optional("interNode"),
      ...optional("notes"),
    };
  }
  return out;
}

export function interconnectNames(partsDir = PARTS_DIR): string[] {
  return jsonFileNames(join(partsDir, "interconnects"));
}

function readInterconnectPart(name: string, partsDir: string): Record<string, unknown> {
  const path = join(partsDir, "interconnects", `${name}.json`);
  const ctx: FieldContext = { source: path, path: "" };
  const part = asObject(readJsonFile(path), ctx);
  rejectUnknownKeys(part, ctx, ["about", "interconnect"]);
  readString(part, "about", ctx);
  return readObject(part, "interconnect", ctx);
}

type Json = Record<string, unknown>;

/** A quantity (or a plain {value, source}) divided by `n`, each source saying so. */
function divided(value: unknown, n: number, what: string): unknown {
  const v = value as Json;
  const note = ` (divided among the ${n} GPUs that share this ${what}: one GPU's share)`;
  if (typeof v.value === "number") return { ...v, value: v.value / n, source: `${v.source as string}${note}` };
  const out: Json = {};
  for (const [slot, sourced] of Object.entries(v)) {
    const s = sourced as Json;
    out[slot] = typeof s.value === "number" ? { ...s, value: s.value / n, source: `${s.source as string}${note}` } : s;
  }
  return out;
}

/** Host rates and capacities that GPUs sharing a host split between them (latencies and one-thread rates do not split). */
const SHARED_CPU_RATES = [
  "fp32FlopsPerSecond",
  "memoryBandwidthBytesPerSecond",
  "streamBytesPerSecond",
  "fp16ToFp32ValuesPerSecond",
];
const SHARED_DISK_RATES = ["readBytesPerSecond", "writeBytesPerSecond", "mmapReadBytesPerSecond"];

/** One GPU's share of a profile whose host and disk `n` GPUs share. */
export function hostShare(profile: Json, n: number): Json {
  const capacity = profile.capacityBytes as Json;
  const cpu = { ...(profile.cpu as Json) };
  const disk = { ...(profile.disk as Json) };
  cpu.cores = Math.max(1, Math.floor((cpu.cores as number) / n));
  cpu.note = `${cpu.note ? `${cpu.note as string} ` : ""}cores: the host's vCPUs divided among its ${n} GPUs.`;
  for (const key of SHARED_CPU_RATES) if (cpu[key] !== undefined) cpu[key] = divided(cpu[key], n, "host");
  for (const key of SHARED_DISK_RATES) if (disk[key] !== undefined) disk[key] = divided(disk[key], n, "disk");
  return {
    ...profile,
    capacityBytes: { ...capacity, cpu: divided(capacity.cpu, n, "host"), disk: divided(capacity.disk, n, "disk") },
    cpu,
    disk,
  };
}

export function composeCluster(
  name: string,
  row: ClusterComposition,
  singles: Readonly<Record<string, Composition>>,
  partsDir = PARTS_DIR,
): Json {
  const single = singles[row.gpuProfile];
  if (!single)
    fail(
      { source: CLUSTER_TABLE, path: name },
      "gpuProfile",
      `no row ${JSON.stringify(row.gpuProfile)} in compose.json`,
    );
  const composed = composeProfile(row.gpuProfile, single, partsDir);
  const perGpu = row.hostSharedBy ? hostShare(composed, row.hostSharedBy) : composed;
  const cluster: Json = {
    kind: "cluster",
    name,
    description: row.description,
    nodes: row.nodes,
    gpusPerNode: row.gpusPerNode,
    perGpu: { ...perGpu, name: `${name}-gpu` },
    ...(row.intraNode ? { intraNode: readInterconnectPart(row.intraNode, partsDir) } : {}),
    ...(row.interNode ? { interNode: readInterconnectPart(row.interNode, partsDir) } : {}),
    ...(row.notes ? { notes: row.notes } : {}),
  };
  parseClusterProfile(JSON.parse(JSON.stringify(cluster)), `cluster ${name} (${CLUSTER_TABLE})`);
  return cluster;
}

/** File name (profiles/clusters/<name>.json) -> the exact text written, for every row of the cluster table. */
export function composedClusterFiles(partsDir = PARTS_DIR): Record<string, string> {
  const singles = readCompositionTable(join(partsDir, "compose.json"));
  const table = readClusterTable(join(partsDir, "clusters.json"));
  return Object.fromEntries(
    Object.entries(table).map(([name, row]) => [
      `${name}.json`,
      JSON.stringify(composeCluster(name, row, singles, partsDir), null, 2) + "\n",
    ]),
  );
}

/** Interconnect parts no cluster uses, as "interconnects/<name>.json". */
export function unusedInterconnects(partsDir = PARTS_DIR): string[] {
  const table = readClusterTable(join(partsDir, "clusters.json"));
  const used = new Set(Object.values(table).flatMap((r) => [r.intraNode, r.interNode]));
  return interconnectNames(partsDir)
    .filter((n) => !used.has(n))
    .map((n) => `interconnects/${n}.json`);
}
