#!/usr/bin/env node
// Builds Spillway's CUDA addon, build/cuda/spillway_cuda.node, from native/cuda/*.cu and *.cpp with
// nvcc: `npm run build:cuda` (plain Node ESM, so it runs before and without tsc).
//
// Without nvcc or Node's C headers it prints one line saying why the build was skipped and exits 0
// (exit 1 with --require): the CUDA backend is optional and nothing else depends on this build.
// A failed build never leaves a half-written addon behind: nvcc writes a temporary file beside the
// output, which is loaded once (all symbols resolved) before it is renamed into place.
//
//   node scripts/build-cuda.mjs [--arch 75,90] [--out <file>] [--require] [--quiet]
//
// Environment: SPILLWAY_NVCC (an nvcc to use, or "none" to pretend there is none), CUDACXX,
// CUDA_HOME, CUDA_PATH, PATH (where nvcc is looked for), npm_config_nodedir (Node's headers).
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  displayPath,
  findNodeHeaders,
  isExecutableFile,
  loadCheck,
  removeQuietly,
  shellQuote,
  temporaryBeside,
} from "./native-build.mjs";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SOURCE_DIR = join(ROOT, "native", "cuda");
const DEFAULT_OUT = join(ROOT, "build", "cuda", "spillway_cuda.node");
/** Turing, Ampere (A100, consumer), Ada, Hopper; the newest also as PTX for later GPUs to JIT. */
const DEFAULT_ARCHS = ["75", "80", "86", "89", "90"];
const TAG = "spillway build:cuda:";

const USAGE = `usage: node scripts/build-cuda.mjs [--arch 75,80,86,89,90] [--out <file>] [--require] [--quiet]
  --arch     compute capabilities to build for (default ${DEFAULT_ARCHS.join(",")}); the highest is also embedded as PTX
  --out      the addon to write (default build/cuda/spillway_cuda.node); build-info.json goes beside it
  --require  exit 1 instead of 0 when nvcc or Node's headers are missing
  --quiet    print only errors and skips
environment: SPILLWAY_NVCC=<path>|none, CUDACXX, CUDA_HOME, CUDA_PATH, PATH, npm_config_nodedir`;

function parseCommandLine(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        arch: { type: "string" },
        out: { type: "string" },
        require: { type: "boolean", default: false },
        quiet: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    console.error(`${TAG} ${error.message}\n${USAGE}`);
    process.exit(2);
  }
  if (parsed.help) {
    console.log(USAGE);
    process.exit(0);
  }
  let archs = DEFAULT_ARCHS;
  if (parsed.arch !== undefined) {
    archs = parsed.arch
      .split(",")
      .map((a) => a.trim().replace(/^(sm_|compute_)/, ""))
      .filter((a) => a !== "");
    const bad = archs.filter((a) => !/^\d{2,3}[af]?$/.test(a));
    if (archs.length === 0 || bad.length > 0) {
      console.error(
        `${TAG} --arch expects compute capabilities like 75,80,90 (got ${JSON.stringify(parsed.arch)})\n${USAGE}`,
      );
      process.exit(2);
    }
    archs = [...new Set(archs)].sort((a, b) => parseInt(a, 10) - parseInt(b, 10) || a.localeCompare(b));
  }
  return { archs, out: resolve(parsed.out ?? DEFAULT_OUT), require: parsed.require, quiet: parsed.quiet };
}

/** nvcc's path, or null with the places tried. */
function findNvcc(env) {
  const spillway = env.SPILLWAY_NVCC;
  if (spillway === "none")
    return { nvcc: null, why: "nvcc lookup disabled by SPILLWAY_NVCC=none (unset it to look for nvcc)" };
  if (spillway) {
    // An explicit choice: used, or reported, never silently replaced by another nvcc.
    if (isExecutableFile(spillway)) return { nvcc: spillway };
    return {
      nvcc: null,
      why: `SPILLWAY_NVCC=${spillway} is not an executable file (set it to nvcc's path, or unset it to look for nvcc)`,
    };
  }
  const fallback = "/usr/local/cuda/bin/nvcc";
  const candidates = []; // [where it was looked for, path]
  candidates.push(["$CUDACXX", env.CUDACXX]);
  candidates.push(["$CUDA_HOME/bin/nvcc", env.CUDA_HOME && join(env.CUDA_HOME, "bin", "nvcc")]);
  candidates.push(["$CUDA_PATH/bin/nvcc", env.CUDA_PATH && join(env.CUDA_PATH, "bin", "nvcc")]);
  const pathDirs = (env.PATH ?? "").split(delimiter).filter((dir) => dir !== "");
  for (const dir of pathDirs) candidates.push(["PATH", join(dir, "nvcc")]);
  candidates.push([fallback, fallback]);
  for (const [, file] of candidates) if (file && isExecutableFile(file)) return { nvcc: file };
  const tried = candidates
    .filter(([label]) => label !== "PATH")
    .map(([label, file]) => (label === file ? file : file ? `${label}=${file}` : `${label.split("/")[0]} (unset)`));
  tried.splice(tried.length - 1, 0, `nvcc on PATH (${pathDirs.length > 0 ? pathDirs.join(delimiter) : "empty"})`);
  return {
    nvcc: null,
    why: `nvcc not found (tried ${tried.join(", ")}); install the CUDA Toolkit and set CUDA_HOME (or CUDACXX, or PATH) to find it`,
  };
}

function gencodes(archs) {
  const ptx = archs[archs.length - 1];
  return archs.map((a) =>
    a === ptx ? `arch=compute_${a},code=[sm_${a},compute_${a}]` : `arch=compute_${a},code=sm_${a}`,
  );
}

function archsDescription(archs) {
  return [...archs.map((a) => `sm_${a}`), `compute_${archs[archs.length - 1]}`].join(" ");
}

function nvccVersion(nvcc) {
  const r = spawnSync(nvcc, ["--version"], { encoding: "utf8" });
  if (r.error || r.status !== 0)
    return { error: r.error ? r.error.message : `exit ${r.status}: ${(r.stderr || r.stdout).trim()}` };
  const lines = r.stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  return { line: lines.find((l) => /release \d/.test(l)) ?? lines[lines.length - 1] ?? "unknown" };
}

function main() {
  const options = parseCommandLine(process.argv.slice(2));
  const say = options.quiet ? () => {} : (line) => console.log(line);
  const started = performance.now();

  const skip = (why) => {
    if (options.require) {
      console.error(`${TAG} cannot build the CUDA backend (--require): ${why}`);
      process.exit(1);
    }
    console.error(`${TAG} skipped the CUDA backend build: ${why}. Spillway's CPU backend works without it.`);
    process.exit(0);
  };

  if (process.platform !== "linux")
    skip(`building the CUDA addon is supported on Linux only (this is ${process.platform})`);
  const found = findNvcc(process.env);
  if (!found.nvcc) skip(found.why);
  const headers = findNodeHeaders(process.env);
  if (!headers.dir) skip(headers.why);
  const nvcc = found.nvcc;

  const version = nvccVersion(nvcc);
  if (version.error) {
    console.error(
      `${TAG} ${nvcc} does not run (${version.error}); fix the CUDA Toolkit install or point CUDA_HOME / CUDACXX at a working one`,
    );
    process.exit(1);
  }

  let sources;
  try {
    sources = readdirSync(SOURCE_DIR)
      .filter((f) => /\.(cu|cpp)$/.test(f))
      .sort()
      .map((f) => join(SOURCE_DIR, f));
  } catch (error) {
    console.error(`${TAG} cannot read ${SOURCE_DIR}: ${error.message}`);
    process.exit(1);
  }
  if (sources.length === 0) {
    console.error(`${TAG} no .cu or .cpp sources in ${SOURCE_DIR}`);
    process.exit(1);
  }

  const out = options.out;
  const outDir = dirname(out);
  mkdirSync(outDir, { recursive: true });
  const tmp = temporaryBeside(out);

  const archs = archsDescription(options.archs);
  const args = [
    "-std=c++17",
    "-O3",
    "--shared",
    "-Xcompiler",
    "-fPIC,-fvisibility=hidden",
    // libcudart_static's symbols are hidden already: the addon exports only the Node-API entry points.
    "-cudart",
    "static",
    `-I${headers.dir}`,
    ...gencodes(options.archs).flatMap((g) => ["-gencode", g]),
    "--threads",
    "0",
    `-DSPW_CUDA_ARCHS="${archs}"`,
    "-o",
    tmp,
    ...sources,
  ];
  say(
    `${TAG} compiling ${sources.map((s) => relative(ROOT, s)).join(", ")} for ${archs} with ${nvcc} (${version.line})`,
  );
  const build = spawnSync(nvcc, args, { cwd: ROOT, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  const compileSeconds = (performance.now() - started) / 1000;
  const nvccOutput = `${build.stdout ?? ""}${build.stderr ?? ""}`.trim();
  if (build.error || build.status !== 0) {
    removeQuietly(tmp);
    if (nvccOutput) console.error(nvccOutput);
    console.error(
      `${TAG} nvcc failed (${build.error ? build.error.message : build.signal ? `signal ${build.signal}` : `exit ${build.status}`}) after ${compileSeconds.toFixed(1)} s:\n  ${[nvcc, ...args].map(shellQuote).join(" ")}`,
    );
    process.exit(1);
  }
  if (nvccOutput && !options.quiet) console.log(nvccOutput);

  const loadError = loadCheck(tmp);
  if (loadError) {
    removeQuietly(tmp);
    console.error(
      `${TAG} nvcc built the addon but it does not load: ${loadError} (are all of native/cuda's sources present?)`,
    );
    process.exit(1);
  }
  renameSync(tmp, out);

  const seconds = (performance.now() - started) / 1000;
  const info = {
    output: out,
    nvcc,
    nvccVersion: version.line,
    archs: options.archs.map((a) => `sm_${a}`),
    ptx: `compute_${options.archs[options.archs.length - 1]}`,
    gencode: gencodes(options.archs),
    sources: sources.map((s) => relative(ROOT, s)),
    node: process.version,
    napiVersion: 8,
    builtAt: new Date().toISOString(),
    seconds: Math.round(seconds * 10) / 10,
  };
  const infoFile = join(outDir, "build-info.json");
  const infoTmp = `${infoFile}.${process.pid}.tmp`;
  writeFileSync(infoTmp, `${JSON.stringify(info, null, 2)}\n`);
  renameSync(infoTmp, infoFile);
  const megabytes = (statSync(out).size / 1048576).toFixed(1);
  say(`${TAG} built ${displayPath(out)} (${archs}; ${megabytes} MB) in ${seconds.toFixed(1)} s`);
}

main();
