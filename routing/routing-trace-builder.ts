/**
 * Assembles a dense RoutingTrace from rows that arrive one at a time (from a CSV or JSONL file, in any
 * order), checking what only the whole trace can show: every token has every layer and rank exactly
 * once, one phase per token, no expert twice within a (request, token, layer). Each row remembers the
 * line it came from so an error can point at it.
 */
import { InputError } from "../core/input-error.js";
import {
  allocateRoutingTrace,
  MAX_EXPERTS,
  PHASE_PREFILL,
  type RoutingRow,
  type RoutingTrace,
  type RoutingTraceMeta,
} from "./routing-trace.js";

/** The logical columns of a row, named as in the CSV header. */
export type RoutingColumn = "request" | "token" | "phase" | "layer" | "rank" | "expert" | "gate_weight";

/** Turns (line, column) into the `field` of an InputError, e.g. "line 12, column expert". */
export type DescribeLocation = (line: number, column: RoutingColumn) => string;

/** One row's values as the builders' `add` takes them (already checked integers / finite numbers), and its line. */
export type RoutingRowValues = [...RoutingRow, line: number];

export interface PartialRoutingMeta {
  readonly model?: string;
  readonly numLayers?: number;
  readonly numExperts?: number;
  readonly expertsPerToken?: number;
}

class GrowableInt32 {
  data = new Int32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Int32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
}

class GrowableFloat32 {
  data = new Float32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Float32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
}

/** What both row builders share: the source file, how a row's location is named, and failing at a row. */
export class RoutingRowChecker {
  constructor(
    protected readonly source: string,
    protected readonly describe: DescribeLocation,
  ) {}

  protected fail(line: number, column: RoutingColumn, message: string): never {
    throw new InputError(this.source, this.describe(line, column), message);
  }
}

export class RoutingTraceBuilder extends RoutingRowChecker {
  private readonly tokenOf = new GrowableInt32();
  private readonly layers = new GrowableInt32();
  private readonly ranks = new GrowableInt32();
  private readonly expertIds = new GrowableInt32();
  private readonly weights = new GrowableFloat32();
  private readonly lines = new GrowableInt32();
  /** Per distinct (request, token): request, token, phase, first line. */
  private readonly tokenRequest = new GrowableInt32();
  private readonly tokenIndex = new GrowableInt32();
  private readonly tokenPhase = new GrowableInt32();
  private readonly tokenLine = new GrowableInt32();
  private readonly tokenIds = new Map<string, number>();
  private lastRequest = NaN;
  private lastToken = NaN;
  private lastId = -1;
  private maxLayer = -1;
  private maxRank = -1;
  private maxExpert = -1;

  /** Adds one row; values must already be integers / finite numbers of the right kind. */
  add(...[request, token, phase, layer, rank, expert, gateWeight, line]: RoutingRowValues): void {
    let id: number;
    if (request === this.lastRequest && token === this.lastToken) id = this.lastId;
    else {
      const key = `${request}:${token}`;
      const known = this.tokenIds.get(key);
      if (known === undefined) {
        id = this.tokenRequest.length;
        this.tokenIds.set(key, id);
        this.tokenRequest.push(request);
        this.tokenIndex.push(token);
        this.tokenPhase.push(phase === "prefill" ? PHASE_PREFILL : 1);
        this.tokenLine.push(line);
      } else id = known;
      this.lastRequest = request;
      this.lastToken = token;
      this.lastId = id;
    }
    const phaseCode = phase === "prefill" ? PHASE_PREFILL : 1;
    if (this.tokenPhase.data[id] !== phaseCode) {
      this.fail(
        line,
        "phase",
        `request ${request} token ${token} was ${phaseCode === PHASE_PREFILL ? "decode" : "prefill"} on line ${this.tokenLine.data[id]}; expected one phase per token`,
      );
    }
    this.tokenOf.push(id);
    this.layers.push(layer);
    this.ranks.push(rank);
    this.expertIds.push(expert);
    this.weights.push(gateWeight);
    this.lines.push(line);
    if (layer > this.maxLayer) this.maxLayer = layer;
    if (rank > this.maxRank) this.maxRank = rank;
    if (expert > this.maxExpert) this.maxExpert = expert;
  }

  get rows(): number {
    return this.lines.length;
  }

  /**
   * The dense trace. Metadata not given is inferred (largest layer, rank and expert seen, plus one),
   * which is a lower bound: pass the model's numbers when known.
   */
  finish(given: PartialRoutingMeta = {}): RoutingTrace {
    if (this.rows === 0) throw new InputError(this.source, undefined, "no routing rows; expected at least one token");
    const meta: RoutingTraceMeta = {
      model: given.model ?? "unknown",
      numLayers: given.numLayers ?? this.maxLayer + 1,
      numExperts: given.numExperts ?? this.maxExpert + 1,
      expertsPerToken: given.expertsPerToken ?? this.maxRank + 1,
    };
    if (meta.numExperts > MAX_EXPERTS)
      throw new InputError(this.source, undefined, `${meta.numExperts} experts; at most ${MAX_EXPERTS} are supported`);
    const { numLayers, expertsPerToken: k, numExperts } = meta;
    for (let row = 0; row < this.rows; row++) {
      const line = this.lines.data[row]!;
      if (this.layers.data[row]! >= numLayers)
        this.fail(
          line,
          "layer",
          `expected an integer 0..${numLayers - 1} (the model has ${numLayers} layers), got ${this.layers.data[row]}`,
        );
      if (this.ranks.data[row]! >= k)
        this.fail(line, "rank", `expected an integer 0..${k - 1} (top-${k} routing), got ${this.ranks.data[row]}`);
      if (this.expertIds.data[row]! >= numExperts)
        this.fail(
          line,
          "expert",
          `expected an integer 0..${numExperts - 1} (${numExperts} experts), got ${this.expertIds.data[row]}`,
        );
    }

    // Order tokens by (request, token index).
    const numTokens = this.tokenRequest.length;
    const order = Array.from({ length: numTokens }, (_, i) => i);
    const req = this.tokenRequest.data;
    const tok = this.tokenIndex.data;
    order.sort((a, b) => req[a]! - req[b]! || tok[a]! - tok[b]!);
    const position = new Int32Array(numTokens);
    order.forEach((id, pos) => {
      position[id] = pos;
    });

    const trace = allocateRoutingTrace(meta, numTokens);
    for (let pos = 0; pos < numTokens; pos++) {
      const id = order[pos]!;
      trace.requests[pos] = req[id]!;
      trace.tokens[pos] = tok[id]!;
      trace.phases[pos] = this.tokenPhase.data[id]!;
    }
    const filledBy = new Int32Array(trace.experts.length).fill(-1);
    for (let row = 0; row < this.rows; row++) {
      const pos = position[this.tokenOf.data[row]!]!;
      const slot = (pos * numLayers + this.layers.data[row]!) * k + this.ranks.data[row]!;
      const line = this.lines.data[row]!;
      if (filledBy[slot] !== -1) {
        this.fail(
          line,
          "rank",
          `request ${trace.requests[pos]} token ${trace.tokens[pos]} layer ${this.layers.data[row]} rank ${this.ranks.data[row]} already given on line ${this.lines.data[filledBy[slot]!]}; expected each rank once`,
        );
      }
      filledBy[slot] = row;
      trace.experts[slot] = this.expertIds.data[row]!;
      trace.gateWeights[slot] = this.weights.data[row]!;
    }
    for (let pos = 0; pos < numTokens; pos++) {
      for (let l = 0; l < numLayers; l++) {
        const base = (pos * numLayers + l) * k;
        for (let r = 0; r < k; r++) {
          const row = filledBy[base + r]!;
          if (row === -1) {
            const firstLine = this.tokenLine.data[order[pos]!]!;
            throw new InputError(
              this.source,
              undefined,
              `request ${trace.requests[pos]} token ${trace.tokens[pos]} (first seen on line ${firstLine}) has no row for layer ${l} rank ${r}; expected all ${numLayers} layers x ${k} ranks per token`,
            );
          }
          for (let q = 0; q < r; q++) {
            if (trace.experts[base + q] === trace.experts[base + r]) {
              this.fail(
                this.lines.data[row]!,
                "expert",
                `expert ${trace.experts[base + r]} is chosen twice for request ${trace.requests[pos]} token ${trace.tokens[pos]} layer ${l} (also on line ${this.lines.data[filledBy[base + q]!]}); expected distinct experts per token and layer`,
              );
            }
          }
        }
      }
    }
    return trace;
  }
}
