#!/usr/bin/env node
// Builds the CUDA addon's real sources for the CPU: native/cuda/kernels.cu and addon.cpp compiled by
// the C++ compiler against the host emulation of the CUDA runtime in native/cuda/host/ (every CUDA
// thread a fiber; see native/cuda/host/cuda_runtime.h). The result, build/cuda-host/
// spillway_cuda_host.node, is a CudaNative like the GPU addon: the tests run the kernel suite and the
// runtime correctness matrix over it, so the kernels and the binding are exercised where no GPU is.
// It is slow (a kernel runs its threads one at a time) and it is not a GPU: never profile with it.
//
//   node scripts/build-cuda-host.mjs [--out <file>] [--kernels <file>] [--sanitize] [--require] [--quiet]
//   (npm run build:cuda-host)
//
// kernels.cu is compiled as written except for two rewrites, made in a temporary copy (in the system's
// temporary folder) that keeps every line where it was (so compiler messages and the emulator's
// reports name kernels.cu lines):
// - a launch `kernel<<<grid, block[, smem[, stream]]>>>(args)` becomes
//   `::spw_host::launch("kernel", &kernel, grid, block[, smem[, stream]])(args)`;
// - `__shared__ T name[...];` becomes a static array registered with the emulator (poisoned when each
//   block first reaches it) and `extern __shared__ T name[];` the launch's dynamic shared memory.
// Anything of either left over fails the build, naming the line.
//
// Without a C++ compiler or Node's headers it prints one line saying why and exits 0 (1 with
// --require). Environment: CXX (the compiler; default c++, then g++, then clang++ on PATH),
// npm_config_nodedir (Node's headers).
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
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
const HOST_DIR = join(SOURCE_DIR, "host");
const DEFAULT_OUT = join(ROOT, "build", "cuda-host", "spillway_cuda_host.node");
const TAG = "spillway build:cuda-host:";

const USAGE = `usage: node scripts/build-cuda-host.mjs [--out <file>] [--kernels <file>] [--sanitize] [--require] [--quiet]
  --out      the addon to write (default build/cuda-host/spillway_cuda_host.node)
  --kernels  a kernels.cu to build instead of native/cuda/kernels.cu (the emulator's own tests build
             altered copies to see that it catches what they break)
  --sanitize with AddressSanitizer and UndefinedBehaviorSanitizer (out-of-bounds accesses in kernels,
             overflows): load it with LD_PRELOAD=$(g++ -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0
  --require  exit 1 instead of 0 when no C++ compiler or Node's headers are found
  --quiet    print only errors and skips
environment: CXX, PATH, npm_config_nodedir`;

function parseCommandLine(argv) {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        out: { type: "string" },
        kernels: { type: "string" },
        sanitize: { type: "boolean", default: false },
        require: { type: "boolean", default: false },
        quiet: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      console.log(USAGE);
      process.exit(0);
    }
    return {
      out: resolve(values.out ?? DEFAULT_OUT),
      kernels: resolve(values.kernels ?? join(SOURCE_DIR, "kernels.cu")),
      sanitize: values.sanitize,
      require: values.require,
      quiet: values.quiet,
    };
  } catch (error) {
    console.error(`${TAG} ${error.message}\n${USAGE}`);
    process.exit(2);
  }
}

/** The C++ compiler's path, or null with the places tried. */
function findCompiler(env) {
  if (env.CXX) {
    const named = env.CXX.includes("/") ? env.CXX : onPath(env.CXX, env);
    if (named && isExecutableFile(named)) return { cxx: named };
    return { cxx: null, why: `CXX=${env.CXX} is not an executable file or a command on PATH` };
  }
  for (const name of ["c++", "g++", "clang++"]) {
    const found = onPath(name, env);
    if (found) return { cxx: found };
  }
  return {
    cxx: null,
    why: "no C++ compiler found (tried $CXX (unset), c++, g++ and clang++ on PATH); install g++ or set CXX",
  };
}

function onPath(name, env) {
  for (const dir of (env.PATH ?? "").split(delimiter).filter((d) => d !== "")) {
    const file = join(dir, name);
    if (isExecutableFile(file)) return file;
  }
  return null;
}

/**
 * kernels.cu with its launches and __shared__ declarations rewritten for the host emulation, line for
 * line; throws naming the line of any launch or __shared__ it could not rewrite.
 */
export function rewriteKernels(source, file = "native/cuda/kernels.cu") {
  const lines = source.split("\n").map((line) => {
    let out = line.replace(
      /([A-Za-z_]\w*(?:<[^<>;()]*>)?)<<<(.*?)>>>\(/g,
      (_, kernel, config) => `::spw_host::launch(${JSON.stringify(kernel)}, &${kernel}, ${config})(`,
    );
    out = out.replace(
      /extern __shared__\s+([\w:]+)\s+(\w+)\[\];/g,
      (_, type, name) => `${type}* ${name} = static_cast<${type}*>(::spw_host::dynamicSharedMemory());`,
    );
    out = out.replace(
      /__shared__\s+((?:__align__\(\d+\)\s+)?[\w:]+)\s+(\w+)((?:\[[^\]]+\])+);/g,
      (_, type, name, dims) => `static ${type} ${name}${dims}; ::spw_host::sharedDeclared(${name}, sizeof ${name});`,
    );
    return out;
  });
  const code = (line) => line.replace(/\/\/.*$/, "");
  lines.forEach((line, i) => {
    if (/<<<|>>>/.test(code(line)) || /__shared__/.test(code(line))) {
      throw new Error(
        `${file}:${i + 1}: cannot rewrite this launch or __shared__ declaration for the host emulation: ${line.trim()}`,
      );
    }
  });
  return `#line 1 ${JSON.stringify(file)}\n${lines.join("\n")}`;
}

/** The compiler's AddressSanitizer runtime (libasan.so), for LD_PRELOAD. */
function asanRuntime(cxx) {
  const r = spawnSync(cxx, ["-print-file-name=libasan.so"], { encoding: "utf8" });
  return (r.stdout ?? "").trim() || "libasan.so";
}

function main() {
  const options = parseCommandLine(process.argv.slice(2));
  const say = options.quiet ? () => {} : (line) => console.log(line);
  const started = performance.now();
  const skip = (why) => {
    if (options.require) {
      console.error(`${TAG} cannot build the host-emulated CUDA addon (--require): ${why}`);
      process.exit(1);
    }
    console.error(`${TAG} skipped the host-emulated CUDA addon: ${why}`);
    process.exit(0);
  };
  if (process.platform !== "linux") skip(`the host emulation is built on Linux only (this is ${process.platform})`);
  const compiler = findCompiler(process.env);
  if (!compiler.cxx) skip(compiler.why);
  const headers = findNodeHeaders(process.env);
  if (!headers.dir) skip(headers.why);

  const out = options.out;
  mkdirSync(dirname(out), { recursive: true });
  const tmp = temporaryBeside(out);
  const copyDir = mkdtempSync(join(tmpdir(), "spillway-cuda-host-"));
  const kernelsCopy = join(copyDir, "kernels.cpp");
  let rewritten;
  try {
    let source;
    try {
      source = readFileSync(options.kernels, "utf8");
    } catch (error) {
      throw new Error(`cannot read the kernels source ${displayPath(options.kernels)}: ${error.message}`);
    }
    rewritten = rewriteKernels(source, displayPath(options.kernels));
  } catch (error) {
    rmSync(copyDir, { recursive: true, force: true });
    console.error(`${TAG} ${error.message}`);
    process.exit(1);
  }
  writeFileSync(kernelsCopy, rewritten);
  const sources = [kernelsCopy, join(SOURCE_DIR, "addon.cpp"), join(HOST_DIR, "host-runtime.cpp")];
  const args = [
    "-std=c++17",
    "-O2",
    "-g0",
    "-shared",
    "-fPIC",
    "-fvisibility=hidden",
    // The _rn intrinsics round each operation once: no contraction into FMAs behind their back.
    "-ffp-contract=off",
    // CUDA code reads float4 / uint4 / __half2 through pointers to their elements (as nvcc allows);
    // under C++'s strict aliasing, g++ -O2 would drop such accesses.
    "-fno-strict-aliasing",
    "-Wno-unknown-pragmas",
    ...(options.sanitize
      ? ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
      : []),
    `-I${HOST_DIR}`,
    `-I${SOURCE_DIR}`,
    `-I${headers.dir}`,
    `-DSPW_CUDA_ARCHS="host-emulation"`,
    "-o",
    tmp,
    ...sources,
  ];
  say(
    `${TAG} compiling ${displayPath(options.kernels)}, native/cuda/addon.cpp and native/cuda/host/host-runtime.cpp with ${compiler.cxx}`,
  );
  const build = spawnSync(compiler.cxx, args, { cwd: ROOT, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  rmSync(copyDir, { recursive: true, force: true });
  const output = `${build.stdout ?? ""}${build.stderr ?? ""}`.trim();
  if (build.error || build.status !== 0) {
    removeQuietly(tmp);
    if (output) console.error(output);
    console.error(
      `${TAG} the compiler failed (${build.error ? build.error.message : build.signal ? `signal ${build.signal}` : `exit ${build.status}`}):\n  ${[compiler.cxx, ...args].map(shellQuote).join(" ")}`,
    );
    process.exit(1);
  }
  if (output && !options.quiet) console.log(output);
  // A sanitized build loads only with the sanitizer's runtime first in the process.
  const loadEnv = options.sanitize
    ? { ...process.env, LD_PRELOAD: asanRuntime(compiler.cxx), ASAN_OPTIONS: "detect_leaks=0" }
    : process.env;
  const loadError = loadCheck(tmp, loadEnv);
  if (loadError) {
    removeQuietly(tmp);
    console.error(`${TAG} built the addon but it does not load: ${loadError}`);
    process.exit(1);
  }
  renameSync(tmp, out);
  say(`${TAG} built ${displayPath(out)} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  if (options.sanitize) say(`${TAG} load it with LD_PRELOAD=${loadEnv.LD_PRELOAD} ASAN_OPTIONS=detect_leaks=0`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
