/** `spillway synth-weights --model opt-125m --out DIR [--seed N] [--json]`: write a seeded synthetic OPT checkpoint. */
import { basename } from "node:path";
import { formatBytes } from "../core/units.js";
import { resolveModel } from "../models/resolve-model.js";
import { MAX_SEED, synthesizeOptWeights } from "../runtime/synth-weights.js";
import { parseNumberFlag } from "./parse-flags.js";

export interface SynthWeightsArgs {
  readonly model: string;
  readonly out: string;
  readonly seed: string | undefined;
  readonly json: boolean;
  /** Print no text but errors (--json still prints). */
  readonly quiet?: boolean;
}

export function runSynthWeights(argv: SynthWeightsArgs): void {
  const model = resolveModel(argv.model);
  const seed = parseNumberFlag("seed", argv.seed, { min: 0, max: MAX_SEED, integer: true }) ?? 0;
  // synthesizeOptWeights creates the folder (reporting failure against --out) after checking the model.
  const result = synthesizeOptWeights(model, argv.out, { seed });
  if (argv.json) {
    process.stdout.write(JSON.stringify({ model: model.name, dir: argv.out, files: result.files, bytes: result.bytes, seed }, null, 2) + "\n");
    return;
  }
  if (argv.quiet) return;
  const names = result.files.map((f) => basename(f));
  process.stdout.write(`Wrote ${model.name} weights (seed ${seed}) to ${argv.out}: ${names.length} files, ${formatBytes(result.bytes)} (${summarizeNames(names)})\n`);
}

/** "model.safetensors, config.json", or for many shards "model-00001-of-00090.safetensors ... config.json". */
function summarizeNames(names: readonly string[]): string {
  if (names.length <= 4) return names.join(", ");
  return `${names[0]} … ${names[names.length - 1]}`;
}
