/** One colour per memory tier, the same in every chart. */
import type { Tier } from "../core/tiers.js";

export const TIER_COLOURS: Readonly<Record<Tier, string>> = { gpu: "#4c78a8", cpu: "#f58518", disk: "#9d755d" };
