/**
 * The recorded time of FlexGen's own policy search, the reference the bench's search ratio is taken
 * against. FlexGen's cost model (Python, PuLP and CBC) cannot run here: no PyPI, so it is not re-run
 * by the bench; this record says what was measured, where and how.
 */
export const FLEXGEN_SEARCH_REFERENCE = {
  /** The low end of the range measured, so the ratio printed is the less flattering one. */
  seconds: 7.8,
  range: "7.8-8.4 s",
  what: "FlexGen's experimental/cost_model.py search (PuLP + CBC, ~1,071 LPs), OPT-175B, T4 constants, prompt 512, gen 32",
  where:
    "issue 17: run side by side with Spillway's FlexGen-compatible search (then 200-260 ms cold) on the reporter's idle machine",
} as const;
