import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../cli/main.js", import.meta.url));

export function runCli(args: string[], input?: string): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", input: input ?? "", timeout: 120_000 });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Deterministic PRNG (mulberry32) so property tests are reproducible. */
export { mulberry32 as random } from "../core/random.js";
