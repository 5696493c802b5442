/**
 * Every step FlexGen runs for one block, grouped: steps with the same operations are one EngineStep
 * with a count. Decode tokens differ by context length, so each token has its own steps (tokens are
 * grouped into MAX_TOKEN_GROUPS groups of consecutive tokens costed at their middle token for long
 * generations). With the benchmark's `--debug-mode fewer_batch` protocol
 * (`generation_loop_debug_multi_batch` / `_single_batch`), decode is what FlexGen reports: it times the
 * first 20 decode sub-layer steps (all GPU batches of one sub-layer each), drops the first 10, and
 * projects (gen_len - 1) x (number of sub-layers) x their mean; so the decode steps are those ten, each
 * counted (gen_len - 1) x sub-layers / 10 times.
 */
import type { EngineStep } from "../engine-model.js";
import { type FlexgenSetup, subLayerKindAt } from "./setup.js";
import { flexgenStep } from "./step-operations.js";

export const MAX_TOKEN_GROUPS = 128;
/** `execute_num_batches` and the warm-up steps dropped (`costs[10:]`) in flex_opt.py's debug loops. */
export const FEWER_BATCH_TIMED_STEPS = 20;
export const FEWER_BATCH_WARMUP_STEPS = 10;

function signature(setup: FlexgenSetup, i: number, j: number, k: number): string {
  const kind = (x: number) => (x >= 0 && x < setup.numSubLayers ? subLayerKindAt(setup, x) : "none");
  const nextJ = j + 1 < setup.numSubLayers ? kind(j + 1) : i + 1 < setup.n ? "inputEmbed" : "none";
  return `${kind(j)}|${nextJ}|${kind(j - 1)}|${k === 0}|${k === setup.nb - 1}`;
}

/** The steps of token i (all sub-layers and batches), grouped by signature, each count times `weight`. */
function tokenSteps(setup: FlexgenSetup, i: number, weight: number): EngineStep[] {
  const groups = new Map<string, { j: number; k: number; count: number }>();
  for (let j = 0; j < setup.numSubLayers; j++) {
    for (let k = 0; k < setup.nb; k++) {
      const key = signature(setup, i, j, k);
      const g = groups.get(key);
      if (g) g.count++;
      else groups.set(key, { j, k, count: 1 });
    }
  }
  return [...groups.values()].map((g) => ({ ...flexgenStep(setup, i, g.j, g.k), count: g.count * weight }));
}

/** Decode tokens 1 .. n-1 as groups of consecutive tokens: [representative token, tokens in the group]. */
function decodeTokenGroups(n: number): [number, number][] {
  const tokens = n - 1;
  if (tokens <= 0) return [];
  const groups = Math.min(tokens, MAX_TOKEN_GROUPS);
  const out: [number, number][] = [];
  for (let g = 0; g < groups; g++) {
    const first = 1 + Math.floor((g * tokens) / groups);
    const last = Math.floor(((g + 1) * tokens) / groups);
    out.push([Math.round((first + last) / 2), last - first + 1]);
  }
  return out;
}

export function flexgenSchedule(setup: FlexgenSetup, fewerBatch: boolean): EngineStep[] {
  const steps = tokenSteps(setup, 0, 1);
  if (!fewerBatch) {
    for (const [i, count] of decodeTokenGroups(setup.n)) steps.push(...tokenSteps(setup, i, count));
    return steps;
  }
  if (setup.n <= 1) return steps;
  const weight = ((setup.n - 1) * setup.numSubLayers) / (FEWER_BATCH_TIMED_STEPS - FEWER_BATCH_WARMUP_STEPS);
  for (let t = FEWER_BATCH_WARMUP_STEPS; t < FEWER_BATCH_TIMED_STEPS; t++) {
    const i = 1 + Math.floor(t / setup.numSubLayers);
    const j = t % setup.numSubLayers;
    for (let k = 0; k < setup.nb; k++)
      steps.push({ ...flexgenStep(setup, Math.min(i, setup.n - 1), j, k), count: weight });
  }
  return steps;
}
