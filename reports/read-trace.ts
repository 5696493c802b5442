/**
 * Reads a Chrome Trace Event file written by `spillway simulate --trace` or `spillway run --trace`
 * into typed task slices (one per `X` event, on the lane of its resource) and memory-in-use samples
 * (the `C` counter events "<tier> bytes"). Every problem is an InputError naming the file.
 */
import { describeValue, InputError } from "../core/input-error.js";
import { type PlanIdentity, parsePlanIdentity } from "../core/plan-identity.js";
import { INPUT_LIMIT_BYTES } from "../core/read-input-file.js";
import { readJsonFile } from "../core/read-json-file.js";
import { isResource, type Resource } from "../core/resources.js";
import { TIERS, type Tier } from "../core/tiers.js";
import { TRACE_LANES } from "../simulator/chrome-trace-writer.js";

export interface TraceSlice {
  readonly resource: Resource;
  /** The task kind ("load-weights", "compute", ...). */
  readonly name: string;
  readonly startSeconds: number;
  readonly durationSeconds: number;
  /** Which decode step (0 is the prefill), layer and GPU batch the task belongs to, when the writer said. */
  readonly token: number | undefined;
  readonly layer: number | undefined;
  readonly batch: number | undefined;
  readonly bytes: number | undefined;
}

export interface MemorySample {
  readonly tier: Tier;
  readonly seconds: number;
  readonly bytes: number;
}

export interface Trace {
  readonly path: string;
  /** Who wrote it: the simulator (it records memory in use) or the runtime (it does not). */
  readonly source: "simulate" | "run";
  /** Task slices in file order. */
  readonly slices: readonly TraceSlice[];
  /** Memory in use per tier, in file order (time order per tier). */
  readonly memory: readonly MemorySample[];
  readonly endSeconds: number;
  /** The plan the simulation or run executed (otherData.plan), when the writer recorded it. */
  readonly plan?: PlanIdentity;
}

/** Whether parsed JSON looks like a Chrome trace (used to classify `spillway report` inputs). */
export function looksLikeTrace(data: unknown): boolean {
  return (
    typeof data === "object" &&
    data !== null &&
    !Array.isArray(data) &&
    Array.isArray((data as { traceEvents?: unknown }).traceEvents)
  );
}

export function readTrace(path: string): Trace {
  return parseTrace(readJsonFile(path, { maxBytes: INPUT_LIMIT_BYTES.trace, what: "a trace" }), path);
}

function resourceOf(event: Record<string, unknown>): Resource | undefined {
  if (isResource(event.cat)) return event.cat;
  for (const [resource, lane] of Object.entries(TRACE_LANES))
    if (lane.pid === event.pid && lane.tid === event.tid) return resource as Resource;
  return undefined;
}

export function parseTrace(data: unknown, path: string): Trace {
  if (typeof data !== "object" || data === null || Array.isArray(data))
    throw new InputError(
      path,
      undefined,
      `expected a Chrome trace (an object with a traceEvents array), got ${describeValue(data)}`,
    );
  const events = (data as { traceEvents?: unknown }).traceEvents;
  if (!Array.isArray(events))
    throw new InputError(
      path,
      "traceEvents",
      `expected an array of trace events (a trace from spillway simulate --trace or run --trace), got ${describeValue(events)}`,
    );
  const slices: TraceSlice[] = [];
  const memory: MemorySample[] = [];
  let endSeconds = 0;
  const number = (e: Record<string, unknown>, key: string, i: number, min = -Infinity): number => {
    const v = e[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v < min)
      throw new InputError(
        path,
        `traceEvents[${i}].${key}`,
        `expected a finite number${min > -Infinity ? ` >= ${min}` : ""}, got ${describeValue(v)}`,
      );
    return v;
  };
  const optional = (args: Record<string, unknown>, key: string) =>
    typeof args[key] === "number" ? (args[key] as number) : undefined;
  for (let i = 0; i < events.length; i++) {
    const e = events[i] as unknown;
    if (typeof e !== "object" || e === null || Array.isArray(e))
      throw new InputError(path, `traceEvents[${i}]`, `expected an event object, got ${describeValue(e)}`);
    const event = e as Record<string, unknown>;
    const args = typeof event.args === "object" && event.args !== null ? (event.args as Record<string, unknown>) : {};
    if (event.ph === "X") {
      const resource = resourceOf(event);
      if (!resource)
        throw new InputError(
          path,
          `traceEvents[${i}].cat`,
          `expected a resource (gpu, cpu, h2d, d2h, diskRead, diskWrite), got ${describeValue(event.cat)}`,
        );
      const startSeconds = number(event, "ts", i) / 1e6;
      const durationSeconds = number(event, "dur", i, 0) / 1e6;
      endSeconds = Math.max(endSeconds, startSeconds + durationSeconds);
      slices.push({
        resource,
        name: typeof event.name === "string" ? event.name : "task",
        startSeconds,
        durationSeconds,
        token: optional(args, "token"),
        layer: optional(args, "layer"),
        batch: optional(args, "batch"),
        bytes: optional(args, "bytes"),
      });
    } else if (event.ph === "C" && typeof event.name === "string" && / bytes$/.test(event.name)) {
      const tier = event.name.slice(0, -" bytes".length) as Tier;
      if (!TIERS.includes(tier))
        throw new InputError(
          path,
          `traceEvents[${i}].name`,
          `expected a memory counter "gpu bytes", "cpu bytes" or "disk bytes", got ${describeValue(event.name)}`,
        );
      const seconds = number(event, "ts", i) / 1e6;
      const bytes = args.bytes;
      if (typeof bytes !== "number" || !Number.isFinite(bytes) || bytes < 0)
        throw new InputError(
          path,
          `traceEvents[${i}].args.bytes`,
          `expected a number of bytes >= 0, got ${describeValue(bytes)}`,
        );
      endSeconds = Math.max(endSeconds, seconds);
      memory.push({ tier, seconds, bytes });
    }
  }
  if (slices.length === 0 && memory.length === 0)
    throw new InputError(
      path,
      "traceEvents",
      'no task events (ph "X") or memory counters (ph "C"): not a trace written by spillway simulate --trace or run --trace',
    );
  const otherData = (data as { otherData?: unknown }).otherData;
  const other =
    typeof otherData === "object" && otherData !== null && !Array.isArray(otherData)
      ? (otherData as Record<string, unknown>)
      : {};
  const declared = other.source;
  const source = declared === "simulate" || declared === "run" ? declared : memory.length > 0 ? "simulate" : "run";
  const plan =
    other.plan === undefined ? undefined : parsePlanIdentity(other.plan, { source: path, path: "otherData.plan" });
  return { path, source, slices, memory, endSeconds, ...(plan ? { plan } : {}) };
}
