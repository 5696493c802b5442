import { fileURLToPath } from "node:url";
import { type ClusterProfile, isClusterDocument, parseClusterProfile } from "./cluster-profile.js";
import { type HardwareProfile, parseHardwareProfile } from "./hardware-profile.js";
import { readJsonFile } from "./read-json-file.js";
import {
  isHardwarePath,
  jsonFileNames,
  resolveHardware,
  shippedProfileNames,
  unknownHardwareError,
} from "./resolve-hardware.js";

export function clustersDirectory(): string {
  return fileURLToPath(new URL("../../profiles/clusters/", import.meta.url));
}

export function shippedClusterNames(): string[] {
  return jsonFileNames(clustersDirectory());
}

export function loadShippedCluster(name: string): ClusterProfile {
  const path = `${clustersDirectory()}${name}.json`;
  return parseClusterProfile(readJsonFile(path), path);
}

/** What --hardware names: one GPU (`profile`), or a cluster (`cluster`, whose `perGpu` is then `profile`). */
export type HardwareTarget =
  | { readonly kind: "gpu"; readonly profile: HardwareProfile }
  | { readonly kind: "cluster"; readonly cluster: ClusterProfile; readonly profile: HardwareProfile };

export function resolveHardwareTarget(nameOrPath: string): HardwareTarget {
  const lower = nameOrPath.toLowerCase();
  if (!shippedProfileNames().includes(lower) && shippedClusterNames().includes(lower)) {
    const cluster = loadShippedCluster(lower);
    return { kind: "cluster", cluster, profile: cluster.perGpu };
  }
  if (!shippedProfileNames().includes(lower) && isHardwarePath(nameOrPath)) {
    const source = nameOrPath === "-" ? "<stdin>" : nameOrPath;
    const data = readJsonFile(nameOrPath);
    if (isClusterDocument(data)) {
      const cluster = parseClusterProfile(data, source);
      return { kind: "cluster", cluster, profile: cluster.perGpu };
    }
    return { kind: "gpu", profile: parseHardwareProfile(data, source) };
  }
  if (shippedProfileNames().includes(lower)) return { kind: "gpu", profile: resolveHardware(nameOrPath) };
  throw unknownHardwareError(nameOrPath, `, a cluster name (${shippedClusterNames().join(", ")})`);
}
