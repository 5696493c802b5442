import { existsSync } from "node:fs";
import { InputError } from "../core/input-error.js";
import type { ModelSpec } from "../core/model-spec.js";
import { parseModelSpec } from "../core/parse-model-spec.js";
import { readJsonFile } from "../core/read-json-file.js";
import { findCatalogueModel, MODEL_CATALOGUE } from "./catalogue.js";
import { modelSpecFromHfConfig } from "./hf-config.js";

/**
 * Resolves --model: a catalogue name, or the path of a JSON file that is either a Hugging Face
 * config.json (has "model_type") or a Spillway model spec; "-" reads standard input.
 */
export function resolveModel(nameOrPath: string): ModelSpec {
  const fromCatalogue = findCatalogueModel(nameOrPath);
  if (fromCatalogue) return fromCatalogue;
  const looksLikePath =
    nameOrPath === "-" || nameOrPath.endsWith(".json") || nameOrPath.includes("/") || existsSync(nameOrPath);
  if (!looksLikePath) {
    throw new InputError(
      "--model",
      undefined,
      `unknown model ${JSON.stringify(nameOrPath)}; expected a catalogue name (${MODEL_CATALOGUE.map((m) => m.name).join(", ")}) or the path of a config.json`,
    );
  }
  let path = nameOrPath;
  if (existsSync(path) && !path.endsWith(".json") && existsSync(`${path}/config.json`)) path = `${path}/config.json`;
  const data = readJsonFile(path);
  const source = path === "-" ? "<stdin>" : path;
  if (typeof data === "object" && data !== null && "model_type" in data) return modelSpecFromHfConfig(data, source);
  if (typeof data === "object" && data !== null && !Array.isArray(data) && !("numLayers" in data))
    throw new InputError(
      source,
      undefined,
      "not a model: a Hugging Face config.json has a model_type field, and a Spillway model spec (spillway plan --json's modelSpec) a numLayers field; this JSON has neither",
    );
  return parseModelSpec(data, source);
}
