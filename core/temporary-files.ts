/**
 * The temporary files an output is written to before it is renamed over its target (writeFileAtomic,
 * the streamed Chrome trace). Each has a recognisable name beside its target,
 * `.TARGET.PID.RANDOM.spillway-tmp`, so that:
 *  - one left by a killed run is removed by the next write of the same target (removeStaleTemporaries:
 *    only regular files owned by this user whose name matches the pattern exactly, and whose process
 *    is gone or which are older than STALE_TEMPORARY_SECONDS);
 *  - the current one is removed on SIGINT, SIGTERM and SIGHUP (removeOnSignal), after which the signal
 *    takes its usual course. Node acts on a signal between tasks, so a signal that arrives during a
 *    long synchronous step (a simulation) is acted on when that step ends.
 */
import { randomBytes } from "node:crypto";
import { lstatSync, readdirSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** A temporary older than this is stale even if a process with its PID runs (PIDs are reused). */
export const STALE_TEMPORARY_SECONDS = 3600;

const SUFFIX = ".spillway-tmp";
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A new, unpredictable temporary name for `target`, in the same folder (so a rename replaces it atomically). */
export function temporaryPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString("hex")}${SUFFIX}`);
}

/** The PID in a temporary's name if the name is exactly one of `target`'s temporaries, else undefined. */
export function temporaryOwnerPid(target: string, name: string): number | undefined {
  const pattern = new RegExp(
    `^\\.${escapeRegExp(basename(target))}\\.(\\d{1,10})\\.[0-9a-f]{12}${escapeRegExp(SUFFIX)}$`,
  );
  const match = pattern.exec(name);
  return match ? Number(match[1]) : undefined;
}

function processIsAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes `target`'s temporaries left by earlier runs: regular files owned by this user, named exactly
 * by the pattern, whose process is gone or which were last modified over `maxAgeSeconds` ago. Returns the
 * paths removed; anything that cannot be read or removed is left alone.
 */
export function removeStaleTemporaries(
  target: string,
  options: { nowMs?: number; maxAgeSeconds?: number } = {},
): string[] {
  const nowMs = options.nowMs ?? Date.now();
  const maxAgeSeconds = options.maxAgeSeconds ?? STALE_TEMPORARY_SECONDS;
  const folder = dirname(target);
  const uid = process.getuid?.();
  let names: string[];
  try {
    names = readdirSync(folder);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = temporaryOwnerPid(target, name);
    if (pid === undefined || live.has(join(folder, name))) continue;
    const path = join(folder, name);
    try {
      const stats = lstatSync(path);
      if (!stats.isFile() || (uid !== undefined && stats.uid !== uid)) continue;
      const old = nowMs - stats.mtimeMs > maxAgeSeconds * 1000;
      if (!old && processIsAlive(pid)) continue;
      rmSync(path, { force: true });
      removed.push(path);
    } catch {
      // gone meanwhile, or not ours to remove
    }
  }
  return removed;
}

/** This process's temporaries, removed on a signal or at exit. */
const live = new Set<string>();

function removeLive(): void {
  for (const path of live) rmSync(path, { force: true });
  live.clear();
}

let installed = false;
let exitHooked = false;

function onSignal(signal: NodeJS.Signals): void {
  removeLive();
  for (const each of SIGNALS) process.off(each, onSignal);
  installed = false;
  // No other listener: the signal's usual course (the process ends as killed by it).
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

/**
 * The handlers stay once installed: a signal that arrives during synchronous work is dispatched only
 * after it, and were the handler gone by then, the signal would be lost (the process would not end).
 */
function install(): void {
  if (installed) return;
  installed = true;
  for (const signal of SIGNALS) process.on(signal, onSignal);
  if (!exitHooked) process.on("exit", removeLive);
  exitHooked = true;
}

/**
 * Removes `path` if the process gets SIGINT, SIGTERM or SIGHUP (or exits) before the returned function
 * is called, once the temporary has been renamed or removed.
 */
export function removeOnSignal(path: string): () => void {
  install();
  live.add(path);
  return () => {
    live.delete(path);
  };
}
