/**
 * One colour per resource (compute device or link stream), the same in every chart that shows
 * resources. GPU and CPU compute share their memory tier's colour (tier-colours.ts); the links and the
 * disk streams get their own.
 */
import { RESOURCE_NAMES, RESOURCES, type Resource } from "../core/resources.js";
import { TIER_COLOURS } from "./tier-colours.js";

export const RESOURCE_COLOURS: Record<Resource, string> = {
  gpu: TIER_COLOURS.gpu,
  cpu: TIER_COLOURS.cpu,
  h2d: "#54a24b",
  d2h: "#b279a2",
  diskRead: TIER_COLOURS.disk,
  diskWrite: "#e45756",
};

/** A Vega-Lite colour scale over resource names (core/resources.ts) with the house colours. */
export function resourceColourScale(resources: readonly Resource[] = RESOURCES): { domain: string[]; range: string[] } {
  return { domain: resources.map((r) => RESOURCE_NAMES[r]), range: resources.map((r) => RESOURCE_COLOURS[r]) };
}
