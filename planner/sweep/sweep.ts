/**
 * `sweep()`: one model and workload planned on each of a list of hardware profiles (single GPUs and
 * clusters), one row per profile in the order given (sweep-row.ts). With `threads` above 1 the plans
 * are made on a pool of worker threads (node:worker_threads, at most one per profile); the rows do
 * not depend on the thread count: each plan is the same pure function of its request. A profile that
 * cannot plan gives a row with the reason.
 */
import { Worker } from "node:worker_threads";
import type { CostModelName } from "../../core/plan.js";
import type { OnProgress } from "../../core/progress.js";
import type { ScheduleName } from "../../core/schedule-name.js";
import type { Workload } from "../../core/workload.js";
import { loadLpSolvers } from "../lp/solve-linear-program.js";
import type { GpuHourPrices } from "./gpu-hour-prices.js";
import { type PlanOutcome, planOnTarget, type SweepHardware, type SweepPlanRequest } from "./plan-on-target.js";
import { type SweepRow, sweepRow } from "./sweep-row.js";
import type { SweepTask, SweepTaskResult } from "./sweep-worker.js";

export interface SweepRequest extends SweepPlanRequest {
  /** The profiles to plan on, in the order the rows come back. */
  readonly hardware: readonly SweepHardware[];
  readonly prices?: GpuHourPrices;
  /** Worker threads (default 1: plan in this thread); never more than the profiles. */
  readonly threads?: number;
  /** Phase "sweep": profiles planned so far, the last one finished in `detail`. */
  readonly onProgress?: OnProgress;
}

/** What `spillway sweep --json` prints and `--out FILE.json` writes. */
export interface SweepResult {
  readonly kind: "sweep";
  readonly model: string;
  readonly workload: Workload;
  readonly costModel: CostModelName;
  readonly schedule: ScheduleName;
  readonly rows: readonly SweepRow[];
}

export async function sweep(request: SweepRequest): Promise<SweepResult> {
  const { hardware, prices, threads = 1, onProgress, ...planRequest } = request;
  const total = hardware.length;
  let done = 0;
  onProgress?.({ phase: "sweep", done, total: Math.max(1, total), detail: "starting" });
  const finished = (index: number, outcome: PlanOutcome) => {
    done++;
    const name = hardware[index]!.name;
    onProgress?.({
      phase: "sweep",
      done,
      total: Math.max(1, total),
      detail: `${name}: ${"plan" in outcome ? `${outcome.plan.predicted.throughputTokensPerSecond.toPrecision(4)} token/s` : "no plan"}`,
    });
  };
  const workers = Math.max(1, Math.min(Math.floor(threads), total));
  const outcomes =
    workers <= 1
      ? await planInThisThread(planRequest, hardware, finished)
      : await planInWorkers(planRequest, hardware, workers, finished);
  return {
    kind: "sweep",
    model: request.model.name,
    workload: { promptLen: request.workload.promptLen, genLen: request.workload.genLen },
    costModel: request.costModel ?? "spillway",
    schedule: request.costModel === "flexgen" ? "flexgen" : (request.schedule ?? "spillway"),
    rows: hardware.map((h, i) => sweepRow(h, outcomes[i]!, prices)),
  };
}

async function planInThisThread(
  request: SweepPlanRequest,
  hardware: readonly SweepHardware[],
  finished: (index: number, outcome: PlanOutcome) => void,
): Promise<PlanOutcome[]> {
  const solvers = await loadLpSolvers();
  return hardware.map((h, i) => {
    const outcome = planOnTarget(request, h, solvers);
    finished(i, outcome);
    return outcome;
  });
}

/** Each worker takes the next profile as it finishes one; outcomes are kept by index, so in input order. */
function planInWorkers(
  request: SweepPlanRequest,
  hardware: readonly SweepHardware[],
  workers: number,
  finished: (index: number, outcome: PlanOutcome) => void,
): Promise<PlanOutcome[]> {
  const outcomes = new Array<PlanOutcome | undefined>(hardware.length);
  const pool: Worker[] = [];
  let next = 0;
  let remaining = hardware.length;
  return new Promise<PlanOutcome[]>((resolve, reject) => {
    let failed = false;
    const stop = () => {
      for (const w of pool) void w.terminate();
    };
    const fail = (error: Error) => {
      if (failed) return;
      failed = true;
      stop();
      reject(error);
    };
    const give = (worker: Worker) => {
      if (next >= hardware.length) return;
      const task: SweepTask = { index: next, request, hardware: hardware[next]! };
      next++;
      worker.postMessage(task);
    };
    for (let w = 0; w < workers; w++) {
      const worker = new Worker(new URL("./sweep-worker.js", import.meta.url));
      pool.push(worker);
      worker.on("message", (result: SweepTaskResult) => {
        if (failed) return;
        if ("error" in result) {
          fail(new Error(`planning on ${hardware[result.index]!.name} failed: ${result.error}`));
          return;
        }
        outcomes[result.index] = result.outcome;
        finished(result.index, result.outcome);
        remaining--;
        if (remaining === 0) {
          stop();
          resolve(outcomes as PlanOutcome[]);
        } else give(worker);
      });
      worker.on("error", fail);
      worker.on("exit", (code) => {
        if (!failed && remaining > 0) fail(new Error(`a sweep worker exited (code ${code}) before the sweep finished`));
      });
      give(worker);
    }
  });
}
