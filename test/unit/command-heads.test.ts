/**
 * The one-line descriptions `spillway --help` lists agree with what the commands do: synth-weights writes
 * Mixtral and Qwen2-MoE checkpoints as well as OPT ones (runtime/synthetic-*; its --model help says so).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { COMMAND_HEADS } from "../../cli/command-heads.js";

test("synth-weights' description names every family it writes, not OPT alone", () => {
  const describe = COMMAND_HEADS["synth-weights"].describe;
  for (const family of ["OPT", "Mixtral", "Qwen2-MoE"])
    assert.match(describe, new RegExp(`\\b${family}\\b`), `${family} missing from: ${describe}`);
});
