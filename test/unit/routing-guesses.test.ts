import assert from "node:assert/strict";
import { test } from "node:test";
import { InputError } from "../../core/input-error.js";
import { recordedGuessRecall } from "../../routing/guess-recall.js";
import { parseMegatronJsonl, routingTraceToJsonl } from "../../routing/megatron-jsonl.js";
import { parseRoutingCsv, routingTraceToCsv } from "../../routing/routing-csv.js";
import { routingStats } from "../../routing/routing-stats.js";
import { guessesAt, NO_GUESS } from "../../routing/routing-trace.js";
import { batchGuesses, countGuesses } from "../../simulator/expert-predictor.js";

/**
 * A hand-made trace: 1 request, a 1-token prompt and 2 decode tokens, 3 layers of 4 experts top-1,
 * guesses 1 layer ahead, 2 per token.
 */
const META =
  "# spillway-routing-trace model=hand num_layers=3 num_experts=4 experts_per_token=1 guess_distance=1 guesses_per_layer=2";
const HEADER = "request,token,phase,layer,rank,expert,gate_weight,kind";
/** routed[token][layer], guessed[token][layer - 1] = [best, second]. */
const routed = [
  [0, 1, 2],
  [3, 1, 0],
  [2, 2, 1],
];
const guessed = [
  [
    [1, 3],
    [2, 0],
  ],
  [
    [0, 1],
    [3, 2],
  ],
  [
    [2, 0],
    [1, 3],
  ],
];

function handCsv(extra: string[] = [], drop?: (line: string) => boolean): string {
  const rows: string[] = [];
  routed.forEach((layers, t) => {
    const phase = t === 0 ? "prefill" : "decode";
    layers.forEach((e, l) => rows.push(`0,${t},${phase},${l},0,${e},1,route`));
    guessed[t]!.forEach((g, i) => {
      g.forEach((e, r) => rows.push(`0,${t},${phase},${i + 1},${r},${e},0.5,guess`));
    });
  });
  return [META, HEADER, ...rows.filter((row) => !drop?.(row)), ...extra].join("\n") + "\n";
}

test("CSV with guess rows: read into RoutingTrace.guesses, written back byte for byte, and through JSONL unchanged", () => {
  const text = handCsv();
  const trace = parseRoutingCsv(text, "hand.csv");
  const g = trace.guesses!;
  assert.deepEqual([g.distance, g.perLayer], [1, 2]);
  assert.deepEqual([...guessesAt(g, 3, 1, 2)], [3, 2]);
  assert.deepEqual([...guessesAt(g, 3, 2, 0)], []);
  assert.equal(g.experts[0], NO_GUESS);
  assert.equal(routingTraceToCsv(trace), text);
  const jsonl = routingTraceToJsonl(trace);
  assert.match(jsonl.split("\n")[1]!, /"guess_distance":1,"guess_indices":\[\[1,3\]\]/);
  const back = parseMegatronJsonl(jsonl, "hand.jsonl", { model: "hand" });
  assert.deepEqual(back.guesses, trace.guesses);
  assert.equal(routingTraceToCsv(back), text);
  // A trace without guesses keeps the seven columns.
  const plain = parseRoutingCsv("request,token,phase,layer,rank,expert,gate_weight\n0,0,decode,0,0,1,1\n", "plain.csv");
  assert.equal(plain.guesses, undefined);
  assert.equal(routingTraceToCsv(plain).split("\n")[1], "request,token,phase,layer,rank,expert,gate_weight");
});

test("recorded guess recall: decode tokens, layers from the distance on, the first k guesses", () => {
  const trace = parseRoutingCsv(handCsv(), "hand.csv");
  // Decode tokens 1 and 2, layers 1-2, top-1 guesses: token 1 guesses 0 (routed 1), 3 (routed 0); token 2 guesses 2 (routed 2), 1 (routed 1).
  assert.equal(recordedGuessRecall(trace), 2 / 4);
  // With both guesses: token 1 layer 1 {0,1} names 1, layer 2 {3,2} misses 0; token 2 names 2 and 1.
  assert.equal(recordedGuessRecall(trace, 2), 3 / 4);
  assert.equal(recordedGuessRecall(trace, 3), undefined);
  // trace stats reports the first k (here 1) guesses' recall.
  assert.deepEqual(routingStats(trace, { cacheSizes: [1] }).recordedGuesses, { distance: 1, perLayer: 2, recall: 0.5 });
  const { guesses: _dropped, ...plain } = trace;
  assert.equal(routingStats(plain, { cacheSizes: [1] }).recordedGuesses, undefined);
});

test("batch guesses take every token's best guess first, then the second ones, each expert once", () => {
  assert.deepEqual(batchGuesses([[1, 3, 0]], 2), [1, 3]);
  assert.deepEqual(
    batchGuesses(
      [
        [1, 3, 0],
        [1, 2, 3],
      ],
      3,
    ),
    [1, 3, 2],
  );
  assert.deepEqual(
    batchGuesses(
      [
        [5, 4],
        [6, 5],
      ],
      4,
    ),
    [5, 6, 4],
  );
  assert.deepEqual(countGuesses([1, 3, 2], [3, 0]), { guesses: 3, used: 1, lookups: 2 });
});

test("guess rows: errors name the file, line and column", () => {
  const fails = (text: string, pattern: RegExp) =>
    assert.throws(
      () => parseRoutingCsv(text, "g.csv"),
      (error: Error) => error instanceof InputError && pattern.test(error.message),
      pattern.source,
    );
  fails(
    handCsv().replace(" guess_distance=1", ""),
    /line 1, guess_distance: expected guess_distance and guesses_per_layer together/,
  );
  fails(
    handCsv().replace(" guess_distance=1 guesses_per_layer=2", ""),
    /g\.csv: line \d+, column rank: a guess row, but the file does not say guess_distance/,
  );
  fails(
    handCsv().replace("guesses_per_layer=2", "guesses_per_layer=2147483647"),
    /g\.csv: guesses_per_layer: expected at most 4 guesses per layer/,
  );
  fails(handCsv(["0,1,decode,0,0,1,0.5,guess"]), /line 24, column layer: expected a guessed layer 1\.\.2 .*got 0/);
  fails(handCsv(["0,1,decode,1,2,1,0.5,guess"]), /line 24, column rank: expected an integer 0\.\.1/);
  fails(
    handCsv(["0,7,decode,1,0,1,0.5,guess"]),
    /column token: a guess for request 0 token 7, which has no routing rows/,
  );
  fails(handCsv(["0,1,prefill,1,0,1,0.5,guess"]), /column phase: expected decode/);
  fails(handCsv(["0,1,decode,1,0,1,0.5,maybe"]), /column kind: expected "route" or "guess", got "maybe"/);
  fails(
    handCsv([], (row) => row === "0,2,decode,2,1,3,0.5,guess"),
    /request 0 token 2 has no guess for layer 2 rank 1/,
  );
  fails(
    handCsv([], (row) => row === "0,2,decode,2,1,3,0.5,guess").replace(
      "0,2,decode,2,0,1,0.5,guess",
      "0,2,decode,2,0,1,0.5,guess\n0,2,decode,2,1,1,0.5,guess",
    ),
    /column expert: expert 1 is guessed twice/,
  );
  assert.throws(
    () => parseMegatronJsonl('{"step":0,"layer":1,"topk_indices":[[1]],"guess_indices":[[1,2]]}\n', "g.jsonl"),
    /g\.jsonl: line 1, guess_distance: expected an integer >= 0, got nothing/,
  );
  assert.throws(
    () =>
      parseMegatronJsonl(
        '{"step":0,"layer":1,"topk_indices":[[1]],"guess_distance":0,"guess_indices":[[1,2]]}\n',
        "g.jsonl",
      ),
    /g\.jsonl: line 1, guess_distance: expected an integer >= 1, got 0/,
  );
});
