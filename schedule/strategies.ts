/**
 * The schedule strategies by name: a new schedule is a file in strategies/ and its line here. This list
 * is the one declaration of the schedule names (core/schedule-name.ts re-exports them): plans, the CLI's
 * --schedule choices and the JSON Schemas take them from here.
 */
import { flexgenStrategy } from "./strategies/flexgen.js";
import { spillwayStrategy } from "./strategies/spillway.js";
import type { ScheduleStrategy } from "./strategy.js";

// biome-ignore format: one registration per line
const STRATEGIES = [
  spillwayStrategy,
  flexgenStrategy,
] as const satisfies readonly ScheduleStrategy[];

export type ScheduleName = (typeof STRATEGIES)[number]["name"];
export const SCHEDULE_NAMES: readonly ScheduleName[] = STRATEGIES.map((s) => s.name);

export function isScheduleName(name: string): name is ScheduleName {
  return (SCHEDULE_NAMES as readonly string[]).includes(name);
}

export function scheduleStrategy(name: string): ScheduleStrategy {
  const strategy = STRATEGIES.find((s) => s.name === name);
  if (!strategy) throw new Error(`unknown schedule "${name}" (known: ${SCHEDULE_NAMES.join(", ")})`);
  return strategy;
}

export function scheduleNames(): string[] {
  return [...SCHEDULE_NAMES];
}
