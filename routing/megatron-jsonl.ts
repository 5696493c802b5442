/**
 * Adapter for router traces in the JSON Lines shape Megatron-Core style tracing writes: one JSON object
 * per line per (forward step, MoE layer). Variants exist; exactly this is accepted:
 *
 *   {"step": 0, "layer": 3, "topk_indices": [[1, 5], [0, 2]], "topk_weights": [[0.7, 0.3], [0.6, 0.4]]}
 *
 * - "step" (integer >= 0, required): the forward step. "layer" (integer >= 0, required): the MoE layer.
 * - "topk_indices" (required): one inner list per token of the step, each the token's top-k expert
 *   indices in rank order (distinct integers). k must be the same on every line.
 * - "topk_weights" (optional; "topk_probs" is accepted as an alias): the same shape, numbers in
 *   [0, 1]. When absent every gate weight is 1/k.
 * - "request" (optional integer >= 0, default 0): which sequence the step belongs to.
 * - "phase" (optional "prefill" or "decode"): when absent, a step with one token is "decode" and a
 *   step with several tokens is "prefill".
 * - "guess_indices" (optional, Spillway's extension for RoutingTrace.guesses): one inner list per token
 *   of the m experts a speculative prefetcher guessed for this layer, best first; with it
 *   "guess_distance" (integer >= 1, the same on every line: guesses for layer l were made from layer
 *   l - distance) and optionally "guess_weights" (same shape, in [0, 1]; default 1/m). Either every line
 *   of a layer >= guess_distance has them or none does.
 * - Other keys (iteration, rank, timestamps) are ignored. Blank lines are skipped.
 *
 * Token indices: within a request, steps are taken in ascending step order and each step's tokens get
 * the next consecutive token indices (a 5-token prompt step then decode steps give tokens 0-4, 5, 6, ...).
 * Every layer of a step must list the same number of tokens. Errors name the file, the line number and
 * the JSON path (e.g. `line 7, topk_indices[2][1]`).
 */
import { describeValue, InputError } from "../core/input-error.js";
import { writeFileAtomic } from "../core/write-file-atomic.js";
import { RoutingGuessesBuilder } from "./routing-guesses-builder.js";
import { guessesAt, PHASE_PREFILL, type RoutingPhase, type RoutingTrace, requestRanges } from "./routing-trace.js";
import { type PartialRoutingMeta, type RoutingColumn, RoutingTraceBuilder } from "./routing-trace-builder.js";

interface StepLayer {
  readonly line: number;
  readonly request: number;
  readonly step: number;
  readonly layer: number;
  readonly phase: RoutingPhase | undefined;
  readonly indices: number[][];
  readonly weights: number[][] | undefined;
  readonly weightsKey: string;
  readonly guessIndices: number[][] | undefined;
  readonly guessWeights: number[][] | undefined;
}

const MAX_INDEX = 2 ** 31 - 1;

/** A list with one inner list of `width` values per token, each checked by `item`. */
function tokenLists(
  raw: unknown,
  tokens: number | undefined,
  width: number | undefined,
  at: (path: string) => string,
  key: string,
  source: string,
  item: (value: unknown, path: string) => number,
): number[][] {
  if (!Array.isArray(raw) || raw.length === 0 || (tokens !== undefined && raw.length !== tokens))
    throw new InputError(
      source,
      at(key),
      `expected ${tokens ?? "a non-empty list of"} lists (one per token, like topk_indices), got ${describeValue(raw)}`,
    );
  return raw.map((list: unknown, t: number) => {
    if (!Array.isArray(list) || list.length === 0 || (width !== undefined && list.length !== width))
      throw new InputError(
        source,
        at(`${key}[${t}]`),
        `expected a list of ${width ?? "one or more"} values, got ${describeValue(list)}`,
      );
    return list.map((value: unknown, r: number) => item(value, `${key}[${t}][${r}]`));
  });
}

export function parseMegatronJsonl(text: string, source: string, given: PartialRoutingMeta = {}): RoutingTrace {
  const entries: StepLayer[] = [];
  let k: number | undefined = given.expertsPerToken;
  let kLine = 0;
  let guessShape: { distance: number; perLayer: number; line: number } | undefined;
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const lineText = lines[n]!.trim();
    if (lineText === "") continue;
    const line = n + 1;
    const at = (path: string) => `line ${line}${path ? `, ${path}` : ""}`;
    let value: unknown;
    try {
      value = JSON.parse(lineText);
    } catch (error) {
      throw new InputError(
        source,
        at(""),
        `not valid JSON (${(error as Error).message}); expected one object per line`,
      );
    }
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw new InputError(source, at(""), `expected a JSON object, got ${describeValue(value)}`);
    const obj = value as Record<string, unknown>;
    const integer = (key: string, fallback?: number): number => {
      const v = obj[key];
      if (v === undefined && fallback !== undefined) return fallback;
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > MAX_INDEX)
        throw new InputError(source, at(key), `expected an integer >= 0, got ${describeValue(v)}`);
      return v;
    };
    const step = integer("step");
    const layer = integer("layer");
    const request = integer("request", 0);
    let phase: RoutingPhase | undefined;
    if (obj.phase !== undefined) {
      if (obj.phase !== "prefill" && obj.phase !== "decode")
        throw new InputError(source, at("phase"), `expected "prefill" or "decode", got ${describeValue(obj.phase)}`);
      phase = obj.phase;
    }
    const rawIndices = obj.topk_indices;
    if (!Array.isArray(rawIndices) || rawIndices.length === 0)
      throw new InputError(
        source,
        at("topk_indices"),
        `expected a non-empty list with one list of expert indices per token, got ${describeValue(rawIndices)}`,
      );
    const indices: number[][] = rawIndices.map((tokenList: unknown, t: number) => {
      if (!Array.isArray(tokenList) || tokenList.length === 0)
        throw new InputError(
          source,
          at(`topk_indices[${t}]`),
          `expected a non-empty list of expert indices, got ${describeValue(tokenList)}`,
        );
      if (k === undefined) {
        k = tokenList.length;
        kLine = line;
      }
      if (tokenList.length !== k)
        throw new InputError(
          source,
          at(`topk_indices[${t}]`),
          `expected ${k} experts (top-${k}${kLine ? `, as on line ${kLine}` : ""}), got ${tokenList.length}`,
        );
      return tokenList.map((e: unknown, r: number) => {
        const limit = given.numExperts;
        if (
          typeof e !== "number" ||
          !Number.isInteger(e) ||
          e < 0 ||
          (limit !== undefined && e >= limit) ||
          e > 65535
        ) {
          throw new InputError(
            source,
            at(`topk_indices[${t}][${r}]`),
            `expected an expert index 0..${(limit ?? 65536) - 1}, got ${describeValue(e)}`,
          );
        }
        return e;
      });
    });
    const weightsKey = obj.topk_weights !== undefined ? "topk_weights" : "topk_probs";
    const rawWeights = obj[weightsKey];
    let weights: number[][] | undefined;
    if (rawWeights !== undefined) {
      if (!Array.isArray(rawWeights) || rawWeights.length !== indices.length)
        throw new InputError(
          source,
          at(weightsKey),
          `expected ${indices.length} lists (one per token, like topk_indices), got ${Array.isArray(rawWeights) ? rawWeights.length : describeValue(rawWeights)}`,
        );
      weights = rawWeights.map((tokenList: unknown, t: number) => {
        if (!Array.isArray(tokenList) || tokenList.length !== k)
          throw new InputError(
            source,
            at(`${weightsKey}[${t}]`),
            `expected a list of ${k} weights, got ${describeValue(tokenList)}`,
          );
        return tokenList.map((w: unknown, r: number) => {
          if (typeof w !== "number" || !Number.isFinite(w) || w < 0 || w > 1)
            throw new InputError(
              source,
              at(`${weightsKey}[${t}][${r}]`),
              `expected a number in [0, 1], got ${describeValue(w)}`,
            );
          return w;
        });
      });
    }
    let guessIndices: number[][] | undefined;
    let guessWeights: number[][] | undefined;
    if (obj.guess_indices !== undefined) {
      const distance = integer("guess_distance");
      if (distance < 1) throw new InputError(source, at("guess_distance"), `expected an integer >= 1, got ${distance}`);
      const expertIndex = (e: unknown, path: string): number => {
        if (typeof e !== "number" || !Number.isInteger(e) || e < 0 || e >= (given.numExperts ?? 65535))
          throw new InputError(
            source,
            at(path),
            `expected an expert index 0..${(given.numExperts ?? 65535) - 1}, got ${describeValue(e)}`,
          );
        return e;
      };
      guessIndices = tokenLists(
        obj.guess_indices,
        indices.length,
        guessShape?.perLayer,
        at,
        "guess_indices",
        source,
        expertIndex,
      );
      const perLayer = guessIndices[0]!.length;
      if (guessShape && guessShape.distance !== distance)
        throw new InputError(
          source,
          at("guess_distance"),
          `expected ${guessShape.distance} (as on line ${guessShape.line}), got ${distance}`,
        );
      guessShape ??= { distance, perLayer, line };
      if (obj.guess_weights !== undefined)
        guessWeights = tokenLists(
          obj.guess_weights,
          indices.length,
          perLayer,
          at,
          "guess_weights",
          source,
          (w, path) => {
            if (typeof w !== "number" || !Number.isFinite(w) || w < 0 || w > 1)
              throw new InputError(source, at(path), `expected a number in [0, 1], got ${describeValue(w)}`);
            return w;
          },
        );
    }
    entries.push({ line, request, step, layer, phase, indices, weights, weightsKey, guessIndices, guessWeights });
  }
  if (entries.length === 0)
    throw new InputError(source, undefined, "no JSON lines; expected one object per (step, layer)");
  if (given.numLayers !== undefined) {
    const bad = entries.find((e) => e.layer >= given.numLayers!);
    if (bad)
      throw new InputError(
        source,
        `line ${bad.line}, layer`,
        `expected an integer 0..${given.numLayers - 1} (the model has ${given.numLayers} layers), got ${bad.layer}`,
      );
  }

  // Token offsets: per request, steps in ascending order, each with a fixed token count.
  const stepTokens = new Map<string, { count: number; line: number; request: number; step: number }>();
  for (const e of entries) {
    const key = `${e.request}:${e.step}`;
    const known = stepTokens.get(key);
    if (!known) stepTokens.set(key, { count: e.indices.length, line: e.line, request: e.request, step: e.step });
    else if (known.count !== e.indices.length) {
      throw new InputError(
        source,
        `line ${e.line}, topk_indices`,
        `request ${e.request} step ${e.step} has ${known.count} tokens on line ${known.line}; expected the same number on every layer, got ${e.indices.length}`,
      );
    }
  }
  const offsets = new Map<string, number>();
  const steps = [...stepTokens.values()].sort((a, b) => a.request - b.request || a.step - b.step);
  let next = 0;
  let request = -1;
  for (const s of steps) {
    if (s.request !== request) {
      request = s.request;
      next = 0;
    }
    offsets.set(`${s.request}:${s.step}`, next);
    next += s.count;
  }

  const columnPath: Record<RoutingColumn, string> = {
    request: "request",
    token: "topk_indices",
    phase: "phase",
    layer: "layer",
    rank: "topk_indices",
    expert: "topk_indices",
    gate_weight: "topk_weights",
  };
  const describe = (line: number, column: RoutingColumn) => `line ${line}, ${columnPath[column]}`;
  const builder = new RoutingTraceBuilder(source, describe);
  const guessBuilder = new RoutingGuessesBuilder(
    source,
    (line, column) =>
      `line ${line}, ${column === "expert" || column === "rank" ? "guess_indices" : columnPath[column]}`,
  );
  for (const e of entries) {
    const offset = offsets.get(`${e.request}:${e.step}`)!;
    const phase: RoutingPhase = e.phase ?? (e.indices.length > 1 ? "prefill" : "decode");
    e.indices.forEach((experts, t) => {
      experts.forEach((expert, r) => {
        builder.add(e.request, offset + t, phase, e.layer, r, expert, e.weights ? e.weights[t]![r]! : 1 / k!, e.line);
      });
    });
    e.guessIndices?.forEach((experts, t) => {
      experts.forEach((expert, r) => {
        const weight = e.guessWeights ? e.guessWeights[t]![r]! : 1 / experts.length;
        guessBuilder.add(e.request, offset + t, phase, e.layer, r, expert, weight, e.line);
      });
    });
  }
  const trace = builder.finish(given);
  const guesses = guessBuilder.finish(trace, guessShape);
  return guesses ? { ...trace, guesses } : trace;
}

/**
 * The trace as JSON Lines in the accepted shape: per request, the prefill block is step 0 (when
 * present) and each decode token its own step; every line carries request, phase and weights.
 */
const rounded = (w: number) => Math.round(w * 1e6) / 1e6;

export function routingTraceToJsonl(trace: RoutingTrace): string {
  const { numLayers, expertsPerToken: k } = trace.meta;
  const out: string[] = [];
  for (const { request, start, end } of requestRanges(trace)) {
    let step = 0;
    let i = start;
    while (i < end) {
      let stop = i + 1;
      if (trace.phases[i] === PHASE_PREFILL) while (stop < end && trace.phases[stop] === PHASE_PREFILL) stop++;
      const phase = trace.phases[i] === PHASE_PREFILL ? "prefill" : "decode";
      for (let l = 0; l < numLayers; l++) {
        const indices: number[][] = [];
        const weights: number[][] = [];
        const guessIndices: number[][] = [];
        const guessWeights: number[][] = [];
        const g = trace.guesses;
        for (let t = i; t < stop; t++) {
          const base = (t * numLayers + l) * k;
          indices.push(Array.from(trace.experts.subarray(base, base + k)));
          weights.push(Array.from(trace.gateWeights.subarray(base, base + k), rounded));
          if (g && l >= g.distance) {
            const at = (t * numLayers + l) * g.perLayer;
            guessIndices.push(Array.from(guessesAt(g, numLayers, t, l)));
            guessWeights.push(Array.from(g.weights.subarray(at, at + g.perLayer), rounded));
          }
        }
        const guessed =
          g && l >= g.distance
            ? { guess_distance: g.distance, guess_indices: guessIndices, guess_weights: guessWeights }
            : {};
        out.push(
          JSON.stringify({ request, step, layer: l, phase, topk_indices: indices, topk_weights: weights, ...guessed }),
        );
      }
      step++;
      i = stop;
    }
  }
  return out.join("\n") + "\n";
}

export function writeMegatronJsonl(path: string, trace: RoutingTrace): void {
  writeFileAtomic(path, routingTraceToJsonl(trace));
}
