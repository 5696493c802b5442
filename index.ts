/**
 * Spillway's library API: the flow (plan -> simulate -> run -> compare, report, export), its option
 * and result types, the parsers and resolvers of its inputs, and its errors. Building blocks below the
 * flow (cost-model evaluations, the schedule simulator, routing statistics, profilers, the emulated
 * CUDA device, chart rendering) are in the `spillway/internals` entry point.
 */

// Errors: bad input (names the file or flag and field), and a plan that cannot fit or run.
export { InputError } from "./core/input-error.js";
export { PlanError } from "./planner/plan.js";

// Inputs: models, hardware, plan files, routing traces.
export type { HardwareProfile, Quantity, SourcedValue } from "./core/hardware-profile.js";
export { parseHardwareProfile, withCapacities } from "./core/hardware-profile.js";
export type { ModelSpec, MoeSpec } from "./core/model-spec.js";
export { parseModelSpec } from "./core/parse-model-spec.js";
export type { ComputeDevice, LayerGroup, Placement, Policy } from "./core/policy.js";
export type { Workload } from "./core/workload.js";
export type { ExpertPolicy, ExpertBits, ExpertCompute, ExpertEviction } from "./core/expert-policy.js";
export { resolveHardware, shippedProfileNames } from "./core/resolve-hardware.js";
export { resolveModel } from "./models/resolve-model.js";
export { MODEL_CATALOGUE, findCatalogueModel } from "./models/catalogue.js";
export { modelSpecFromHfConfig } from "./models/hf-config.js";
export { readPlanFile, parsePlanFile } from "./simulator/read-plan.js";
export { parsePlan } from "./core/parse-plan.js";
export type { PlanPrediction, PlanSearch } from "./core/plan.js";

// One vocabulary: memory tiers, links, resources, schedule names (with display names).
export { TIERS, type Tier } from "./core/tiers.js";
export { LINKS, type Link } from "./core/links.js";
export { RESOURCES, RESOURCE_NAMES, type Resource } from "./core/resources.js";
export { SCHEDULE_NAMES, type ScheduleName } from "./core/schedule-name.js";
export { readRoutingTrace } from "./routing/read-routing-trace.js";
export type { RoutingTrace } from "./routing/routing-trace.js";

// The flow.
export { plan, type Plan, type PlanRequest, type FixedPolicy, type CostModelName } from "./planner/plan.js";
export type { Prediction } from "./planner/prediction.js";
export { baselines, BASELINE_NAMES, type Baseline, type BaselineName } from "./planner/baselines.js";
export { simulate, type SimulationResult, type SimulateOptions } from "./simulator/simulate.js";
export { run, type RunOptions, type RunResult } from "./runtime/run.js";
export { compare, type CompareOptions, type CompareResult, type Comparison, type Figures } from "./runtime/compare.js";
export { buildReport, type BuildReportOptions, type ReportChart, type ReportSummary } from "./reports/build-report.js";
export { exportPlan, EXPORT_TARGETS, type ExportOptions, type ExportTarget, type ExportResult } from "./exporters/export-plan.js";
export { synthesizeOptWeights, type SynthOptions, type SynthResult } from "./runtime/synth-weights.js";
export { cudaStatus, type CudaStatus, type CudaDeviceInfo } from "./runtime/cuda/load-native.js";

// Where simulate() and run() report tasks and memory in use.
export type { TraceSink, TraceWhere } from "./simulator/trace-sink.js";
export { NoTraceSink } from "./simulator/trace-sink.js";
export { FileTraceSink } from "./simulator/file-trace-sink.js";
export { MemoryTraceSink } from "./simulator/memory-trace-sink.js";
export type { TraceOptions } from "./simulator/open-trace-sink.js";
export type { ChromeTraceDocument, ChromeTraceEvent } from "./simulator/chrome-trace-writer.js";

// Mixture-of-Experts: expert caches replayed on a routing trace; a small synthetic Mixtral run for real.
export { simulateMoe, type MoeSimulationResult } from "./simulator/simulate-moe.js";
export { runMoe, type MoeRunOptions, type MoeRunResult } from "./runtime/moe/moe-runner.js";
export { synthesizeMixtralWeights, tinyMixtralSpec } from "./runtime/moe/synth-mixtral-weights.js";
