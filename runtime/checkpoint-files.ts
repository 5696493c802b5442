/**
 * A checkpoint folder's safetensors files in Hugging Face's layout (one file, or shards listed by
 * model.safetensors.index.json) and the check of every tensor a model needs against its config (present,
 * the config's shape, a floating-point dtype) before any weight is read. Shared by the dense (OPT) and
 * the Mixture-of-Experts checkpoints.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { asObject, type FieldContext, fail } from "../core/fields.js";
import { describeValue, InputError } from "../core/input-error.js";
import { readJsonFile } from "../core/read-json-file.js";
import { FLOAT_DTYPES, openSafetensors, type SafetensorsFile } from "./safetensors.js";

export const SINGLE_FILE_NAME = "model.safetensors";
export const SHARD_INDEX_NAME = "model.safetensors.index.json";
/** How many missing names an error lists before it just counts. */
const MISSING_NAMES_SHOWN = 5;

/** The folder's config.json, parsed (not yet checked): a folder without one is refused by name. */
export function readCheckpointConfig(dir: string): { readonly path: string; readonly data: unknown } {
  const path = join(dir, "config.json");
  if (!existsSync(dir)) throw new InputError(dir, undefined, "no such folder; expected a checkpoint folder");
  if (!statSync(dir).isDirectory())
    throw new InputError(
      dir,
      undefined,
      "not a folder; expected a checkpoint folder (config.json and safetensors files)",
    );
  if (!existsSync(path))
    throw new InputError(
      dir,
      undefined,
      "no config.json in this folder; a checkpoint folder needs the model's Hugging Face config.json",
    );
  return { path, data: readJsonFile(path) };
}

export interface LocatedTensor {
  readonly file: SafetensorsFile;
  readonly storedName: string;
}

/** name -> the file it is in, from the shard index or, without one, from every *.safetensors in dir. */
export type TensorDirectory = Map<string, SafetensorsFile>;

export function openCheckpointFiles(dir: string): TensorDirectory {
  const indexPath = join(dir, SHARD_INDEX_NAME);
  return existsSync(indexPath) ? openIndexedShards(dir, indexPath) : openAllSafetensors(dir);
}

function openAllSafetensors(dir: string): TensorDirectory {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError(
      dir,
      undefined,
      code === "ENOENT"
        ? "no such folder"
        : code === "ENOTDIR"
          ? "not a folder; expected a checkpoint folder"
          : (error as Error).message,
    );
  }
  const names = entries.filter((n) => n.endsWith(".safetensors")).sort();
  if (names.length === 0) {
    const pytorch = entries.some((n) => n.endsWith(".bin"))
      ? " (PyTorch .bin files are not read: convert them to safetensors)"
      : "";
    throw new InputError(
      dir,
      undefined,
      `no *.safetensors files; expected ${SINGLE_FILE_NAME} or shards with ${SHARD_INDEX_NAME}${pytorch}`,
    );
  }
  const directory: TensorDirectory = new Map();
  try {
    for (const name of names) {
      const file = openSafetensors(join(dir, name));
      for (const tensor of file.names()) {
        const other = directory.get(tensor);
        if (other) {
          file.close();
          throw new InputError(file.path, `tensor ${tensor}`, `also in ${other.path}; which one is meant is ambiguous`);
        }
        directory.set(tensor, file);
      }
      if (file.names().length === 0) file.close();
    }
  } catch (error) {
    closeCheckpointFiles(directory);
    throw error;
  }
  return directory;
}

function openIndexedShards(dir: string, indexPath: string): TensorDirectory {
  const ctx: FieldContext = { source: indexPath, path: "" };
  const index = asObject(readJsonFile(indexPath), ctx);
  const weightMap = asObject(index.weight_map, { source: indexPath, path: "weight_map" });
  const shards = new Map<string, SafetensorsFile>();
  const directory: TensorDirectory = new Map();
  try {
    for (const [tensor, shardName] of Object.entries(weightMap)) {
      if (typeof shardName !== "string" || shardName === "" || shardName.includes("/") || shardName.includes("\\")) {
        fail(
          { source: indexPath, path: "weight_map" },
          tensor,
          `expected a shard file name in this folder, got ${describeValue(shardName)}`,
        );
      }
      let shard = shards.get(shardName);
      if (!shard) {
        const shardPath = join(dir, shardName);
        if (!existsSync(shardPath))
          fail({ source: indexPath, path: "weight_map" }, tensor, `shard ${shardName} does not exist in ${dir}`);
        shard = openSafetensors(shardPath);
        shards.set(shardName, shard);
      }
      if (!shard.has(tensor))
        fail(
          { source: indexPath, path: "weight_map" },
          tensor,
          `the index puts it in ${shardName}, which has no such tensor`,
        );
      directory.set(tensor, shard);
    }
  } catch (error) {
    for (const shard of shards.values()) shard.close();
    throw error;
  }
  return directory;
}

/** Closes every file of a directory once. */
export function closeCheckpointFiles(directory: TensorDirectory): void {
  for (const file of new Set(directory.values())) file.close();
}

/** A tensor a checkpoint must hold: its canonical name and the shape its config implies. */
export interface RequiredTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

/**
 * Finds each required tensor (under its canonical name or, when given, the name `alternative` maps it
 * to), checking shape and dtype: a wrong shape names the file, the tensor and both shapes; missing
 * tensors are listed (the first few) against the model's name.
 */
export function locateTensors(
  dir: string,
  modelName: string,
  required: readonly RequiredTensor[],
  directory: TensorDirectory,
  alternative: (name: string) => string = (name) => name,
): Map<string, LocatedTensor> {
  const located = new Map<string, LocatedTensor>();
  const missing: string[] = [];
  for (const { name, shape } of required) {
    const storedName = directory.has(name) ? name : alternative(name);
    const file = directory.get(storedName);
    if (!file) {
      missing.push(name);
      continue;
    }
    const info = file.info(storedName);
    if (!sameShape(info.shape, shape)) {
      throw new InputError(
        file.path,
        `tensor ${storedName}`,
        `shape ${formatShape(info.shape)} does not match the config, expected ${formatShape(shape)}`,
      );
    }
    if (!FLOAT_DTYPES.includes(info.dtype)) {
      throw new InputError(
        file.path,
        `tensor ${storedName}`,
        `dtype ${info.dtype} is not a floating-point type (expected F16, BF16, F32 or F64)`,
      );
    }
    located.set(name, { file, storedName });
  }
  if (missing.length > 0) {
    const shown = missing.slice(0, MISSING_NAMES_SHOWN).join(", ");
    const more = missing.length > MISSING_NAMES_SHOWN ? ` and ${missing.length - MISSING_NAMES_SHOWN} more` : "";
    throw new InputError(
      dir,
      undefined,
      `checkpoint is missing ${missing.length} of the ${required.length} tensors ${modelName} needs: ${shown}${more}`,
    );
  }
  return located;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
