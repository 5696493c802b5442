/**
 * The trace sink a simulation or run writes to: the one passed in (`trace`), a file sink for
 * `tracePath`, or none. Giving both is a mistake, reported as such.
 */
import { InputError } from "../core/input-error.js";
import { FileTraceSink } from "./file-trace-sink.js";
import type { TraceSink } from "./trace-sink.js";

export interface TraceOptions {
  /** Write a Chrome trace file here (atomically); the same as `trace: new FileTraceSink(path)`. */
  readonly tracePath?: string | undefined;
  /** Where to report tasks and memory in use; closed (or aborted, on failure) when the call ends. */
  readonly trace?: TraceSink | undefined;
}

/** `caller` names the function in the error ("simulate()"). */
export function openTraceSink(options: TraceOptions, caller: string): TraceSink | undefined {
  if (options.trace && options.tracePath) {
    throw new InputError(
      `${caller} options`,
      "tracePath",
      "given beside trace; give one: a trace sink, or the path of a trace file to write",
    );
  }
  return options.trace ?? (options.tracePath ? new FileTraceSink(options.tracePath).open() : undefined);
}
