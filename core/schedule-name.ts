/**
 * The schedule semantics a plan can be simulated and run with: "spillway" (dataflow: each transfer
 * waits only for what it needs) and "flexgen" (FlexGen's synchronisation after every step).
 */
export const SCHEDULE_NAMES = ["spillway", "flexgen"] as const;
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];
