/**
 * Spillway's library API: the flow (plan -> simulate -> run -> compare, report, export), its option
 * and result types, the parsers and resolvers of its inputs, and its errors. Building blocks below the
 * flow (cost-model evaluations, the schedule simulator, routing statistics, profilers, the emulated
 * CUDA device, chart rendering) are in the `spillway/internals` entry point.
 */

export type { ExpertBits, ExpertCompute, ExpertEviction, ExpertPolicy } from "./core/expert-policy.js";
export type { HardwareProfile, Quantity, SourcedValue } from "./core/hardware-profile.js";
export { parseHardwareProfile, withCapacities } from "./core/hardware-profile.js";
export { InputError } from "./core/input-error.js";
export { LINKS, type Link } from "./core/links.js";
export type { ModelSpec, MoeSpec } from "./core/model-spec.js";
export { parseModelSpec } from "./core/parse-model-spec.js";
export { parsePlan, parsePlan as parsePlanFile, readPlanFile } from "./core/parse-plan.js";
export type { PlanPrediction, PlanSearch } from "./core/plan.js";
export type { ComputeDevice, LayerGroup, Placement, Policy } from "./core/policy.js";
export type { OnProgress, Progress } from "./core/progress.js";
export { resolveHardware, shippedProfileNames } from "./core/resolve-hardware.js";
export { RESOURCE_NAMES, RESOURCES, type Resource } from "./core/resources.js";
export { SCHEDULE_NAMES, type ScheduleName } from "./core/schedule-name.js";
export { TIERS, type Tier } from "./core/tiers.js";
export type { Workload } from "./core/workload.js";
export {
  EXPORT_TARGETS,
  type ExportOptions,
  type ExportResult,
  type ExportTarget,
  exportPlan,
} from "./exporters/export-plan.js";
export { findCatalogueModel, MODEL_CATALOGUE } from "./models/catalogue.js";
export { modelSpecFromHfConfig } from "./models/hf-config.js";
export { resolveModel } from "./models/resolve-model.js";
export {
  BASELINE_NAMES,
  type Baseline,
  type BaselineBatch,
  type BaselineName,
  baselines,
} from "./planner/baselines.js";
export { type CostModelName, type FixedPolicy, type Plan, PlanError, type PlanRequest, plan } from "./planner/plan.js";
export type { Prediction } from "./planner/prediction.js";
export { type SweepRequest, type SweepResult, sweep } from "./planner/sweep/sweep.js";
export type { SweepRow } from "./planner/sweep/sweep-row.js";
export { type BuildReportOptions, buildReport, type ReportChart, type ReportSummary } from "./reports/build-report.js";
export { readRoutingTrace } from "./routing/read-routing-trace.js";
export type { RoutingTrace } from "./routing/routing-trace.js";
export { type CompareOptions, type CompareResult, type Comparison, compare, type Figures } from "./runtime/compare.js";
export { type CudaDeviceInfo, type CudaStatus, cudaStatus } from "./runtime/cuda/load-native.js";
export { type MoeRunOptions, type MoeRunResult, runMoe } from "./runtime/moe/moe-runner.js";
export { synthesizeMixtralWeights, tinyMixtralSpec } from "./runtime/moe/synth-mixtral-weights.js";
export { type RunOptions, type RunResult, run } from "./runtime/run.js";
export { type SynthOptions, type SynthResult, synthesizeOptWeights } from "./runtime/synth-weights.js";
export type { ChromeTraceDocument, ChromeTraceEvent } from "./simulator/chrome-trace-writer.js";
export { FileTraceSink } from "./simulator/file-trace-sink.js";
export { MemoryTraceSink } from "./simulator/memory-trace-sink.js";
export type { TraceOptions } from "./simulator/open-trace-sink.js";
export { type SimulateOptions, type SimulationResult, simulate } from "./simulator/simulate.js";

export { type MoeSimulationResult, simulateMoe } from "./simulator/simulate-moe.js";
export type { TraceSink, TraceWhere } from "./simulator/trace-sink.js";
export { NoTraceSink } from "./simulator/trace-sink.js";
