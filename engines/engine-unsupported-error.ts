/** Thrown when an engine cannot run the model or the policy at all (the CLI reports it as bad input, exit 2). */
export class EngineUnsupportedError extends Error {
  override readonly name = "EngineUnsupportedError";
  /** Why, without the engine and model names the message starts with. */
  readonly reason: string;

  constructor(engine: string, model: string, reason: string) {
    super(`${engine} cannot run ${model}: ${reason}`);
    this.reason = reason;
  }
}
