// Helpers shared by the native addon builds: scripts/build-cuda.mjs (nvcc, for GPUs) and
// scripts/build-cuda-host.mjs (the C++ compiler, the same sources on the CPU).
import { spawnSync } from "node:child_process";
import { accessSync, constants, readdirSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";

export function isExecutableFile(file) {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The folder holding node_api.h, or null with the places tried. */
export function findNodeHeaders(env) {
  const candidates = [
    join(dirname(dirname(process.execPath)), "include", "node"),
    "/usr/include/node",
    "/usr/local/include/node",
  ];
  if (env.npm_config_nodedir) candidates.push(join(env.npm_config_nodedir, "include", "node"));
  for (const dir of candidates) {
    try {
      if (statSync(join(dir, "node_api.h")).isFile()) return { dir };
    } catch {
      // not here
    }
  }
  const unique = [...new Set(candidates)];
  const tried = env.npm_config_nodedir ? unique : [...unique, "$npm_config_nodedir/include/node (unset)"];
  return {
    dir: null,
    why: `Node's C headers (node_api.h) not found (tried ${tried.join(", ")}); install Node's headers (e.g. the nodejs development package) or set npm_config_nodedir to a folder with include/node/node_api.h`,
  };
}

export function shellQuote(arg) {
  return /^[\w@%+=:,./[\]-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function displayPath(file) {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith("..") ? rel : file;
}

export function isRunning(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === "EPERM";
  }
}

export function removeQuietly(file) {
  try {
    rmSync(file, { force: true });
  } catch {
    // nothing to clean up
  }
}

/** Loads the addon in a child process with every symbol bound now (RTLD_NOW), so an undefined launcher fails here. */
export function loadCheck(file, env = process.env) {
  const code = [
    "const os = require('node:os');",
    "const m = { exports: {} };",
    "process.dlopen(m, process.argv[1], os.constants.dlopen.RTLD_NOW);",
    "if (typeof m.exports.probe !== 'function' || typeof m.exports.buildInfo !== 'object') throw new Error('it does not export probe() and buildInfo');",
  ].join("\n");
  const r = spawnSync(process.execPath, ["-e", code, file], { encoding: "utf8", env });
  if (r.status === 0) return null;
  const message = (r.stderr || r.stdout || r.error?.message || `exit ${r.status}`)
    .split("\n")
    .find((l) => /^\w*Error\b/.test(l));
  return message?.trim() ?? `exit ${r.status}`;
}

/**
 * A temporary path beside `out` for this process to build into (renamed into place once it loads),
 * after removing the leftovers of interrupted builds (a build still running keeps its own).
 */
export function temporaryBeside(out) {
  const outDir = dirname(out);
  const tmpPrefix = `.${basename(out)}.`;
  for (const f of readdirSync(outDir)) {
    const pid = f.startsWith(tmpPrefix) && f.endsWith(".tmp") ? Number(f.slice(tmpPrefix.length, -".tmp".length)) : NaN;
    if (Number.isInteger(pid) && pid > 0 && !isRunning(pid)) removeQuietly(join(outDir, f));
  }
  return join(outDir, `${tmpPrefix}${process.pid}.tmp`);
}
