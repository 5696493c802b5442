/**
 * The engine models by name: one registration per line. `engineModel(name)` is how every command
 * reaches one; `--engine` choices come from ENGINE_NAMES (engines/engine-names.ts).
 */
import { accelerateEngine } from "./accelerate.js";
import { deepspeedEngine } from "./deepspeed.js";
import type { EngineModel } from "./engine-model.js";
import type { EngineName } from "./engine-names.js";
import { spillwayEngine } from "./spillway.js";

// biome-ignore format: one registration per line
const ENGINES: Partial<Record<EngineName, EngineModel>> = {
  spillway: spillwayEngine,
  accelerate: accelerateEngine,
  deepspeed: deepspeedEngine,
};

export function engineModel(name: EngineName): EngineModel {
  const engine = ENGINES[name];
  if (!engine) throw new Error(`no model of the ${name} engine is registered (engines/engines.ts)`);
  return engine;
}
