/** One colour per memory tier, the same in every chart. */
export const TIER_ORDER = ["gpu", "cpu", "disk"] as const;
export const TIER_COLOURS: Record<(typeof TIER_ORDER)[number], string> = { gpu: "#4c78a8", cpu: "#f58518", disk: "#9d755d" };
