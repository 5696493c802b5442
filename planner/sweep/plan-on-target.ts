/**
 * One plan of a sweep: a model and workload planned on one hardware target, a single GPU (the
 * single-GPU planner) or a cluster (the pipeline planner, which gives the single-GPU plan on a
 * one-GPU cluster). Synchronous and pure given the LP solvers, so a worker thread and the main thread
 * compute the same plan.
 */
import type { ClusterProfile } from "../../core/cluster-profile.js";
import type { HardwareProfile } from "../../core/hardware-profile.js";
import type { Plan } from "../../core/plan.js";
import type { LpSolvers } from "../lp/solve-linear-program.js";
import { planPipelineSync } from "../pipeline/plan-pipeline.js";
import { type PlanRequest, planSync } from "../plan.js";
import { PlanError } from "../plan-error.js";

/** A profile a sweep plans on: one GPU's profile or a cluster's. */
export type SweepHardware = HardwareProfile | ClusterProfile;

/** A plan request without its hardware and without callbacks: what crosses to a worker thread. */
export type SweepPlanRequest = Omit<PlanRequest, "hardware" | "onCandidate" | "onProgress">;

/** What planning on one target gave: the plan, or why none could be made (a PlanError's message). */
export type PlanOutcome = { readonly plan: Plan } | { readonly planError: string };

export function isCluster(hardware: SweepHardware): hardware is ClusterProfile {
  return (hardware as Partial<ClusterProfile>).kind === "cluster";
}

/** Plans on `hardware`; a PlanError (nothing fits, a fixed setting a pipeline cannot take) becomes the outcome's reason. */
export function planOnTarget(request: SweepPlanRequest, hardware: SweepHardware, solvers: LpSolvers): PlanOutcome {
  try {
    const plan = isCluster(hardware)
      ? planPipelineSync({ ...request, cluster: hardware }, solvers)
      : planSync({ ...request, hardware }, solvers);
    return { plan };
  } catch (error) {
    if (error instanceof PlanError) return { planError: error.message };
    throw error;
  }
}
