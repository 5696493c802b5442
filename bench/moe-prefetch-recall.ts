/**
 * `npm run bench:moe-prefetch`: how well the MoE runtime's prefetchers guess, on the synthetic tiny
 * Mixtral checkpoints (runtime/moe/synth-mixtral-weights.ts, standard and pre-gated, seed 7), per policy:
 * the guesses' recall (guessed and used / used) and precision (guessed and used / guessed), the share
 * of cache misses a prefetch covered, the hit rate, and for comparison the statistical co-occurrence
 * predictor's recall on the same routing (the replay of the run's trace without its recorded guesses).
 * Counts, not timings; each run also checks its tokens against the all-resident reference.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ExpertPolicy, plainExpertPolicy } from "../core/expert-policy.js";
import { resolveHardware } from "../core/resolve-hardware.js";
import { moePolicy } from "../planner/moe/moe-search.js";
import { uniformRoutingProfile } from "../planner/moe/routing-profile.js";
import { runMoe } from "../runtime/moe/moe-runner.js";
import { synthesizeMixtralWeights, tinyMixtralSpec } from "../runtime/moe/synth-mixtral-weights.js";
import { decodeRouting } from "../simulator/decode-routing.js";
import { replayMoePlan } from "../simulator/moe-replay.js";

const spec = tinyMixtralSpec();
const PROMPT_LEN = 8;
const GEN_LEN = 48;
const base = plainExpertPolicy({ cacheSize: 2 });
const cases: Array<{ label: string; checkpoint: "standard" | "pre-gated"; batch: number; x: Partial<ExpertPolicy> }> = [
  { label: "speculative m=2 a=1", checkpoint: "standard", batch: 1, x: { prefetchExperts: 2 } },
  { label: "speculative m=4 a=1", checkpoint: "standard", batch: 1, x: { prefetchExperts: 4 } },
  { label: "speculative m=2 a=2", checkpoint: "standard", batch: 1, x: { prefetchExperts: 2, prefetchLayers: 2 } },
  { label: "speculative m=2 a=3", checkpoint: "standard", batch: 1, x: { prefetchExperts: 2, prefetchLayers: 3 } },
  { label: "speculative m=4 a=1, batch 4", checkpoint: "standard", batch: 4, x: { prefetchExperts: 4 } },
  { label: "pre-gated", checkpoint: "pre-gated", batch: 1, x: { pregated: true } },
  { label: "pre-gated, batch 4", checkpoint: "pre-gated", batch: 4, x: { pregated: true } },
  { label: "speculative m=2 a=1 on pre-gated", checkpoint: "pre-gated", batch: 1, x: { prefetchExperts: 2 } },
];

const root = mkdtempSync(join(tmpdir(), "spillway-moe-prefetch-"));
try {
  for (const checkpoint of ["standard", "pre-gated"] as const)
    synthesizeMixtralWeights(spec, join(root, checkpoint), 7, { preGated: checkpoint === "pre-gated" });
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`.padStart(7);
  console.log(
    `MoE prefetch on synthetic ${spec.name} (${spec.numLayers} layers, ${spec.moe!.numExperts} experts top-${spec.moe!.expertsPerToken}, seed 7), cache 2 LRU, prompt ${PROMPT_LEN}, ${GEN_LEN} tokens`,
  );
  console.log(
    `${"policy".padEnd(46)} ${"recall".padStart(7)} ${"precis.".padStart(7)} ${"miss cov".padStart(8)} ${"hit rate".padStart(8)} ${"statistical recall".padStart(19)}  tokens`,
  );
  for (const c of cases) {
    const x = { ...base, ...c.x };
    for (const seed of [1, 2, 3]) {
      const r = await runMoe({
        weightsDir: join(root, c.checkpoint),
        policy: { ...x, batch: c.batch },
        promptLen: PROMPT_LEN,
        genLen: GEN_LEN,
        seed,
      });
      const { guesses: _recorded, ...withoutGuesses } = r.routing;
      const statistical = x.pregated
        ? undefined
        : replayMoePlan(
            spec,
            resolveHardware("t4"),
            { promptLen: PROMPT_LEN, genLen: GEN_LEN },
            moePolicy(spec, c.batch, x, false),
            decodeRouting(withoutGuesses),
            "the run's routing without its guesses",
            uniformRoutingProfile(spec.moe!),
          ).experts;
      const e = r.experts;
      const missed = e.lookups - e.hits;
      console.log(
        `${`${c.label}, prompt seed ${seed}`.padEnd(46)} ${pct(e.guessRecall)} ${pct(e.guessPrecision)} ${pct(missed > 0 ? e.prefetchUsed / missed : 0).padStart(8)} ${pct(e.hitRate).padStart(8)} ${(statistical ? pct(statistical.guessRecall) : "-").padStart(19)}  ${r.matchesReference ? "match" : "DIFFER"}`,
      );
    }
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
