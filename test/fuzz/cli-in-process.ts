/**
 * Runs the CLI's entry function, main(), inside this process: stdout and stderr captured, process.exit
 * refused (a command must return its exit code, not end the process). One case at a time.
 */
import { main } from "../../cli/main.js";

export interface CliResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

class ProcessExitCalled extends Error {}

export async function runCliInProcess(args: readonly string[]): Promise<CliResult> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const capture =
    (into: string[]) =>
    (chunk: unknown, encoding?: unknown, callback?: unknown): boolean => {
      into.push(typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8"));
      const done = typeof encoding === "function" ? encoding : callback;
      if (typeof done === "function") queueMicrotask(() => (done as () => void)());
      return true;
    };
  const saved = { out: process.stdout.write, err: process.stderr.write, exit: process.exit };
  process.stdout.write = capture(stdout) as typeof process.stdout.write;
  process.stderr.write = capture(stderr) as typeof process.stderr.write;
  process.exit = ((code?: number) => {
    throw new ProcessExitCalled(`process.exit(${code}) called`);
  }) as typeof process.exit;
  let status: number;
  try {
    status = await main([...args]);
  } catch (error) {
    stderr.push(`fuzz harness: main() threw: ${(error as Error).stack ?? String(error)}\n`);
    status = -1;
  } finally {
    process.stdout.write = saved.out;
    process.stderr.write = saved.err;
    process.exit = saved.exit;
  }
  return { status, stdout: stdout.join(""), stderr: stderr.join("") };
}
