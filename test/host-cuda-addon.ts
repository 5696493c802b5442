/**
 * The CUDA addon's real sources (native/cuda/kernels.cu and addon.cpp) built for the CPU against the
 * host emulation of the CUDA runtime (scripts/build-cuda-host.mjs), for the test suites to run as one
 * more CudaNative. Built once per set of sources: the file name carries a hash of every input, so test
 * files running at once share one build and an edited source is rebuilt. Skipped, with the reason,
 * where no C++ compiler or Node's headers are found.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
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
    "native/cuda/kernels.cu", "native/cuda/kernels.h", "native/cuda/addon.cpp",
    ...readdirSync(join(ROOT, "native", "cuda", "host")).sort().map((f) => `native/cuda/host/${f}`),
    "scripts/build-cuda-host.mjs", "scripts/native-build.mjs",
  ];
  for (const file of files) hash.update(file).update("\0").update(readFileSync(join(ROOT, file))).update("\0");
  hash.update(process.version).update(process.env.CXX ?? "");
  return hash.digest("hex").slice(0, 16);
}

let cached: { readonly native: CudaNative; readonly path: string } | { readonly reason: string } | undefined;

/** The host-built addon, loaded (built first if this set of sources has not been), or why not. */
export function hostCudaAddon(): { readonly native: CudaNative; readonly path: string } | { readonly reason: string } {
  if (cached) return cached;
  const name = `spillway_cuda_host-${inputsHash()}.node`;
  const path = join(OUT_DIR, name);
  if (!existsSync(path)) {
    const r = spawnSync(process.execPath, [SCRIPT, "--quiet", "--out", path], { cwd: ROOT, encoding: "utf8", timeout: 300_000 });
    const output = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
    if (r.status !== 0) throw new Error(`scripts/build-cuda-host.mjs failed (exit ${r.status ?? r.signal}):\n${output}`);
    if (!existsSync(path)) return (cached = { reason: output.split("\n")[0] ?? "the host-emulated CUDA addon was not built" });
    // Builds of earlier sources are stale now (a build under way writes a temporary file, not one of these).
    for (const f of readdirSync(OUT_DIR)) if (/^spillway_cuda_host-[0-9a-f]{16}\.node$/.test(f) && f !== name) rmSync(join(OUT_DIR, f), { force: true });
  }
  const load = loadNative(path);
  if (!load.loaded) throw new Error(`the host-emulated CUDA addon does not load: ${load.reason}`);
  return (cached = { native: load.native, path });
}
