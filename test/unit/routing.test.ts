import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { InputError } from "../../core/input-error.js";
import type { ModelSpec } from "../../core/model-spec.js";
import { findCatalogueModel } from "../../models/catalogue.js";
import { ExpertLruCache, lruCounts, lruHitRates } from "../../routing/expert-lru.js";
import { parseMegatronJsonl, routingTraceToJsonl } from "../../routing/megatron-jsonl.js";
import { detectRoutingFormat, readRoutingTrace } from "../../routing/read-routing-trace.js";
import { parseRoutingCsv, routingTraceToCsv } from "../../routing/routing-csv.js";
import { routingStats } from "../../routing/routing-stats.js";
import {
  expertsAt,
  gateWeightsAt,
  PHASE_DECODE,
  PHASE_PREFILL,
  type RoutingTrace,
} from "../../routing/routing-trace.js";
import { synthRouting } from "../../routing/synth-routing.js";
import { runCli } from "../helpers.js";

const root = mkdtempSync(join(tmpdir(), "spillway-routing-"));
after(() => rmSync(root, { recursive: true, force: true }));

const MIXTRAL = findCatalogueModel("mixtral-8x7b")!;

/** A shared Mixtral-8x7B trace: 4 requests x 1,500 decode tokens (6,000 tokens x 32 layers). */
const mixtralTrace = synthRouting({ model: MIXTRAL, tokens: 1500, requests: 4, seed: 7 });
const mixtralStats = routingStats(mixtralTrace, { cacheSizes: [1, 2, 3, 4] });

function moeModel(name: string, numLayers: number, numExperts: number, expertsPerToken: number): ModelSpec {
  return { ...MIXTRAL, name, numLayers, moe: { numExperts, expertsPerToken, expertFfnSize: 1024 } };
}

/** CSV of a hand-made trace: tokens[request][token][layer] = experts in rank order, all decode. */
function handCsv(requests: number[][][][], meta: { layers: number; experts: number; k: number }): string {
  const lines = [
    `# spillway-routing-trace model=hand num_layers=${meta.layers} num_experts=${meta.experts} experts_per_token=${meta.k}`,
    "request,token,phase,layer,rank,expert,gate_weight",
  ];
  requests.forEach((tokens, q) =>
    tokens.forEach((layers, t) =>
      layers.forEach((experts, l) =>
        experts.forEach((e, r) => {
          lines.push(`${q},${t},decode,${l},${r},${e},${r === 0 ? 0.6 : 0.4}`);
        }),
      ),
    ),
  );
  return lines.join("\n") + "\n";
}

function assertInputError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof InputError, `expected an InputError, got ${String(error)}`);
    assert.match(error.message, pattern);
    return true;
  });
}

test("synthetic Mixtral-8x7B routing reproduces the published LRU hit rates (k = 1..4 of 8) within 0.05", () => {
  const published: Record<string, number> = { 1: 0.17, 2: 0.34, 3: 0.47, 4: 0.59 };
  for (const [k, expected] of Object.entries(published)) {
    const measured = mixtralStats.lruHitRate[k]!;
    assert.ok(Math.abs(measured - expected) <= 0.05, `k=${k}: measured ${measured.toFixed(3)}, published ${expected}`);
  }
  // And clearly above what independent uniform routing gives (k/8 for k >= 2, 1/8 for k = 1).
  assert.ok(mixtralStats.lruHitRate["2"]! > 0.25 + 0.05);
  assert.equal(mixtralStats.lruHitRatePerLayer["1"]!.length, 32);
});

test("synthetic Mixtral popularity is near uniform within the published ranges", () => {
  for (const [l, h] of mixtralStats.popularityEntropyBits.perLayer.entries()) {
    assert.ok(h >= 2.92 && h <= 3.0, `layer ${l}: entropy ${h.toFixed(3)} bits outside 2.92-3.00`);
  }
  for (const [l, share] of mixtralStats.topExpertShare.perLayer.entries()) {
    assert.ok(share >= 0.125 && share <= 0.199, `layer ${l}: top expert share ${share.toFixed(3)} outside 0.125-0.199`);
  }
  const mean = mixtralStats.topExpertShare.mean;
  assert.ok(mean >= 0.137 && mean <= 0.199, `mean top share ${mean}`);
  assert.equal(mixtralStats.maxEntropyBits, 3);
});

test("first-choice repetition is higher mid-stack than at layer 0, and the last layer sits between", () => {
  const rep = mixtralStats.repetitionRate.perLayer;
  const midStack = rep.slice(8, 24);
  const mid = midStack.reduce((a, b) => a + b, 0) / midStack.length;
  assert.ok(rep[0]! >= 0.11 && rep[0]! <= 0.18, `layer 0: ${rep[0]} (published ~0.14)`);
  assert.ok(mid >= 0.22 && mid <= 0.3, `mid-stack: ${mid} (published 0.24-0.28)`);
  assert.ok(rep[31]! >= 0.18 && rep[31]! <= 0.26, `last layer: ${rep[31]} (published 0.20-0.23)`);
  assert.ok(mid > rep[0]! + 0.05 && mid > rep[31]! && rep[31]! > rep[0]!);
  // Routing alone predicts the next layer better than popularity alone.
  assert.ok(mixtralStats.nextLayerPredictability.mean > mixtralStats.nextLayerBaseline.mean + 0.02);
});

test("synthetic traces are deterministic: same seed, same CSV bytes; another seed differs", () => {
  const a = routingTraceToCsv(synthRouting({ model: MIXTRAL, tokens: 50, requests: 2, seed: 3, promptTokens: 5 }));
  const b = routingTraceToCsv(synthRouting({ model: MIXTRAL, tokens: 50, requests: 2, seed: 3, promptTokens: 5 }));
  const c = routingTraceToCsv(synthRouting({ model: MIXTRAL, tokens: 50, requests: 2, seed: 4, promptTokens: 5 }));
  assert.equal(a, b);
  assert.notEqual(a, c);
  assert.equal(a.split("\n").length, 2 + 2 * 55 * 32 * 2 + 1);
});

test("synthetic traces are well formed for other MoE shapes (64 top-8, 60 top-4, 128 top-8)", () => {
  for (const model of [
    moeModel("olmoe-like", 16, 64, 8),
    moeModel("qwen-moe-like", 24, 60, 4),
    moeModel("qwen3-like", 6, 128, 8),
  ]) {
    const { numExperts: E, expertsPerToken: k } = model.moe!;
    const trace = synthRouting({ model, tokens: 400, seed: 1 });
    assert.equal(trace.meta.numExperts, E);
    for (let i = 0; i < trace.numTokens; i += 37) {
      for (let l = 0; l < model.numLayers; l++) {
        const experts = Array.from(expertsAt(trace, i, l));
        assert.equal(new Set(experts).size, k, `${model.name}: distinct experts`);
        assert.ok(experts.every((e) => e < E));
        const weights = Array.from(gateWeightsAt(trace, i, l));
        assert.ok(
          weights.every((w, r) => w >= 0 && w <= 1 && (r === 0 || w <= weights[r - 1]!)),
          "weights descend with rank",
        );
      }
    }
    const stats = routingStats(trace, { cacheSizes: [k, 2 * k, 4 * k] });
    const rates = [k, 2 * k, 4 * k].map((c) => stats.lruHitRate[String(c)]!);
    assert.ok(rates[0]! < rates[1]! && rates[1]! < rates[2]!, `${model.name}: hit rate grows with the cache: ${rates}`);
    assert.ok(rates[0]! > k / E, `${model.name}: LRU with k slots beats uniform (${rates[0]} vs ${k / E})`);
    assert.ok(stats.repetitionRate.mean > 1 / E, `${model.name}: repetition above random`);
  }
});

test("CSV round trip keeps every row, phase and weight", () => {
  const trace = synthRouting({ model: MIXTRAL, tokens: 20, requests: 3, seed: 11, promptTokens: 4 });
  const text = routingTraceToCsv(trace);
  const back = parseRoutingCsv(text, "t.csv");
  assert.deepEqual(back.meta, trace.meta);
  assert.deepEqual(back.experts, trace.experts);
  assert.deepEqual(back.phases, trace.phases);
  assert.deepEqual(back.tokens, trace.tokens);
  assert.deepEqual(back.requests, trace.requests);
  assert.deepEqual(back.gateWeights, trace.gateWeights);
  assert.equal(routingTraceToCsv(back), text);
  assert.equal(back.phases[0], PHASE_PREFILL);
  assert.equal(back.phases[4], PHASE_DECODE);
  // Rows in another order, without the metadata line (inferred), give the same trace.
  const [, header, ...rows] = text.trim().split("\n");
  const shuffled = [header, ...rows.reverse()].join("\n");
  const inferred = parseRoutingCsv(shuffled, "s.csv");
  assert.deepEqual(inferred.experts, trace.experts);
  assert.equal(inferred.meta.numLayers, 32);
  // Written atomically to a file and read back through format detection.
  const path = join(root, "round.csv");
  writeFileSync(path, text);
  assert.deepEqual(readRoutingTrace(path).experts, trace.experts);
});

test("CSV errors name the file, line, column and what was expected", () => {
  const good = handCsv([[[[0, 1]], [[1, 2]]]], { layers: 1, experts: 4, k: 2 });
  const lines = good.trim().split("\n");
  const edit = (lineNo: number, replacement: string) =>
    lines.map((l, i) => (i === lineNo - 1 ? replacement : l)).join("\n");
  assert.equal(parseRoutingCsv(good, "ok.csv").numTokens, 2);
  assertInputError(
    () => parseRoutingCsv(edit(4, "0,0,decode,0,1,9,0.4"), "bad.csv"),
    /^bad\.csv: line 4, column expert: expected an integer 0\.\.3 \(4 experts\), got 9/,
  );
  assertInputError(
    () => parseRoutingCsv(edit(4, "0,0,decode,0,1,0,0.4"), "dup.csv"),
    /^dup\.csv: line 4, column expert: expert 0 is chosen twice .*line 3/,
  );
  assertInputError(
    () => parseRoutingCsv(edit(5, "0,1,generate,0,0,1,0.6"), "phase.csv"),
    /^phase\.csv: line 5, column phase: expected "prefill" or "decode", got "generate"/,
  );
  assertInputError(
    () => parseRoutingCsv(edit(2, "request,token,phase,layer,rank,expert"), "cols.csv"),
    /^cols\.csv: line 2, header: missing column "gate_weight"/,
  );
  assertInputError(
    () => parseRoutingCsv(edit(3, "0,0,decode,0,0,0,1.5"), "w.csv"),
    /line 3, column gate_weight: expected a number in \[0, 1\], got "1\.5"/,
  );
  assertInputError(
    () => parseRoutingCsv(edit(3, "0,0,decode,0,2,0,0.5"), "r.csv"),
    /line 3, column rank: expected an integer 0\.\.1 \(top-2 routing\), got 2/,
  );
  assertInputError(
    () => parseRoutingCsv(edit(3, "0,x,decode,0,0,0,0.5"), "t.csv"),
    /line 3, column token: expected a non-negative integer, got "x"/,
  );
  assertInputError(() => parseRoutingCsv(edit(3, "0,0,decode,0,0,0"), "n.csv"), /line 3: expected 7 values/);
  assertInputError(
    () => parseRoutingCsv(lines.filter((_, i) => i !== 3).join("\n"), "missing.csv"),
    /request 0 token 0 .*no row for layer 0 rank 1/,
  );
  assertInputError(
    () => parseRoutingCsv(edit(5, "0,1,prefill,0,0,1,0.6"), "mixed.csv"),
    /^mixed\.csv: line 6, column phase: request 0 token 1 was prefill on line 5; expected one phase per token/,
  );
});

test("Megatron-style JSONL: round trip, format detection and line-numbered errors", () => {
  const trace = synthRouting({ model: MIXTRAL, tokens: 10, requests: 2, seed: 5, promptTokens: 3 });
  const jsonl = routingTraceToJsonl(trace);
  const back = parseMegatronJsonl(jsonl, "t.jsonl", {
    model: "mixtral-8x7b",
    numLayers: 32,
    numExperts: 8,
    expertsPerToken: 2,
  });
  assert.deepEqual(back.experts, trace.experts);
  assert.deepEqual(back.gateWeights, trace.gateWeights);
  assert.deepEqual(back.phases, trace.phases);
  assert.deepEqual(back.tokens, trace.tokens);
  assert.equal(detectRoutingFormat("x.jsonl", ""), "megatron-jsonl");
  assert.equal(detectRoutingFormat("trace.txt", '  {"step": 0}'), "megatron-jsonl");
  assert.equal(detectRoutingFormat("trace.txt", "request,token"), "csv");

  // The documented minimal shape: no request, phase or weights; steps out of order.
  const minimal = [
    '{"step": 1, "layer": 0, "topk_indices": [[3, 1]]}',
    '{"step": 0, "layer": 0, "topk_indices": [[1, 5], [0, 2]], "iteration": 9}',
    "",
    '{"step": 0, "layer": 1, "topk_indices": [[4, 5], [6, 7]], "topk_probs": [[0.5, 0.5], [0.9, 0.1]]}',
    '{"step": 1, "layer": 1, "topk_indices": [[2, 0]]}',
  ].join("\n");
  const parsed = parseMegatronJsonl(minimal, "m.jsonl");
  assert.equal(parsed.numTokens, 3);
  assert.deepEqual(Array.from(expertsAt(parsed, 2, 0)), [3, 1]);
  assert.deepEqual(Array.from(expertsAt(parsed, 1, 1)), [6, 7]);
  assert.deepEqual(Array.from(parsed.phases), [PHASE_PREFILL, PHASE_PREFILL, PHASE_DECODE]);
  assert.equal(parsed.gateWeights[2 * 2 + 0], 0.5); // token 1, layer 0 had no weights: 1/k
  assert.ok(Math.abs(gateWeightsAt(parsed, 1, 1)[0]! - 0.9) < 1e-6);

  assertInputError(
    () => parseMegatronJsonl('{"step": 0, "layer": 0, "topk_indices": [[1, 1]]}', "d.jsonl"),
    /^d\.jsonl: line 1, topk_indices: expert 1 is chosen twice/,
  );
  assertInputError(
    () =>
      parseMegatronJsonl(
        '{"step": 0, "layer": 0, "topk_indices": [[1, 2]]}\n{"step": 0, "layer": 1, "topk_indices": [[1, 2, 3]]}',
        "k.jsonl",
      ),
    /^k\.jsonl: line 2, topk_indices\[0\]: expected 2 experts \(top-2, as on line 1\), got 3/,
  );
  assertInputError(
    () => parseMegatronJsonl('{"step": 0, "layer": 0, "topk_indices": [[1, 9]]}', "e.jsonl", { numExperts: 8 }),
    /line 1, topk_indices\[0\]\[1\]: expected an expert index 0\.\.7, got the number 9/,
  );
  assertInputError(
    () => parseMegatronJsonl('{"step": 0, "layer": 0, "topk_indices": [[1, 2]]}\n{"step": 0, "layer": 0', "j.jsonl"),
    /^j\.jsonl: line 2: not valid JSON/,
  );
  assertInputError(
    () => parseMegatronJsonl('{"layer": 0, "topk_indices": [[1, 2]]}', "s.jsonl"),
    /line 1, step: expected an integer >= 0, got nothing/,
  );
  assertInputError(
    () =>
      parseMegatronJsonl('{"step": 0, "layer": 0, "topk_indices": [[1, 2]], "topk_weights": [[0.5, 2]]}', "w.jsonl"),
    /line 1, topk_weights\[0\]\[1\]: expected a number in \[0, 1\]/,
  );
  assertInputError(
    () =>
      parseMegatronJsonl(
        '{"step": 0, "layer": 0, "topk_indices": [[1, 2]]}\n{"step": 0, "layer": 1, "topk_indices": [[1, 2], [3, 4]]}',
        "c.jsonl",
      ),
    /line 2, topk_indices: request 0 step 0 has 1 tokens on line 1/,
  );
});

test("LRU hit counting follows the Mixtral-offloading definition on a hand-made trace", () => {
  // One layer, 4 experts, top-2; tokens {0,1} {1,2} {0,3} {2,3} {0,2}. Hand-computed (experts looked up
  // against the cache before the step, hits promoted, misses loaded in ascending order):
  //   k=1: slot after each token 1 | 2 | 3 | 2 | 0; hits 0+1+0+1+1 = 3 of 10
  //   k=2: [0,1] | [1,2] | [0,3] | [3,2] | [2,0]; hits 0+1+0+1+1 = 3 of 10
  //   k=3: [0,1] | [0,1,2] | [2,0,3] | [0,2,3] | [3,0,2]; hits 0+1+1+2+2 = 6 of 10
  const trace = parseRoutingCsv(
    handCsv([[[[0, 1]], [[2, 1]], [[3, 0]], [[2, 3]], [[0, 2]]]], { layers: 1, experts: 4, k: 2 }),
    "hand.csv",
  );
  assert.deepEqual(lruCounts(trace, 1), [{ hits: 3, lookups: 10 }]);
  assert.deepEqual(lruCounts(trace, 2), [{ hits: 3, lookups: 10 }]);
  assert.deepEqual(lruCounts(trace, 3), [{ hits: 6, lookups: 10 }]);
  assert.deepEqual(lruCounts(trace, 4), [{ hits: 6, lookups: 10 }]);
  assert.equal(routingStats(trace, { cacheSizes: [3] }).lruHitRate["3"], 0.6);

  // One slot, top-2: a hit is counted even though the token's miss then evicts it; with two misses the
  // slot ends holding the larger index. (Looking experts up one at a time would count token {2,3}
  // after slot 3 as two misses.)
  const cache = new ExpertLruCache(1);
  const scratch = new Int32Array(4);
  assert.equal(cache.step([2, 5], scratch), 0);
  assert.deepEqual(cache.contents(), [5]);
  assert.equal(cache.step([3, 5], scratch), 1);
  assert.deepEqual(cache.contents(), [3]);
  const three = new ExpertLruCache(3);
  three.step([0, 1], scratch);
  three.step([2, 7], scratch); // evicts 0, the least recently used
  assert.deepEqual(three.contents(), [1, 2, 7]);
  assert.equal(three.step([1, 4], scratch), 1);
  assert.deepEqual(three.contents(), [7, 1, 4]);
});

test("LRU caches start empty for each request, and prefill warms them without being counted", () => {
  // Two requests of tokens {0,1} {0,1}: k=2 gives 0 + 2 hits per request (not 2 + 2 if the cache carried over).
  const twoRequests = parseRoutingCsv(
    handCsv(
      [
        [[[0, 1]], [[0, 1]]],
        [[[1, 0]], [[0, 1]]],
      ],
      { layers: 1, experts: 4, k: 2 },
    ),
    "two.csv",
  );
  assert.deepEqual(lruCounts(twoRequests, 2), [{ hits: 4, lookups: 8 }]);
  // A prefill block {0,1},{2,3} (one batched step over 0,1,2,3 with 2 slots: ends holding 2,3), then decode {2,3}.
  const csv = [
    "request,token,phase,layer,rank,expert,gate_weight",
    "0,0,prefill,0,0,0,0.5",
    "0,0,prefill,0,1,1,0.5",
    "0,1,prefill,0,0,2,0.5",
    "0,1,prefill,0,1,3,0.5",
    "0,2,decode,0,0,3,0.5",
    "0,2,decode,0,1,2,0.5",
  ].join("\n");
  const withPrefill = parseRoutingCsv(csv, "p.csv", { numExperts: 4 });
  assert.deepEqual(lruCounts(withPrefill, 2), [{ hits: 2, lookups: 2 }]);
  assert.deepEqual(lruCounts(withPrefill, 2, { countPrefill: true }), [{ hits: 2, lookups: 6 }]);
  assert.equal(lruHitRates(withPrefill, 1).mean, 0.5);
});

test("next-layer predictability and repetition on hand-made traces", () => {
  // Layer 1's experts are a fixed function of layer 0's first choice: perfectly predictable.
  const map: Record<number, [number, number]> = { 0: [2, 3], 1: [3, 0], 2: [1, 0], 3: [0, 2] };
  const tokens: number[][][] = [];
  for (let t = 0; t < 40; t++) {
    const first = (t * 7) % 4;
    tokens.push([[first, (first + 1) % 4], map[first]!]);
  }
  const trace: RoutingTrace = parseRoutingCsv(handCsv([tokens], { layers: 2, experts: 4, k: 2 }), "p.csv");
  const stats = routingStats(trace, { cacheSizes: [1] });
  assert.equal(stats.nextLayerPredictability.perLayer.length, 1);
  assert.equal(stats.nextLayerPredictability.mean, 1);
  assert.ok(stats.nextLayerBaseline.mean < 1);
  // First choices 0,3,2,1,0,... never repeat at layer 0; layer 1 first choices 2,0,1,3,... never either.
  assert.deepEqual(stats.repetitionRate.perLayer, [0, 0]);
  // Each of 4 experts chosen equally often at layer 0: entropy exactly 2 bits, top share 1/4.
  assert.equal(stats.popularityEntropyBits.perLayer[0], 2);
  assert.equal(stats.topExpertShare.perLayer[0], 0.25);
});

test("CLI: trace synth writes a CSV and trace stats --json reports hit rates keyed by cache size", () => {
  const out = join(root, "cli.csv");
  const synth = runCli([
    "trace",
    "synth",
    "--model",
    "mixtral-8x7b",
    "--tokens",
    "300",
    "--requests",
    "2",
    "--seed",
    "9",
    "--out",
    out,
    "--json",
  ]);
  assert.equal(synth.status, 0, synth.stderr);
  assert.equal(JSON.parse(synth.stdout).rows, 2 * 300 * 32 * 2);
  assert.equal(
    readFileSync(out, "utf8"),
    routingTraceToCsv(synthRouting({ model: MIXTRAL, tokens: 300, requests: 2, seed: 9 })),
  );
  const stats = runCli(["trace", "stats", out, "--cache", "1,2,3,4", "--json"]);
  assert.equal(stats.status, 0, stats.stderr);
  const json = JSON.parse(stats.stdout);
  assert.deepEqual(Object.keys(json.lruHitRate), ["1", "2", "3", "4"]);
  assert.ok(json.lruHitRate["1"] < json.lruHitRate["4"]);
  assert.equal(typeof json.popularityEntropyBits.mean, "number");
  assert.equal(json.repetitionRate.perLayer.length, 32);
  assert.equal(json.nextLayerPredictability.perLayer.length, 31);
  const table = runCli(["trace", "stats", out]);
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, /LRU hit rate \(mean over layers\): k=1 0\.\d{3}/);
  const jsonl = join(root, "cli.jsonl");
  const convert = runCli(["trace", "convert", out, "--out", jsonl]);
  assert.equal(convert.status, 0, convert.stderr);
  assert.deepEqual(
    readRoutingTrace(jsonl, { given: { numLayers: 32, numExperts: 8, expertsPerToken: 2 } }).experts,
    readRoutingTrace(out).experts,
  );
});

test("CLI: trace errors exit 2 and name the flag or file", () => {
  const dense = runCli(["trace", "synth", "--model", "opt-125m", "--tokens", "10", "--out", join(root, "x.csv")]);
  assert.equal(dense.status, 2);
  assert.match(dense.stderr, /--model: opt-125m is not a Mixture-of-Experts model; .*mixtral-8x7b/);
  const tokens = runCli(["trace", "synth", "--model", "mixtral-8x7b", "--tokens", "ten", "--out", join(root, "x.csv")]);
  assert.equal(tokens.status, 2);
  assert.match(tokens.stderr, /--tokens: expected an integer >= 1, got "ten"/);
  const missing = runCli(["trace", "stats", join(root, "nope.csv")]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /nope\.csv: no such file/);
  const bad = join(root, "bad.csv");
  writeFileSync(bad, handCsv([[[[0, 1]]]], { layers: 1, experts: 4, k: 2 }));
  const cache = runCli(["trace", "stats", bad, "--cache", "1,9"]);
  assert.equal(cache.status, 2);
  assert.match(cache.stderr, /--cache: expected comma-separated integers 1\.\.4 .*got "9"/);
});
