/** The planner's failure (no policy fits, an unsupported model for a cost model): the CLI exits 1. */
export class PlanError extends Error {
  override readonly name = "PlanError";
}
