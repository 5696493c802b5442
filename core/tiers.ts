/** The memory tiers a plan places data on, fastest first: GPU memory, host memory, disk. */
export const TIERS = ["gpu", "cpu", "disk"] as const;
export type Tier = (typeof TIERS)[number];

/** Each tier in words (charts, messages). */
export const TIER_NAMES: Readonly<Record<Tier, string>> = { gpu: "GPU", cpu: "CPU", disk: "disk" };
