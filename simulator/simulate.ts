/**
 * `simulate()`: replays a plan's schedule stream by stream (a pure, deterministic function of the plan,
 * the profile and the schedule semantics), with exact memory accounting, and compares the result with
 * the planner's own prediction.
 */

import type { HardwareProfile } from "../core/hardware-profile.js";
import { LINKS, type Link } from "../core/links.js";
import type { Plan, PlanPrediction } from "../core/plan.js";
import { type PlanIdentity, planIdentity } from "../core/plan-identity.js";
import type { OnProgress } from "../core/progress.js";
import { RESOURCE_NAMES, RESOURCES, type Resource } from "../core/resources.js";
import type { ScheduleName } from "../core/schedule-name.js";
import {
  MAX_SIMULATION_TASKS,
  MAX_SIMULATION_TASKS_PER_TOKEN,
  type SimulationShape,
  simulationOverBudget,
  simulationTaskBound,
  simulationTasksPerToken,
} from "../core/simulation-budget.js";
import { TIERS, type Tier } from "../core/tiers.js";
import { formatBytes } from "../core/units.js";
import { PlanError } from "../planner/plan.js";
import { scheduleStrategy } from "../schedule/strategies.js";
import { TimelineRecorder } from "./ascii-timeline.js";
import { Engine, TaskFactory } from "./engine.js";
import { MemoryLedger, type Overflow } from "./memory-ledger.js";
import { openTraceSink, type TraceOptions } from "./open-trace-sink.js";
import { PlanCosts } from "./plan-costs.js";
import { ScheduleBuilder } from "./schedule-builder.js";
import type { ScheduleCostSource } from "./schedule-costs.js";
import type { Task } from "./task.js";

/**
 * The planner's figures a simulation or run result repeats beside its own (`planned`): the part of
 * plan.predicted they are compared with (plannedFigures() picks it).
 */
export type PlannedFigures = Pick<
  PlanPrediction,
  "throughputTokensPerSecond" | "prefillSeconds" | "decodeSeconds" | "peakBytes" | "bytes"
> & {
  readonly busySeconds?: PlanPrediction["busySeconds"];
  /** MoE plans: the expected expert-cache hit rate per decode step. */
  readonly experts?: Pick<NonNullable<PlanPrediction["experts"]>, "expectedHitRate">;
};

/** The figures of a plan's prediction that results repeat as `planned` (the same keys a plan file always gave). */
export function plannedFigures(predicted: PlanPrediction): PlannedFigures {
  return {
    throughputTokensPerSecond: predicted.throughputTokensPerSecond,
    prefillSeconds: predicted.prefillSeconds,
    decodeSeconds: predicted.decodeSeconds,
    peakBytes: predicted.peakBytes,
    bytes: predicted.bytes,
    busySeconds: predicted.busySeconds,
    ...(predicted.experts ? { experts: { expectedHitRate: predicted.experts.expectedHitRate } } : {}),
  };
}

export interface SimulationResult {
  readonly schedule: ScheduleName;
  readonly throughputTokensPerSecond: number;
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly makespanSeconds: number;
  /** Tasks simulated (transfers, kernels, barriers). */
  readonly events: number;
  readonly peakBytes: Readonly<Record<Tier, number>>;
  readonly capacityBytes: Readonly<Record<Tier, number>>;
  readonly bytes: Readonly<Record<Link, number>>;
  readonly busySeconds: Readonly<Record<Resource, number>>;
  readonly utilisation: Readonly<Record<Resource, number>>;
  readonly criticalResource: Resource;
  /** The first moment a tier ran over its capacity, if any. */
  readonly overflow: Overflow | undefined;
  readonly planned?: PlannedFigures;
  /** (simulated - planned) / planned throughput. */
  readonly relativeError?: number;
  /** Where the simulation and the planner disagree by more than 10%, and the likely cause. */
  readonly disagreements: readonly string[];
  readonly traceEvents?: number;
  /** Text Gantt chart of one layer's window (with `timeline`). */
  readonly timeline?: string;
  /** The task budget the simulation was held to (core/simulation-budget.ts) and its bound for this plan. */
  readonly budget?: SimulationBudgetUse;
}

/** A simulation's work against its budget: `taskBound` (counted from the plan's shape) never exceeds `maxTasks`. */
export interface SimulationBudgetUse {
  readonly taskBound: number;
  readonly maxTasks: number;
  readonly taskBoundPerToken: number;
  readonly maxTasksPerToken: number;
}

/**
 * The budget use of simulating this shape, or a PlanError naming the count and the budget when it is
 * over (checked before any task exists).
 */
export function simulationBudgetUse(shape: SimulationShape): SimulationBudgetUse {
  const over = simulationOverBudget(shape);
  if (over) throw new PlanError(`the plan is too large to simulate: ${over}`);
  return {
    taskBound: simulationTaskBound(shape),
    maxTasks: MAX_SIMULATION_TASKS,
    taskBoundPerToken: simulationTasksPerToken(shape),
    maxTasksPerToken: MAX_SIMULATION_TASKS_PER_TOKEN,
  };
}

export interface SimulateOptions extends TraceOptions {
  readonly schedule: ScheduleName;
  readonly capacityBytes: Readonly<Record<Tier, number>>;
  readonly planned?: PlannedFigures;
  /** Render a text timeline of this layer of this token (default: middle layer, first decode token). */
  readonly timeline?: boolean | { readonly token: number; readonly layer: number };
  /** The plan simulated, recorded in the trace's otherData (simulate() sets it). */
  readonly planIdentity?: PlanIdentity;
  /** Called as simulated time passes each GPU batch's LM head (phase "simulate", genLen x numGpuBatches in all). */
  readonly onProgress?: OnProgress;
  /** Called with every task as it ends (simulate-pipeline counts a tensor-parallel stage's layer steps with it). */
  readonly onTaskEnd?: (task: Task) => void;
}

/** Simulates a schedule described by any cost source (the plan's, or a hand-made one in tests). */
export function simulateSchedule(
  costs: ScheduleCostSource,
  batchSize: number,
  options: SimulateOptions,
): SimulationResult {
  const budget = simulationBudgetUse(costs);
  const ledger = new MemoryLedger(options.capacityBytes);
  const trace = openTraceSink(options, "simulate()");
  trace?.describe({ source: "simulate", ...(options.planIdentity ? { plan: options.planIdentity } : {}) });
  const busy = Object.fromEntries(RESOURCES.map((r) => [r, 0])) as Record<Resource, number>;
  const bytes = { h2d: 0, d2h: 0, diskRead: 0, diskWrite: 0 };
  let prefillEnd = 0;
  let builder: ScheduleBuilder | undefined;
  const memoryChanged = (tier: Tier, seconds: number) => trace?.memory(seconds, tier, ledger.inUse[tier]);
  const window =
    options.timeline === true
      ? { token: Math.min(1, costs.genLen - 1), layer: Math.floor(costs.numLayers / 2) }
      : options.timeline || undefined;
  const timeline = window ? new TimelineRecorder(window.token, window.layer) : undefined;
  const onProgress = options.onProgress;
  const headsTotal = Math.max(1, costs.genLen * costs.numGpuBatches);
  let headsDone = 0;
  const engine = new Engine({
    onStart(task: Task) {
      for (const effect of task.allocate) {
        ledger.allocate(effect, task.start);
        memoryChanged(effect.tier, task.start);
      }
      if (builder && task.token === builder.tokensGenerated - 1 && builder.tokensGenerated < costs.genLen)
        builder.generateNextToken();
    },
    onEnd(task: Task) {
      for (const effect of task.free) {
        ledger.free(effect);
        memoryChanged(effect.tier, task.end);
      }
      if (task.resource !== "none") {
        busy[task.resource] += task.seconds;
        if (task.resource !== "gpu" && task.resource !== "cpu") bytes[task.resource] += task.bytes;
      }
      if (task.token === 0 && task.kind === "lm-head") prefillEnd = Math.max(prefillEnd, task.end);
      if (onProgress && task.kind === "lm-head") {
        headsDone = Math.min(headsTotal, headsDone + 1);
        onProgress({
          phase: "simulate",
          done: headsDone,
          total: headsTotal,
          detail: `token ${task.token + 1}/${costs.genLen}`,
        });
      }
      trace?.task(task);
      timeline?.record(task);
      options.onTaskEnd?.(task);
    },
  });
  try {
    for (const tier of TIERS) {
      ledger.allocate({ tier, bytes: costs.residentBytes[tier], what: "resident weights" }, 0);
      memoryChanged(tier, 0);
    }
    onProgress?.({ phase: "simulate", done: 0, total: headsTotal });
    builder = new ScheduleBuilder(costs, options.schedule, new TaskFactory(), engine);
    builder.generateNextToken();
    const makespan = engine.run();
    if (engine.waiting() > 0 || builder.tokensGenerated !== costs.genLen)
      throw new Error(`simulator bug: ${engine.waiting()} tasks never ran`);
    if (engine.lateAdditions > 0)
      throw new Error(`simulator bug: ${engine.lateAdditions} tasks were generated after they could have started`);
    trace?.close();
    const utilisation = Object.fromEntries(RESOURCES.map((r) => [r, makespan > 0 ? busy[r] / makespan : 0])) as Record<
      Resource,
      number
    >;
    const criticalResource = RESOURCES.reduce((a, r) => (busy[r] > busy[a] ? r : a), "gpu" as Resource);
    const throughput = (batchSize * costs.numGpuBatches * costs.genLen) / makespan;
    const result: SimulationResult = {
      schedule: options.schedule,
      throughputTokensPerSecond: throughput,
      prefillSeconds: prefillEnd,
      decodeSeconds: makespan - prefillEnd,
      makespanSeconds: makespan,
      events: engine.tasksRun,
      peakBytes: { ...ledger.peak },
      capacityBytes: options.capacityBytes,
      bytes,
      busySeconds: busy,
      utilisation,
      criticalResource,
      overflow: ledger.firstOverflow,
      ...(options.planned
        ? {
            planned: options.planned,
            relativeError:
              (throughput - options.planned.throughputTokensPerSecond) / options.planned.throughputTokensPerSecond,
          }
        : {}),
      disagreements: [],
      ...(trace ? { traceEvents: trace.events } : {}),
      ...(timeline ? { timeline: timeline.render() } : {}),
      budget,
    };
    return { ...result, disagreements: explainDisagreements(result) };
  } catch (error) {
    trace?.abort();
    throw error;
  }
}

export function simulate(plan: Plan, profile: HardwareProfile, options: SimulateOptions): SimulationResult {
  if (plan.policy.experts)
    throw new PlanError(
      "this is a Mixture-of-Experts plan (policy.experts): its expert caches are replayed on a routing trace, which the stream simulator does not do yet",
    );
  const costs = new PlanCosts(plan.modelSpec, profile, plan.workload, plan.policy, options.schedule);
  return simulateSchedule(costs, plan.policy.gpuBatchSize, {
    ...options,
    planned: plannedFigures(plan.predicted),
    planIdentity: planIdentity(plan.model, plan.workload, plan.policy),
  });
}

/** Names the planner's misjudged terms where simulation and plan differ by more than 10%. */
export function explainDisagreements(r: SimulationResult): string[] {
  const out: string[] = [];
  if (r.overflow) {
    const o = r.overflow;
    out.push(
      `${o.tier} memory overflows at ${o.seconds.toFixed(3)} s while allocating ${o.what}: ${formatBytes(o.inUseBytes)} in use, capacity ${formatBytes(o.capacityBytes)}`,
    );
  }
  const p = r.planned;
  if (!p) return out;
  const rel = (a: number, b: number) => (b === 0 ? (a === 0 ? 0 : Infinity) : (a - b) / b);
  for (const tier of TIERS) {
    const e = rel(r.peakBytes[tier], p.peakBytes[tier]);
    if (r.peakBytes[tier] > p.peakBytes[tier] * 1.001 && r.peakBytes[tier] > 2 ** 20) {
      out.push(
        `placement accounting: simulated ${tier} peak ${formatBytes(r.peakBytes[tier])} is above the planned ${formatBytes(p.peakBytes[tier])} (${(e * 100).toFixed(1)}%)`,
      );
    }
  }
  for (const link of LINKS) {
    const e = rel(r.bytes[link], p.bytes[link]);
    if (Math.abs(e) > 0.01 && Math.max(r.bytes[link], p.bytes[link]) > 2 ** 20)
      out.push(
        `traffic: ${link} moves ${formatBytes(r.bytes[link])} simulated vs ${formatBytes(p.bytes[link])} planned (${(e * 100).toFixed(1)}%)`,
      );
  }
  const phases: [string, number, number][] = [
    ["prefill", r.prefillSeconds, p.prefillSeconds],
    ["decode", r.decodeSeconds, p.decodeSeconds],
  ];
  const totalSeconds = r.prefillSeconds + r.decodeSeconds;
  for (const [phase, simulated, planned] of phases) {
    const e = rel(simulated, planned);
    if (Math.abs(e) <= 0.1) continue;
    // A phase the plan has none of (--gen-len 1: no decode step) may simulate a sliver of the run: no disagreement.
    if (planned === 0 && simulated <= 1e-3 * totalSeconds) continue;
    const critical = r.criticalResource;
    const planBusy = p.busySeconds?.[critical];
    let cause: string;
    if (e > 0 && scheduleStrategy(r.schedule).barrierAfterEachStep)
      cause = `sync stalls: FlexGen's per-step synchronisation leaves ${RESOURCE_NAMES[critical]} idle ${((1 - r.utilisation[critical]) * 100).toFixed(0)}% of the time`;
    else if (e > 0 && planBusy !== undefined && r.busySeconds[critical] > planBusy * 1.1)
      cause = `link contention: ${RESOURCE_NAMES[critical]} is busy ${r.busySeconds[critical].toFixed(1)} s simulated vs ${planBusy.toFixed(1)} s planned (per-transfer latency and size-dependent rates)`;
    else if (e > 0)
      cause = `pipeline fill/drain and dependency stalls: the LP assumes perfect overlap, the busiest resource (${RESOURCE_NAMES[critical]}) is idle ${((1 - r.utilisation[critical]) * 100).toFixed(0)}% of the time`;
    else
      cause = `the LP over-counts: it costs every step at its slowest resource plus fill bounds, while streams overlap more in the simulation`;
    out.push(
      `${phase}: ${simulated.toFixed(2)} s simulated vs ${planned.toFixed(2)} s planned (${e > 0 ? "+" : ""}${(e * 100).toFixed(1)}%): ${cause}`,
    );
  }
  return out;
}
