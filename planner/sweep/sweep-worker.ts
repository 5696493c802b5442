/**
 * A sweep's worker thread: loads the LP solvers once, then plans each task it is sent
 * (planOnTarget) and posts the outcome back with the task's index. An error other than a PlanError
 * is posted as `error`, and the sweep fails with it.
 */
import { parentPort } from "node:worker_threads";
import { loadLpSolvers } from "../lp/solve-linear-program.js";
import { type PlanOutcome, planOnTarget, type SweepHardware, type SweepPlanRequest } from "./plan-on-target.js";

export interface SweepTask {
  readonly index: number;
  readonly request: SweepPlanRequest;
  readonly hardware: SweepHardware;
}

export type SweepTaskResult =
  | { readonly index: number; readonly outcome: PlanOutcome }
  | { readonly index: number; readonly error: string };

const solvers = loadLpSolvers();

parentPort!.on("message", async (task: SweepTask) => {
  let result: SweepTaskResult;
  try {
    result = { index: task.index, outcome: planOnTarget(task.request, task.hardware, await solvers) };
  } catch (error) {
    result = { index: task.index, error: (error as Error).stack ?? String(error) };
  }
  parentPort!.postMessage(result);
});
