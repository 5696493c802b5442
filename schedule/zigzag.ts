/**
 * The zig-zag block schedule (token → layer → GPU batch): the one place that walks it. A block of
 * numGpuBatches GPU batches goes through the model layer by layer, each layer's weights loaded once
 * for all batches; the LM head follows the last layer; then the next token.
 *
 * Two consumers walk it in two issue orders, over the same steps and the same strategy:
 * - a task graph (the simulator) issues in the strategy's order (ScheduleStrategy.taskGraphWalk),
 *   since with its dependencies (and, without overlap, with every task after the one issued before it)
 *   the order is part of the semantics;
 * - an executor (the CPU and CUDA backends) runs steps as they come, so it is handed every load one step
 *   ahead: at a layer's start the next layer's weights, before a step computes the next step's KV and
 *   hidden state, after the last layer the next token's first weights and KV. Barriers are the
 *   strategy's.
 *
 * A hidden-state load is issued with its step's KV when the store it reads from has been issued
 * (always for layer 0: the token's input is there when the token starts), otherwise right before the
 * step computes (one GPU batch: a layer's input is the previous step's output).
 *
 * Indices: g = token * numLayers + layer is the global layer, q = g * numGpuBatches + batch the global step.
 */
import { REUSE_WAITS, type ScheduleStep, type StepAt, type StepKind, type Wait } from "./steps.js";
import type { ScheduleStrategy } from "./strategy.js";

export interface ZigzagShape {
  readonly numLayers: number;
  readonly numGpuBatches: number;
  /** Tokens generated per sequence; token 0 is the prefill. */
  readonly genLen: number;
}

export type ZigzagConsumer = "task-graph" | "executor";

/** The global step index of (token, layer, batch). */
export function globalStep(shape: ZigzagShape, at: StepAt): number {
  return (at.token * shape.numLayers + at.layer) * shape.numGpuBatches + at.batch;
}

/** Every step of the schedule, token by token (each token ends with a "token-end" step). */
export function* zigzag(
  shape: ZigzagShape,
  strategy: ScheduleStrategy,
  consumer: ZigzagConsumer,
): Generator<ScheduleStep> {
  const walk = new ZigzagWalk(shape, strategy);
  const order =
    consumer === "executor"
      ? walk.executorToken
      : strategy.taskGraphWalk === "loop"
        ? walk.loopToken
        : walk.dataflowToken;
  for (let token = 0; token < shape.genLen; token++) {
    yield* order.call(walk, token);
    yield walk.step("token-end", token, -1, -1);
  }
}

/** Which waits each step kind has: its data, and the strategy's reuse waits. */
const WAITS: Partial<Record<StepKind, readonly Wait[]>> = {
  "issue-weights": ["weight-buffer-free", "weight-staging-free"],
  "ready-weights": ["dequant-buffer-free"],
  "issue-kv": ["kv-stored", "step-buffer-free", "kv-staging-free"],
  "issue-hidden": ["input-stored", "step-buffer-free"],
};

class ZigzagWalk {
  private readonly L: number;
  private readonly nb: number;
  /** The last global step whose store has been yielded. */
  private lastStored = -1;
  /** Global steps whose hidden-state load has been yielded. */
  private readonly hiddenIssued = new Set<number>();
  /** The loop walk's pre-step (first weights and loads) has been yielded. */
  private primed = false;

  constructor(
    private readonly shape: ZigzagShape,
    private readonly strategy: ScheduleStrategy,
  ) {
    this.L = shape.numLayers;
    this.nb = shape.numGpuBatches;
  }

  step(kind: StepKind, token: number, layer: number, batch: number, outputToNextLayer?: boolean): ScheduleStep {
    const reuse = this.strategy.reuseWaits as readonly Wait[];
    const kindWaits =
      kind === "issue-weights" && layer === this.L ? ["head-buffer-free" as const] : (WAITS[kind] ?? []);
    const after: Wait[] = kindWaits.filter((w) => !isReuse(w) || reuse.includes(w));
    if (this.strategy.barrierAfterEachStep && kind !== "token-end") after.push("barrier");
    const at = { token, layer, batch };
    if (kind === "store") this.lastStored = globalStep(this.shape, at);
    if (kind === "issue-hidden") this.hiddenIssued.add(globalStep(this.shape, at));
    return { kind, at, after, ...(outputToNextLayer !== undefined ? { outputToNextLayer } : {}) };
  }

  /** The step's KV load, and its hidden-state load if the store it reads has been issued. */
  private *loads(token: number, layer: number, batch: number): Generator<ScheduleStep> {
    yield this.step("issue-kv", token, layer, batch);
    const q = globalStep(this.shape, { token, layer, batch });
    if (layer === 0 || this.lastStored >= q - this.nb) yield this.step("issue-hidden", token, layer, batch);
  }

  /** The hidden-state load of a step that could not be issued with its KV (issued right before it computes). */
  private *deferredHidden(token: number, layer: number, batch: number): Generator<ScheduleStep> {
    const q = globalStep(this.shape, { token, layer, batch });
    if (!this.hiddenIssued.has(q)) yield this.step("issue-hidden", token, layer, batch);
    this.hiddenIssued.delete(q);
  }

  private *barrier(token: number, layer: number, batch: number): Generator<ScheduleStep> {
    if (this.strategy.barrierAfterEachStep) yield this.step("barrier", token, layer, batch);
  }

  /** Each load right before the step that needs it, each store right after it. */
  *dataflowToken(token: number): Generator<ScheduleStep> {
    const firstStep = this.strategy.dequantize === "first-step";
    yield this.step("issue-weights", token, this.L, -1);
    for (let layer = 0; layer < this.L; layer++) {
      yield this.step("issue-weights", token, layer, -1);
      if (!firstStep) yield this.step("ready-weights", token, layer, -1);
      for (let k = 0; k < this.nb; k++) {
        yield* this.loads(token, layer, k);
        if (firstStep && k === 0) yield this.step("ready-weights", token, layer, -1);
        yield* this.deferredHidden(token, layer, k);
        yield this.step("compute", token, layer, k);
        yield this.step("store", token, layer, k, layer < this.L - 1);
        yield* this.barrier(token, layer, k);
      }
    }
    for (let k = 0; k < this.nb; k++) {
      yield this.step("lm-head", token, this.L, k);
      yield* this.barrier(token, this.L, k);
    }
  }

  /**
   * FlexGen's loop with the LM head as layer L. Step (token, layer, k) issues: the next layer's weights
   * when k = 0, the next step's loads, the previous step's stores, this step's compute.
   */
  *loopToken(token: number): Generator<ScheduleStep> {
    const L = this.L;
    const nb = this.nb;
    const lastToken = token === this.shape.genLen - 1;
    const firstStep = this.strategy.dequantize === "first-step";
    const weights = function* (this: ZigzagWalk, t: number, layer: number): Generator<ScheduleStep> {
      yield this.step("issue-weights", t, layer, -1);
      if (!firstStep && layer < L) yield this.step("ready-weights", t, layer, -1);
    };
    if (!this.primed) {
      this.primed = true;
      yield* weights.call(this, token, 0);
      yield* this.loads(token, 0, 0);
      yield* this.barrier(token, -1, -1);
    }
    for (let layer = 0; layer <= L; layer++) {
      for (let k = 0; k < nb; k++) {
        // The next step in loop order (within this token, or the first step of the next token).
        const nextLayer = k + 1 < nb ? layer : layer + 1;
        const nextK = (k + 1) % nb;
        if (layer < L) {
          if (k === 0) yield* weights.call(this, token, layer + 1);
          if (nextLayer < L) yield* this.loads(token, nextLayer, nextK);
          if (k > 0) yield this.step("store", token, layer, k - 1, layer < L - 1);
          else if (layer > 0) yield this.step("store", token, layer - 1, nb - 1, layer - 1 < L - 1);
          if (firstStep && k === 0) yield this.step("ready-weights", token, layer, -1);
          yield* this.deferredHidden(token, layer, k);
          yield this.step("compute", token, layer, k);
        } else {
          if (k === 0) yield this.step("store", token, L - 1, nb - 1, false);
          if (k === 0 && !lastToken) yield* weights.call(this, token + 1, 0);
          if (nextLayer > L && !lastToken) yield* this.loads(token + 1, 0, 0);
          yield this.step("lm-head", token, L, k);
        }
        yield* this.barrier(token, layer, k);
      }
    }
  }

  /**
   * One step ahead, as an executor issues: the token's LM-head and embedding weights and its inputs
   * embedded first; at each layer's start its weights made ready and the next layer's issued; before
   * each step computes, the next step's loads; after the last layer, the next token's first weights
   * and KV, then the token's next tokens.
   */
  *executorToken(token: number): Generator<ScheduleStep> {
    const L = this.L;
    const nb = this.nb;
    yield this.step("issue-weights", token, L, -1);
    yield this.step("ready-weights", token, L, -1);
    for (let k = 0; k < nb; k++) yield this.step("embed", token, -1, k);
    if (token === 0) {
      yield this.step("issue-weights", token, 0, -1);
      yield this.step("issue-kv", token, 0, 0);
    }
    yield this.step("issue-hidden", token, 0, 0);
    for (let layer = 0; layer < L; layer++) {
      yield this.step("ready-weights", token, layer, -1);
      if (layer + 1 < L) yield this.step("issue-weights", token, layer + 1, -1);
      for (let k = 0; k < nb; k++) {
        if (k + 1 < nb) yield* this.loads(token, layer, k + 1);
        else if (layer + 1 < L) yield* this.loads(token, layer + 1, 0);
        yield* this.deferredHidden(token, layer, k);
        yield this.step("compute", token, layer, k);
        if (layer === L - 1) yield this.step("lm-head", token, L, k);
        yield this.step("store", token, layer, k, layer < L - 1);
        yield* this.barrier(token, layer, k);
      }
      yield this.step("release-weights", token, layer, -1);
    }
    if (token + 1 < this.shape.genLen) {
      yield this.step("issue-weights", token + 1, 0, -1);
      yield this.step("issue-kv", token + 1, 0, 0);
    }
    yield this.step("next-tokens", token, L, -1);
  }
}

function isReuse(wait: Wait): boolean {
  return (REUSE_WAITS as readonly Wait[]).includes(wait);
}
