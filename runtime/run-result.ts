/** What `run()` measured: the simulator's figures for the real execution, and the tokens. */
import type { Link } from "../core/links.js";
import type { Plan } from "../core/plan.js";
import { RESOURCES, type Resource } from "../core/resources.js";
import type { ScheduleName } from "../core/schedule-name.js";
import type { Tier } from "../core/tiers.js";
import { type PlannedFigures, plannedFigures } from "../simulator/simulate.js";

export interface RunResult {
  readonly backend: "cpu" | "cuda";
  /** The device the CUDA backend ran on. */
  readonly device?: string;
  readonly schedule: ScheduleName;
  /** Whether transfers ran on worker threads beside the compute. */
  readonly overlap: boolean;
  readonly throughputTokensPerSecond: number;
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly makespanSeconds: number;
  readonly events: number;
  readonly peakBytes: Readonly<Record<Tier, number>>;
  readonly capacityBytes: Readonly<Record<Tier, number>>;
  readonly bytes: Readonly<Record<Link, number>>;
  readonly busySeconds: Readonly<Record<Resource, number>>;
  readonly utilisation: Readonly<Record<Resource, number>>;
  readonly criticalResource: Resource;
  readonly planned?: PlannedFigures;
  readonly relativeError?: number;
  /** Generated token ids per sequence, in block order. */
  readonly tokens: number[][];
  readonly matchesReference?: boolean;
  readonly referenceTokens?: number[][];
}

/** The timing half of a RunResult, from a run's phases and busy time, checked against the plan's prediction. */
export function timedRunFigures(
  plan: Plan,
  measured: {
    readonly prefillSeconds: number;
    readonly makespanSeconds: number;
    readonly busySeconds: Readonly<Record<Resource, number>>;
  },
): Pick<
  RunResult,
  | "throughputTokensPerSecond"
  | "prefillSeconds"
  | "decodeSeconds"
  | "makespanSeconds"
  | "busySeconds"
  | "utilisation"
  | "criticalResource"
  | "planned"
  | "relativeError"
> {
  const busy = measured.busySeconds;
  const makespan = measured.makespanSeconds;
  const throughput = (plan.policy.gpuBatchSize * plan.policy.numGpuBatches * plan.workload.genLen) / makespan;
  const planned = plannedFigures(plan.predicted);
  return {
    throughputTokensPerSecond: throughput,
    prefillSeconds: measured.prefillSeconds,
    decodeSeconds: makespan - measured.prefillSeconds,
    makespanSeconds: makespan,
    busySeconds: busy,
    utilisation: Object.fromEntries(RESOURCES.map((x) => [x, busy[x] / makespan])) as Record<Resource, number>,
    criticalResource: RESOURCES.reduce((a, x) => (busy[x] > busy[a] ? x : a), "gpu" as Resource),
    planned,
    relativeError: (throughput - planned.throughputTokensPerSecond) / planned.throughputTokensPerSecond,
  };
}
