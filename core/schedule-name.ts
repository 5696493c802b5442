/**
 * The schedule semantics a plan can be simulated and run with, e.g. "spillway" (dataflow: each
 * transfer waits only for what it needs) and "flexgen" (FlexGen's synchronisation after every step).
 * Declared once, by the strategy registry (schedule/strategies.ts).
 */
export { isScheduleName, SCHEDULE_NAMES, type ScheduleName } from "../schedule/strategies.js";
