/**
 * Cluster profile: N nodes of G GPUs each, every GPU with its share of its node's host (CPU cores,
 * memory, PCIe link) and disk, described as a single-GPU hardware profile; the link between two GPUs
 * of one node (PCIe peer-to-peer or NVLink) and the network between nodes. Every figure carries its
 * source, as in single-GPU profiles. Shipped clusters are composed from parts (scripts/compose-profiles.ts).
 */
import {
  asObject,
  child,
  type FieldContext,
  fail,
  readBoundedNumber,
  readName,
  readObject,
  readOptionalString,
  readString,
  rejectUnknownKeys,
} from "./fields.js";
import {
  effective,
  type HardwareProfile,
  LATENCY,
  parseHardwareProfile,
  type Quantity,
  readQuantity,
} from "./hardware-profile.js";
import { MAX_CLUSTER_NODES, MAX_GPUS_PER_NODE } from "./physical-bounds.js";

export const INTERCONNECT_KINDS = ["pcie", "nvlink", "ethernet", "infiniband"] as const;
export type InterconnectKind = (typeof INTERCONNECT_KINDS)[number];

/** A link between two GPUs: what one GPU's transfer to another gets, per direction. */
export interface InterconnectProfile {
  readonly kind: InterconnectKind;
  readonly name: string;
  /** Rate of one large transfer from one GPU (or its host) to another, per direction. */
  readonly bytesPerSecond: Quantity;
  /** Fixed cost per transfer (a message's setup and flight), seconds. */
  readonly latencySeconds: Quantity;
}

export interface ClusterProfile {
  readonly kind: "cluster";
  readonly name: string;
  readonly description: string;
  readonly nodes: number;
  readonly gpusPerNode: number;
  /** One GPU with its host share and disk share, as a single-GPU profile (every GPU of the cluster is alike). */
  readonly perGpu: HardwareProfile;
  /** Between two GPUs of one node; present when a node has more than one GPU. */
  readonly intraNode?: InterconnectProfile;
  /** Between nodes; present when the cluster has more than one node. */
  readonly interNode?: InterconnectProfile;
  readonly notes?: string;
}

/** One GPU of a cluster: its node and its index within the node. */
export interface GpuAddress {
  readonly node: number;
  readonly index: number;
}

export function gpuCount(cluster: ClusterProfile): number {
  return cluster.nodes * cluster.gpusPerNode;
}

/** The cluster's GPUs in order: node 0's GPUs first (pipeline stages fill a node before the next). */
export function gpuAddresses(cluster: ClusterProfile): GpuAddress[] {
  const out: GpuAddress[] = [];
  for (let node = 0; node < cluster.nodes; node++)
    for (let index = 0; index < cluster.gpusPerNode; index++) out.push({ node, index });
  return out;
}

/** The link a transfer from GPU `a` to GPU `b` takes, and its rate and latency as the cost models use them. */
export function linkBetween(
  cluster: ClusterProfile,
  a: GpuAddress,
  b: GpuAddress,
): { readonly interconnect: InterconnectProfile; readonly bytesPerSecond: number; readonly latencySeconds: number } {
  const interconnect = a.node === b.node ? cluster.intraNode : cluster.interNode;
  if (!interconnect)
    throw new Error(`cluster ${cluster.name} has no link between ${JSON.stringify(a)} and ${JSON.stringify(b)}`);
  return {
    interconnect,
    bytesPerSecond: effective(interconnect.bytesPerSecond),
    latencySeconds: effective(interconnect.latencySeconds),
  };
}

function readInterconnect(o: Record<string, unknown>, key: string, ctx: FieldContext): InterconnectProfile {
  const c = child(ctx, key);
  const link = readObject(o, key, ctx);
  rejectUnknownKeys(link, c, ["kind", "name", "bytesPerSecond", "latencySeconds", "note"]);
  const kind = readString(link, "kind", c);
  if (!(INTERCONNECT_KINDS as readonly string[]).includes(kind))
    fail(c, "kind", `expected one of ${INTERCONNECT_KINDS.join(", ")}, got ${JSON.stringify(kind)}`);
  return {
    kind: kind as InterconnectKind,
    name: readName(link, "name", c),
    bytesPerSecond: readQuantity(link, "bytesPerSecond", c),
    latencySeconds: readQuantity(link, "latencySeconds", c, LATENCY),
  };
}

/** Whether parsed JSON is a cluster profile (rather than a single-GPU one): it says `"kind": "cluster"`. */
export function isClusterDocument(data: unknown): boolean {
  return typeof data === "object" && data !== null && (data as Record<string, unknown>).kind === "cluster";
}

/** Validates parsed JSON as a cluster profile; `source` names the file for error messages. */
export function parseClusterProfile(data: unknown, source: string, path = ""): ClusterProfile {
  const ctx: FieldContext = { source, path };
  const o = asObject(data, ctx);
  rejectUnknownKeys(o, ctx, [
    "$schema",
    "kind",
    "name",
    "description",
    "nodes",
    "gpusPerNode",
    "perGpu",
    "intraNode",
    "interNode",
    "notes",
  ]);
  if (o.kind !== "cluster") fail(ctx, "kind", 'expected "cluster"');
  const nodes = readBoundedNumber(o, "nodes", ctx, { min: 1, integer: true }, { min: 1, max: MAX_CLUSTER_NODES });
  const gpusPerNode = readBoundedNumber(
    o,
    "gpusPerNode",
    ctx,
    { min: 1, integer: true },
    { min: 1, max: MAX_GPUS_PER_NODE },
  );
  if (gpusPerNode > 1 && o.intraNode === undefined)
    fail(ctx, "intraNode", `missing: a node of ${gpusPerNode} GPUs needs the link between them`);
  if (nodes > 1 && o.interNode === undefined)
    fail(ctx, "interNode", `missing: ${nodes} nodes need the network between them`);
  const notes = readOptionalString(o, "notes", ctx);
  return {
    kind: "cluster",
    name: readName(o, "name", ctx),
    description: readName(o, "description", ctx),
    nodes,
    gpusPerNode,
    perGpu: parseHardwareProfile(readObject(o, "perGpu", ctx), source, child(ctx, "perGpu").path),
    ...(o.intraNode !== undefined ? { intraNode: readInterconnect(o, "intraNode", ctx) } : {}),
    ...(o.interNode !== undefined ? { interNode: readInterconnect(o, "interNode", ctx) } : {}),
    ...(notes !== undefined ? { notes } : {}),
  };
}

/** A one-GPU cluster of a single-GPU profile (what a single-GPU plan is, seen as a cluster). */
export function singleGpuCluster(profile: HardwareProfile): ClusterProfile {
  return {
    kind: "cluster",
    name: profile.name,
    description: profile.description,
    nodes: 1,
    gpusPerNode: 1,
    perGpu: profile,
  };
}
