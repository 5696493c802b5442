/**
 * The resources a schedule keeps busy: GPU and CPU compute and the four links. The planner's busy
 * seconds, the simulator's tasks and the runtime's measurements are all per resource, in this order.
 */
import { LINKS } from "./links.js";

export const RESOURCES = ["gpu", "cpu", ...LINKS] as const;
export type Resource = (typeof RESOURCES)[number];

/** What each resource is, in words (a plan's bottleneck, reports, disagreement messages, charts). */
export const RESOURCE_NAMES: Readonly<Record<Resource, string>> = {
  gpu: "GPU compute",
  cpu: "CPU compute",
  h2d: "host-to-GPU link",
  d2h: "GPU-to-host link",
  diskRead: "disk read",
  diskWrite: "disk write",
};

/** The same, short and ASCII, for fixed-width text (terminal tables, text timelines). */
export const RESOURCE_SHORT_NAMES: Readonly<Record<Resource, string>> = {
  gpu: "GPU compute",
  cpu: "CPU compute",
  h2d: "host->GPU",
  d2h: "GPU->host",
  diskRead: "disk read",
  diskWrite: "disk write",
};

export function isResource(value: unknown): value is Resource {
  return typeof value === "string" && (RESOURCES as readonly string[]).includes(value);
}
