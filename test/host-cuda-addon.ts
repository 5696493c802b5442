/**
 * The CUDA addon's real sources (native/cuda/kernels.cu and addon.cpp) built for the CPU against the
 * host emulation of the CUDA runtime (scripts/build-cuda-host.mjs), for the test suites to run as one
 * more CudaNative. Built once per set of sources: the file name carries a hash of every input, so an
 * edited source is rebuilt, and test files starting at once share one build (the first takes a lock,
 * the others wait for it). Skipped, with the reason, where no C++ compiler or Node's headers are found.
 * SPILLWAY_HOST_CUDA_ADDON names a build to use instead (e.g. one made with --sanitize).
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadNative } from "../runtime/cuda/load-native.js";
import type { CudaNative } from "../runtime/cuda/native-api.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SCRIPT = join(ROOT, "scripts", "build-cuda-host.mjs");
const OUT_DIR = join(ROOT, "build", "cuda-host");

function inputsHash(): string {
  const hash = createHash("sha256");
  const files = [
    "native/cuda/kernels.cu",
    "native/cuda/kernels.h",
    "native/cuda/addon.cpp",
    ...readdirSync(join(ROOT, "native", "cuda", "host"))
      .sort()
      .map((f) => `native/cuda/host/${f}`),
    "scripts/build-cuda-host.mjs",
    "scripts/native-build.mjs",
  ];
  for (const file of files)
    hash
      .update(file)
      .update("\0")
      .update(readFileSync(join(ROOT, file)))
      .update("\0");
  hash.update(process.version).update(process.env.CXX ?? "");
  return hash.digest("hex").slice(0, 16);
}

let cached: { readonly native: CudaNative; readonly path: string } | { readonly reason: string } | undefined;

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Builds `path` unless another test process is building it (a lock file beside it holds that
 * process's id): then waits for it. Returns the build's skip message, or undefined once `path` exists.
 */
function buildOnce(path: string, variant: string, extraArgs: readonly string[]): string | undefined {
  mkdirSync(OUT_DIR, { recursive: true });
  const lock = `${path}.lock`;
  const deadline = Date.now() + 300_000;
  while (!existsSync(path)) {
    let fd: number;
    try {
      fd = openSync(lock, "wx");
    } catch {
      let holder = 0;
      try {
        holder = Number(readFileSync(lock, "utf8"));
      } catch {
        continue; // released meanwhile: try again
      }
      // A holder that died leaves its lock behind (one that has not written its id yet reads as 0).
      if (Number.isInteger(holder) && holder > 0 && !isRunning(holder)) rmSync(lock, { force: true });
      if (Date.now() > deadline)
        throw new Error(`waited 5 minutes for another process to build ${path} (remove ${lock} if none is)`);
      sleepMs(200);
      continue;
    }
    try {
      writeSync(fd, String(process.pid));
      closeSync(fd);
      if (existsSync(path)) break;
      const r = spawnSync(process.execPath, [SCRIPT, "--quiet", ...extraArgs, "--out", path], {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 300_000,
      });
      const output = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
      if (r.status !== 0)
        throw new Error(`scripts/build-cuda-host.mjs failed (exit ${r.status ?? r.signal}):\n${output}`);
      if (!existsSync(path)) return output.split("\n")[0] || "the host-emulated CUDA addon was not built";
      // This variant's builds of earlier sources are stale now.
      for (const f of readdirSync(OUT_DIR))
        if (f.startsWith(`${variant}-`) && /-[0-9a-f]{16}\.node$/.test(f) && join(OUT_DIR, f) !== path)
          rmSync(join(OUT_DIR, f), { force: true });
    } finally {
      rmSync(lock, { force: true });
    }
  }
  return undefined;
}

/**
 * The path of the host build of the current sources (`sanitize`: with AddressSanitizer and UBSan,
 * loadable only under LD_PRELOAD of libasan), built first if need be; or why it cannot be built.
 */
export function hostCudaAddonPath(sanitize = false): { readonly path: string } | { readonly reason: string } {
  const variant = sanitize ? "spillway_cuda_host_sanitized" : "spillway_cuda_host";
  const path = join(OUT_DIR, `${variant}-${inputsHash()}.node`);
  const skipped = buildOnce(path, variant, sanitize ? ["--sanitize"] : []);
  return skipped !== undefined ? { reason: skipped } : { path };
}

/** The host-built addon, loaded (built first if this set of sources has not been), or why not. */
export function hostCudaAddon(): { readonly native: CudaNative; readonly path: string } | { readonly reason: string } {
  if (cached) return cached;
  // A build of one's own (e.g. build-cuda-host.mjs --sanitize, run under LD_PRELOAD of libasan).
  const path = process.env.SPILLWAY_HOST_CUDA_ADDON || undefined;
  const built = path ? { path } : hostCudaAddonPath();
  if ("reason" in built) return (cached = built);
  const load = loadNative(built.path);
  if (!load.loaded) throw new Error(`the host-emulated CUDA addon ${built.path} does not load: ${load.reason}`);
  return (cached = { native: load.native, path: built.path });
}
