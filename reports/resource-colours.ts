/**
 * One colour per resource (compute device or link stream), the same in every chart that shows
 * resources. GPU and CPU compute share their memory tier's colour (tier-colours.ts); the links and the
 * disk streams get their own.
 */
import { SIM_RESOURCES, type SimResource } from "../simulator/task.js";
import { TIER_COLOURS } from "./tier-colours.js";

export const RESOURCE_ORDER = SIM_RESOURCES;

export const RESOURCE_COLOURS: Record<SimResource, string> = {
  gpu: TIER_COLOURS.gpu,
  cpu: TIER_COLOURS.cpu,
  h2d: "#54a24b",
  d2h: "#b279a2",
  diskRead: TIER_COLOURS.disk,
  diskWrite: "#e45756",
};

/** What each resource is, in words (legends, axis labels, bar text). */
export const RESOURCE_LABELS: Record<SimResource, string> = {
  gpu: "GPU compute",
  cpu: "CPU compute",
  h2d: "host→GPU link",
  d2h: "GPU→host link",
  diskRead: "disk read",
  diskWrite: "disk write",
};

/** A Vega-Lite colour scale over resource labels with the house colours. */
export function resourceColourScale(resources: readonly SimResource[] = RESOURCE_ORDER): { domain: string[]; range: string[] } {
  return { domain: resources.map((r) => RESOURCE_LABELS[r]), range: resources.map((r) => RESOURCE_COLOURS[r]) };
}

export function isResource(value: unknown): value is SimResource {
  return typeof value === "string" && (SIM_RESOURCES as readonly string[]).includes(value);
}
