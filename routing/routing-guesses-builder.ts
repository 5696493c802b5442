/**
 * Assembles a trace's recorded speculative guesses (RoutingTrace.guesses) from rows that arrive one at a
 * time, in any order, beside the routing rows, and checks what only the whole table can show: every
 * token of the trace has exactly `perLayer` ranked guesses at every layer from `distance` on (and none
 * below), each rank once, no expert twice in a (token, layer), and the token's phase as its routing
 * says. Each row remembers its line so an error can point at it.
 */
import { InputError } from "../core/input-error.js";
import { allocateRoutingGuesses, phaseName, type RoutingGuesses, type RoutingTrace } from "./routing-trace.js";
import { RoutingRowChecker, type RoutingRowValues } from "./routing-trace-builder.js";

interface GuessRow {
  readonly request: number;
  readonly token: number;
  readonly phase: RoutingRowValues[2];
  readonly layer: number;
  readonly rank: number;
  readonly expert: number;
  readonly weight: number;
  readonly line: number;
}

/** The guess table's shape, from a file's metadata. */
export interface GuessShape {
  readonly distance: number;
  readonly perLayer: number;
}

export class RoutingGuessesBuilder extends RoutingRowChecker {
  private readonly rows: GuessRow[] = [];

  /** Adds one guess row (`rank` is the guess's rank, `layer` the layer it names experts for). */
  add(...[request, token, phase, layer, rank, expert, weight, line]: RoutingRowValues): void {
    this.rows.push({ request, token, phase, layer, rank, expert, weight, line });
  }

  /** The guess table of `trace` (whose routing rows are complete), or undefined when no guess row came. */
  finish(trace: RoutingTrace, shape: GuessShape | undefined): RoutingGuesses | undefined {
    if (this.rows.length === 0) return undefined;
    if (!shape)
      throw new InputError(
        this.source,
        this.describe(this.rows[0]!.line, "rank"),
        "a guess row, but the file does not say guess_distance and guesses_per_layer; expected both with guess rows",
      );
    const { numLayers: L, numExperts: E } = trace.meta;
    const { distance, perLayer: M } = shape;
    if (M > E)
      throw new InputError(
        this.source,
        "guesses_per_layer",
        `expected at most ${E} guesses per layer (the experts per layer), got ${M}`,
      );
    const position = new Map<string, number>();
    for (let i = 0; i < trace.numTokens; i++) position.set(`${trace.requests[i]}:${trace.tokens[i]}`, i);
    const guesses = allocateRoutingGuesses(trace.meta, trace.numTokens, distance, M);
    const filledBy = new Int32Array(guesses.experts.length).fill(-1);
    for (const [index, row] of this.rows.entries()) {
      const at = position.get(`${row.request}:${row.token}`);
      if (at === undefined)
        this.fail(
          row.line,
          "token",
          `a guess for request ${row.request} token ${row.token}, which has no routing rows`,
        );
      if (phaseName(trace.phases[at]!) !== row.phase)
        this.fail(row.line, "phase", `expected ${phaseName(trace.phases[at]!)}, as the token's routing rows say`);
      if (row.layer < distance || row.layer >= L)
        this.fail(
          row.line,
          "layer",
          `expected a guessed layer ${distance}..${L - 1} (guesses are made ${distance} layer${distance > 1 ? "s" : ""} ahead), got ${row.layer}`,
        );
      if (row.rank >= M) this.fail(row.line, "rank", `expected a guess rank 0..${M - 1}, got ${row.rank}`);
      if (row.expert >= E)
        this.fail(row.line, "expert", `expected an integer 0..${E - 1} (${E} experts), got ${row.expert}`);
      const slot = (at * L + row.layer) * M + row.rank;
      if (filledBy[slot] !== -1)
        this.fail(
          row.line,
          "rank",
          `request ${row.request} token ${row.token} layer ${row.layer} guess rank ${row.rank} already given on line ${this.rows[filledBy[slot]!]!.line}; expected each rank once`,
        );
      filledBy[slot] = index;
      guesses.experts[slot] = row.expert;
      guesses.weights[slot] = row.weight;
    }
    for (let i = 0; i < trace.numTokens; i++) {
      for (let l = distance; l < L; l++) {
        const base = (i * L + l) * M;
        for (let r = 0; r < M; r++) {
          if (filledBy[base + r] === -1)
            throw new InputError(
              this.source,
              undefined,
              `request ${trace.requests[i]} token ${trace.tokens[i]} has no guess for layer ${l} rank ${r}; expected ${M} guesses at every layer ${distance}..${L - 1} of every token`,
            );
          for (let q = 0; q < r; q++)
            if (guesses.experts[base + q] === guesses.experts[base + r])
              this.fail(
                this.rows[filledBy[base + r]!]!.line,
                "expert",
                `expert ${guesses.experts[base + r]} is guessed twice for request ${trace.requests[i]} token ${trace.tokens[i]} layer ${l}; expected distinct guesses`,
              );
        }
      }
    }
    return guesses;
  }
}
