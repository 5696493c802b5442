/** Thrown when an engine cannot run the model or the policy at all (the CLI reports it as bad input, exit 2). */
export class EngineUnsupportedError extends Error {
  override readonly name = "EngineUnsupportedError";
}
