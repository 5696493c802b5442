/**
 * The engine models by name: one registration per line. `engineModel(name)` is how every command
 * reaches one; `--engine` choices come from ENGINE_NAMES (engines/engine-names.ts).
 */
import { accelerateEngine } from "./accelerate.js";
import { deepspeedEngine } from "./deepspeed.js";
import type { EngineModel } from "./engine-model.js";
import type { EngineName } from "./engine-names.js";
import { flexgenEngine } from "./flexgen.js";
import { llamaCppEngine } from "./llama-cpp.js";
import { mixtralOffloadingEngine } from "./mixtral-offloading.js";
import { spillwayEngine } from "./spillway.js";

// biome-ignore format: one registration per line
const ENGINES: Readonly<Record<EngineName, EngineModel>> = {
  spillway: spillwayEngine,
  flexgen: flexgenEngine,
  "mixtral-offloading": mixtralOffloadingEngine,
  "llama.cpp": llamaCppEngine,
  accelerate: accelerateEngine,
  deepspeed: deepspeedEngine,
};

export function engineModel(name: EngineName): EngineModel {
  return ENGINES[name];
}
