/** The engines Spillway models (`--engine`). `spillway` is Spillway's own runtime, the default. */
export const ENGINE_NAMES = [
  "spillway",
  "flexgen",
  "llama.cpp",
  "mixtral-offloading",
  "accelerate",
  "deepspeed",
] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];
