/**
 * Times one pass of the MoE runner the way the dense runtime's recorder times a run, so an MoE run
 * reports the same figures (prefill and decode seconds, busy seconds and bytes per resource) and writes
 * the same Chrome trace (`--trace`), plus the time its experts waited for their weights.
 *
 * It sits between the model and the expert store (an ExpertExecutor around another), and the runner
 * marks each step's start and end. On the CPU backend "GPU" work is the main thread computing over the
 * device arena:
 * - `gpu`: attention, router and LM head (each layer's time before its experts run, and the step's
 *   time after the last layer), and the experts computed from device memory;
 * - `cpu`: experts computed from their host home copies (compute "cpu" / "auto" misses);
 * - `h2d`: the expert copies as the copy engine ran them (prefill streaming, demand fetches,
 *   prefetches; not the caches' warm-up before the run);
 * - stall: the rest of a layer's expert phase, the main thread waiting for expert copies (or running
 *   them, without worker threads), counted per phase.
 */
import { LINKS, type Link } from "../../core/links.js";
import { RESOURCES, type Resource } from "../../core/resources.js";
import type { TraceSink } from "../../simulator/trace-sink.js";
import type { FinishedTransfer } from "../transfer-engine.js";
import type { ExpertTransferMeta } from "./expert-store.js";
import type { ExpertExecutor, ExpertIo, LookaheadGuesses, MoePhase } from "./mixtral-model.js";

export interface MoePassTiming {
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly busySeconds: Readonly<Record<Resource, number>>;
  readonly bytes: Readonly<Record<Link, number>>;
  /** Seconds decode steps' experts waited for their weights (demand fetches, late prefetches). */
  readonly stallSeconds: number;
  /** The same in the prefill step (experts streamed through the staging block). */
  readonly prefillStallSeconds: number;
  /** Slices recorded (compute, expert and copy steps), as a dense run's `events`. */
  readonly events: number;
}

/** Trace slice names of the expert copies, by why they were made. */
const COPY_KINDS: Readonly<Record<ExpertTransferMeta["kind"], string>> = {
  warm: "warm-expert",
  prefill: "stream-expert",
  demand: "load-expert",
  prefetch: "prefetch-expert",
  "rows-in": "send-expert-rows",
  "rows-out": "return-expert-rows",
  "activations-in": "send-activations",
  "activations-out": "return-activations",
};

export class MoePassClock implements ExpertExecutor {
  private readonly origin = performance.now();
  private readonly originMs = performance.timeOrigin + this.origin;
  private readonly busy = Object.fromEntries(RESOURCES.map((r) => [r, 0])) as Record<Resource, number>;
  private readonly moved = Object.fromEntries(LINKS.map((l) => [l, 0])) as Record<Link, number>;
  private events = 0;
  private token = -1;
  private runStart = 0;
  private mark = 0;
  private firstStepEnd = 0;
  private lastStepEnd = 0;
  private decodeStall = 0;
  private prefillStall = 0;
  /** Seconds the current layer's experts computed (host or device), not counted as stall. */
  private computing = 0;

  /**
   * @param inner the store that decides where each expert's weights come from.
   * @param onHost whether `weights` is layer `layer`'s expert's host home copy (computed on the CPU).
   * @param onLayer called as each layer of each step has run its experts (progress).
   * @param deviceCompute the device times the non-expert work itself (deviceCompute); the host's time
   *   between expert phases is then not recorded as gpu compute.
   */
  constructor(
    private readonly inner: ExpertExecutor,
    private readonly onHost: (layer: number, expert: number, weights: Uint16Array) => boolean,
    private readonly trace?: TraceSink,
    private readonly onLayer?: (at: { readonly token: number; readonly layer: number }) => void,
    private readonly computeOnDevice = false,
  ) {}

  private now(): number {
    return (performance.now() - this.origin) / 1000;
  }

  private slice(kind: string, resource: Resource, start: number, end: number, bytes: number, layer: number): void {
    this.busy[resource] += end - start;
    this.events++;
    this.trace?.slice(kind, resource, start, end, bytes, { token: this.token, layer, batch: 0 });
  }

  /** Step `token` (0: the prefill) starts. */
  beginStep(token: number): void {
    this.token = token;
    this.mark = this.now();
    if (token === 0) this.runStart = this.mark;
  }

  /** The step's tokens are out: the time since its last layer's experts is the LM head's. */
  endStep(): void {
    const end = this.now();
    if (!this.computeOnDevice) this.slice("compute", "gpu", this.mark, end, 0, -1);
    if (this.token === 0) this.firstStepEnd = end;
    else if (this.firstStepEnd === 0) throw new Error("MoePassClock: a decode step ended before the prefill");
    this.lastStepEnd = end;
  }

  /** A copy the engine finished (its callback); the caches' warm-up before the run is left out. */
  transfer(done: FinishedTransfer<ExpertTransferMeta>): void {
    if (done.meta.kind === "warm") return;
    const start = (done.startMs - this.originMs) / 1000;
    const end = (done.endMs - this.originMs) / 1000;
    this.moved[done.stream] += done.bytes;
    this.busy[done.stream] += end - start;
    this.events++;
    this.trace?.slice(COPY_KINDS[done.meta.kind], done.stream, start, end, done.bytes, {
      token: this.token,
      layer: done.meta.layer,
      batch: 0,
    });
  }

  /** The store's (a decoder copies the router input to the host only when it is read). */
  get readsRouterInput(): boolean | undefined {
    return this.inner.readsRouterInput;
  }

  /** Passed on to the store (prefetch decisions: the speculative guesser, a pre-gated model's next experts). */
  beforeExperts(
    layer: number,
    phase: MoePhase,
    routerInput: Float32Array,
    rows: number,
    nextLayerExperts: readonly number[] | undefined,
    lookaheadGuesses?: LookaheadGuesses,
  ): void {
    this.inner.beforeExperts?.(layer, phase, routerInput, rows, nextLayerExperts, lookaheadGuesses);
  }

  runExperts(
    layer: number,
    phase: MoePhase,
    needed: readonly number[],
    compute: (expert: number, weights: Uint16Array) => void,
    io?: ExpertIo,
  ): void {
    const begin = this.now();
    if (!this.computeOnDevice) this.slice("compute", "gpu", this.mark, begin, 0, layer);
    this.computing = 0;
    this.inner.runExperts(
      layer,
      phase,
      needed,
      (expert, weights) => {
        const start = this.now();
        compute(expert, weights);
        const end = this.now();
        this.computing += end - start;
        this.slice("expert", this.onHost(layer, expert, weights) ? "cpu" : "gpu", start, end, 0, layer);
      },
      io,
    );
    this.mark = this.now();
    const waited = Math.max(0, this.mark - begin - this.computing);
    if (phase === "prefill") this.prefillStall += waited;
    else this.decodeStall += waited;
    this.onLayer?.({ token: this.token, layer });
  }

  /**
   * An expert a device computed itself (the CUDA backend), timed by device events, reported while its
   * layer's experts run: a gpu "expert" slice, not counted as stall.
   */
  deviceExpert(layer: number, startMs: number, endMs: number): void {
    const start = (startMs - this.originMs) / 1000;
    const end = (endMs - this.originMs) / 1000;
    this.computing += end - start;
    this.slice("expert", "gpu", start, end, 0, layer);
  }

  /** The device decoder's work (attention, router, combine, LM head), timed by device events: a gpu "compute" slice. */
  deviceCompute(layer: number, startMs: number, endMs: number): void {
    this.slice("compute", "gpu", (startMs - this.originMs) / 1000, (endMs - this.originMs) / 1000, 0, layer);
  }

  timing(): MoePassTiming {
    return {
      prefillSeconds: this.firstStepEnd - this.runStart,
      decodeSeconds: this.lastStepEnd - this.firstStepEnd,
      busySeconds: { ...this.busy },
      bytes: { ...this.moved },
      stallSeconds: this.decodeStall,
      prefillStallSeconds: this.prefillStall,
      events: this.events,
    };
  }
}
