/**
 * `spillway synth-weights --model opt-125m --out DIR [--seed N] [--json]`: write a seeded synthetic
 * checkpoint: OPT, or a Mixture-of-Experts model of a family the runtime runs (Mixtral, Qwen2-MoE);
 * with `--pregated`, a pre-gated Mixtral-family one (runtime/moe/pre-gated.ts).
 */
import { basename } from "node:path";
import { formatBytes } from "../core/units.js";
import { resolveModel } from "../models/resolve-model.js";
import { synthesizeMoeWeights } from "../runtime/moe/synth-moe-weights.js";
import { synthesizePreGatedWeights } from "../runtime/moe/synth-pre-gated.js";
import { MAX_SEED, synthesizeOptWeights } from "../runtime/synth-weights.js";
import { commandHead } from "./command-heads.js";
import { defineCommand } from "./command-module.js";
import { withProgressSync } from "./command-progress.js";
import { parseNumberFlag } from "./parse-flags.js";
import { EXIT_CODES_EPILOG, progressHelp } from "./terminal.js";

export interface SynthWeightsArgs {
  readonly model: string;
  readonly out: string;
  readonly seed: string | undefined;
  readonly json: boolean;
  /** Print no text but errors (--json still prints). */
  readonly quiet?: boolean;
  /** A pre-gated Mixtral-family checkpoint (`--pregated`). */
  readonly pregated?: boolean;
}

export function runSynthWeights(argv: SynthWeightsArgs): void {
  const model = resolveModel(argv.model);
  const seed = parseNumberFlag("seed", argv.seed, { min: 0, max: MAX_SEED, integer: true }) ?? 0;
  // synthesizeOptWeights creates the folder (reporting failure against --out) after checking the model.
  // Progress (bytes of tensor data written) on stderr, nothing with --quiet.
  const result = argv.pregated
    ? synthesizePreGatedWeights(model, argv.out, seed)
    : withProgressSync({ quiet: Boolean(argv.quiet) }, (onProgress) =>
        model.moe
          ? synthesizeMoeWeights(model, argv.out, { seed, onProgress })
          : synthesizeOptWeights(model, argv.out, { seed, onProgress }),
      );
  if (argv.json) {
    const summary = { model: model.name, dir: argv.out, files: result.files, bytes: result.bytes, seed };
    process.stdout.write(`${JSON.stringify(argv.pregated ? { ...summary, pregated: true } : summary, null, 2)}\n`);
    return;
  }
  if (argv.quiet) return;
  const names = result.files.map((f) => basename(f));
  process.stdout.write(
    `Wrote ${model.name}${argv.pregated ? " pre-gated" : ""} weights (seed ${seed}) to ${argv.out}: ${names.length} files, ${formatBytes(result.bytes)} (${summarizeNames(names)})\n`,
  );
}

/** "model.safetensors, config.json", or for many shards "model-00001-of-00090.safetensors ... config.json". */
function summarizeNames(names: readonly string[]): string {
  if (names.length <= 4) return names.join(", ");
  return `${names[0]} … ${names[names.length - 1]}`;
}

export const synthWeightsCommand = defineCommand({
  ...commandHead("synth-weights"),
  builder: (y) =>
    y
      .option("model", {
        type: "string",
        demandOption: true,
        describe: "a catalogue name or config.json: OPT, or a Mixtral / Qwen2-MoE model (mixtral-tiny, qwen2-moe-tiny)",
      })
      .option("out", { type: "string", demandOption: true, describe: "output folder" })
      .option("seed", { type: "string", describe: "random seed (default 0)" })
      .option("pregated", {
        type: "boolean",
        default: false,
        describe:
          'a pre-gated Mixtral-family checkpoint: layer l holds layer l+1\'s router (block_sparse_moe.pre_gate), config.json "pre_gated": true; what a policy with pregated runs on',
      })
      .option("json", { type: "boolean", default: false, describe: "print a JSON summary of the files written" })
      .option("quiet", {
        type: "boolean",
        default: false,
        describe: "no progress and no text but errors (--json still prints)",
      })
      .epilog(`${progressHelp("bytes of tensor data written")}\n\n${EXIT_CODES_EPILOG}`)
      .example("$0 synth-weights --model opt-125m --out weights/opt-125m", "about 250 MB")
      .example(
        "$0 synth-weights --model mixtral-tiny --out w",
        "a tiny Mixtral (8 experts, top-2) for spillway run/compare",
      ),
  handler: (argv) => runSynthWeights(argv),
});
