/**
 * The bounds every policy search works within, whatever its inputs: a cap on the LPs one search solves
 * (far above what any search of the catalogue needs: OPT-175B on the T4 takes about 3,000) and on the
 * GPU batches per block it considers (the policy range), and for Spillway's own search on the exact
 * evaluations it makes (each walks every generated token). Plans report them in their `search` object.
 */
import { MAX_GPU_BATCHES } from "../core/physical-bounds.js";

/** LPs one search may solve; past it the search keeps the best policy found so far. */
export const MAX_LP_SOLVES_PER_SEARCH = 50_000;

/**
 * The most GPU batches per block a search considers: the policy range. (Capping it further at the
 * blocks the simulator can replay, largestSimulatableGpuBatches(), would change the LPs every default
 * search solves, so it is not done: a plan beyond the simulator's budget is refused by `simulate` up
 * front, naming its task count and the budget.)
 */
export const SEARCH_GPU_BATCH_LIMIT = MAX_GPU_BATCHES;

/**
 * Decode tokens the exact evaluations of one search may cost together: an exact evaluation walks every
 * generated token (some 30-70 µs each on a busy machine), so the search evaluates at most
 * EXACT_EVALUATION_TOKEN_BUDGET / genLen policies (15,625 at 32 tokens, far above the ~250 a search
 * needs; 3 at 131,072), and then keeps the best found so far.
 */
export const EXACT_EVALUATION_TOKEN_BUDGET = 500_000;

/** The most exact evaluations a search may make for a workload generating `genLen` tokens. */
export function exactEvaluationLimit(genLen: number): number {
  return Math.max(1, Math.floor(EXACT_EVALUATION_TOKEN_BUDGET / genLen));
}

/** Thrown by a search's evaluator when its evaluation budget is spent; the search catches it and stops. */
export class EvaluationBudgetSpent extends Error {
  override readonly name = "EvaluationBudgetSpent";
}
