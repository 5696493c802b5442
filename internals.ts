/**
 * `spillway/internals`: the building blocks below the library's flow, for tools and tests that need
 * them (cost-model evaluations, the schedule simulator, baselines one by one, routing statistics, the
 * profilers, the emulated CUDA device, chart rendering). These follow the code, not a stability
 * promise; the package root (`spillway`) is the API.
 */
export { effective } from "./core/hardware-profile.js";
export { activeParams, totalParams, totalWeightBytes } from "./core/model-spec.js";
export { accelerateBaseline, deepspeedZeroBaseline, flexgenBaseline, llamaCppBaseline } from "./planner/baselines.js";
export { type EvaluationRequest, evaluate } from "./planner/evaluate.js";
export { type LpSolvers, loadLpSolvers } from "./planner/lp/solve-linear-program.js";
export { defaultRoutingProfile } from "./planner/moe/default-routing.js";
export { type ExpertFigures, evaluateMoePolicy, type MoePrediction } from "./planner/moe/evaluate-moe-policy.js";
export { type LlamaCppMoeAdvice, llamaCppMoeAdvice } from "./planner/moe/llama-cpp-moe.js";
export { routingProfileFromTrace } from "./planner/moe/profile-from-trace.js";
export type { RoutingProfile } from "./planner/moe/routing-profile.js";
export { planSync } from "./planner/plan.js";
export { evaluatePolicy } from "./planner/spillway/evaluate-policy.js";
export { type RenderedChart, renderChart } from "./reports/render-chart.js";
export { type RoutingStats, routingStats } from "./routing/routing-stats.js";
export { synthRouting } from "./routing/synth-routing.js";
export { compareRuns } from "./runtime/compare.js";
export { createEmulatedNative } from "./runtime/cuda/emulated-native.js";
export type { CudaNative } from "./runtime/cuda/native-api.js";
export { cudaProfileFromSamples, measureCudaBackend } from "./runtime/cuda/profile-cuda.js";
export {
  defaultCapacities,
  measureCpuBackend,
  profileFromSamples,
  samplesFromCsv,
  samplesToCsv,
} from "./runtime/profile-cpu.js";
export { simulateSchedule } from "./simulator/simulate.js";
