/** Spillway's library API. */
export { InputError } from "./core/input-error.js";
export type { HardwareProfile, Quantity, SourcedValue } from "./core/hardware-profile.js";
export { parseHardwareProfile, withCapacities, effective } from "./core/hardware-profile.js";
export type { ModelSpec, MoeSpec } from "./core/model-spec.js";
export { parseModelSpec, totalParams, totalWeightBytes } from "./core/model-spec.js";
export type { Placement, Policy } from "./core/policy.js";
export type { Workload } from "./core/workload.js";
export { resolveHardware, shippedProfileNames } from "./core/resolve-hardware.js";
export { resolveModel } from "./models/resolve-model.js";
export { MODEL_CATALOGUE, findCatalogueModel } from "./models/catalogue.js";
export { modelSpecFromHfConfig } from "./models/hf-config.js";
export { plan, planSync, PlanError, type Plan, type PlanRequest, type FixedPolicy, type CostModelName } from "./planner/plan.js";
export { baselines, deepspeedZeroBaseline, flexgenBaseline, BASELINE_NAMES, type Baseline, type BaselineName } from "./planner/baselines.js";
export { evaluatePolicy, type Prediction } from "./planner/spillway/evaluate-policy.js";
export { loadLpSolvers } from "./planner/lp/solve-linear-program.js";
export { simulate, simulateSchedule, type SimulationResult, type SimulateOptions } from "./simulator/simulate.js";
export { readPlanFile, parsePlanFile } from "./simulator/read-plan.js";
