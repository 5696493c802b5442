/**
 * How much work simulating a plan is, computed from the plan's shape alone before any task exists, and
 * the budget `simulate()` holds every plan to. The stream simulator (simulator/schedule-builder.ts)
 * issues each token's tasks one token ahead and lets finished tokens be collected, so its memory
 * follows the tasks of about two tokens, and its time the tasks of all of them. A plan over either
 * budget is refused up front, naming the count and the budget, instead of running for minutes or
 * exhausting the heap (`npm run bench` plans every catalogue model on every shipped profile and
 * simulates each plan within it).
 */

/**
 * Upper bounds on the tasks the schedule builder issues, counted from its code: per step (one GPU
 * batch through one layer) at most 2 KV loads, 3 hidden-state moves, 7 compute-side tasks (CPU
 * attention's pre, send, attention, return, post and write, plus a move between devices), 4 stores
 * and 2 barriers; per layer and token at most 3 weight loads, a dequantisation and a barrier; per
 * token 2 LM-head loads, and per batch and token an LM head, its token store, a move and a barrier.
 */
export const TASKS_PER_STEP_BOUND = 18;
export const TASKS_PER_LAYER_BOUND = 5;
export const TASKS_PER_TOKEN_BOUND = 2;
export const TASKS_PER_HEAD_BOUND = 4;

/**
 * Bound on the tasks one simulation may run in all: its time. The bound is about twice the tasks a
 * plan really issues (8.8 million issued against a bound of 20 million for OPT-175B at 16 x 360), and
 * the simulator runs some 50,000-200,000 tasks a second, so a plan at the budget simulates in well
 * under a minute.
 */
export const MAX_SIMULATION_TASKS = 5e6;
/**
 * Bound on the tasks of one token: the simulator's memory, which holds about two tokens' tasks (a
 * plan of 87,000 per token simulates within an 80 MiB old space).
 */
export const MAX_SIMULATION_TASKS_PER_TOKEN = 2e5;

export interface SimulationShape {
  readonly numLayers: number;
  readonly numGpuBatches: number;
  readonly genLen: number;
}

/** At most this many tasks for one token. */
export function simulationTasksPerToken(shape: Omit<SimulationShape, "genLen">): number {
  const { numLayers: L, numGpuBatches: nb } = shape;
  return L * (TASKS_PER_STEP_BOUND * nb + TASKS_PER_LAYER_BOUND) + TASKS_PER_TOKEN_BOUND + TASKS_PER_HEAD_BOUND * nb;
}

/** At most this many tasks for the whole simulation. */
export function simulationTaskBound(shape: SimulationShape): number {
  return shape.genLen * simulationTasksPerToken(shape);
}

/** Why the plan's simulation would be over budget, or undefined when it is within it. */
export function simulationOverBudget(shape: SimulationShape): string | undefined {
  const perToken = simulationTasksPerToken(shape);
  const total = simulationTaskBound(shape);
  const what = `${shape.numLayers} layers x ${shape.numGpuBatches} GPU batches x ${shape.genLen} tokens`;
  if (perToken > MAX_SIMULATION_TASKS_PER_TOKEN)
    return `simulating it would hold up to ${perToken.toExponential(2)} tasks per token in memory (${what}); the budget is ${MAX_SIMULATION_TASKS_PER_TOKEN.toExponential(0)}`;
  if (total > MAX_SIMULATION_TASKS)
    return `simulating it would run up to ${total.toExponential(2)} tasks (${what}); the budget is ${MAX_SIMULATION_TASKS.toExponential(0)}`;
  return undefined;
}
