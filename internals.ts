/**
 * `spillway/internals`: the building blocks below the library's flow, for tools and tests that need
 * them (cost-model evaluations, the schedule simulator, baselines one by one, routing statistics, the
 * profilers, the emulated CUDA device, chart rendering). These follow the code, not a stability
 * promise; the package root (`spillway`) is the API.
 */
export { effective } from "./core/hardware-profile.js";
export { totalParams, totalWeightBytes, activeParams } from "./core/model-spec.js";
export { planSync } from "./planner/plan.js";
export { loadLpSolvers, type LpSolvers } from "./planner/lp/solve-linear-program.js";
export { accelerateBaseline, deepspeedZeroBaseline, flexgenBaseline, llamaCppBaseline } from "./planner/baselines.js";
export { evaluatePolicy } from "./planner/spillway/evaluate-policy.js";
export { evaluate, type EvaluationRequest } from "./planner/evaluate.js";
export { evaluateMoePolicy, type MoePrediction, type ExpertFigures } from "./planner/moe/evaluate-moe-policy.js";
export { defaultRoutingProfile } from "./planner/moe/default-routing.js";
export { routingProfileFromTrace } from "./planner/moe/profile-from-trace.js";
export type { RoutingProfile } from "./planner/moe/routing-profile.js";
export { llamaCppMoeAdvice, type LlamaCppMoeAdvice } from "./planner/moe/llama-cpp-moe.js";
export { synthRouting } from "./routing/synth-routing.js";
export { routingStats, type RoutingStats } from "./routing/routing-stats.js";
export { simulateSchedule } from "./simulator/simulate.js";
export { compareRuns } from "./runtime/compare.js";
export { renderChart, type RenderedChart } from "./reports/render-chart.js";
export { measureCpuBackend, profileFromSamples, samplesFromCsv, samplesToCsv, defaultCapacities } from "./runtime/profile-cpu.js";
export { cudaProfileFromSamples, measureCudaBackend } from "./runtime/cuda/profile-cuda.js";
export { createEmulatedNative } from "./runtime/cuda/emulated-native.js";
export type { CudaNative } from "./runtime/cuda/native-api.js";
