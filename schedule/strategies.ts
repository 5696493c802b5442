/** The schedule strategies by name: a new schedule is a file in strategies/ and one line here. */
import type { ScheduleStrategy } from "./strategy.js";
import { flexgenStrategy } from "./strategies/flexgen.js";
import { spillwayStrategy } from "./strategies/spillway.js";

const STRATEGIES: readonly ScheduleStrategy[] = [
  spillwayStrategy,
  flexgenStrategy,
];

export function scheduleStrategy(name: string): ScheduleStrategy {
  const strategy = STRATEGIES.find((s) => s.name === name);
  if (!strategy) throw new Error(`unknown schedule "${name}" (known: ${STRATEGIES.map((s) => s.name).join(", ")})`);
  return strategy;
}

export function scheduleNames(): string[] {
  return STRATEGIES.map((s) => s.name);
}
