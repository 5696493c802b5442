/** The prompts every run feeds its model: seeded token ids, the same on every machine. */
import { mulberry32 } from "../core/random.js";

/** Deterministic prompts: token ids in [2, vocab) from a seeded generator, one row per sequence. */
export function syntheticPrompts(sequences: number, promptLen: number, vocab: number, seed: number): Int32Array {
  const next = mulberry32(seed);
  const ids = new Int32Array(sequences * promptLen);
  for (let i = 0; i < ids.length; i++) ids[i] = 2 + Math.floor(next() * (vocab - 2));
  return ids;
}
