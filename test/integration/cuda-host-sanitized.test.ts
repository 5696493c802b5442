/**
 * The kernel suite's host-emulation rows again, over a build of kernels.cu and addon.cpp with
 * AddressSanitizer and UndefinedBehaviorSanitizer (scripts/build-cuda-host.mjs --sanitize), in a child
 * process that preloads the sanitizer runtime: an out-of-bounds access of a kernel (device memory is
 * allocated to the byte here), a use after free or undefined behaviour in the binding fails it.
 * Skipped where no C++ compiler or no libasan is found.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { hostCudaAddonPath } from "../host-cuda-addon.js";

const cxx = process.env.CXX || "c++";
const asan = spawnSync(cxx, ["-print-file-name=libasan.so"], { encoding: "utf8" });
const libasan = (asan.stdout ?? "").trim();
const reason =
  asan.status !== 0 || !libasan.startsWith("/") || !existsSync(libasan)
    ? `no AddressSanitizer runtime (${cxx} -print-file-name=libasan.so gave ${JSON.stringify(libasan)})`
    : undefined;
const built = reason === undefined ? hostCudaAddonPath(true) : { reason };

test(
  "host emulation under AddressSanitizer and UBSan: the kernel suite passes with no report",
  "reason" in built ? { skip: built.reason } : {},
  async () => {
    if (!("path" in built)) return;
    const suite = fileURLToPath(new URL("./cuda-kernels.test.js", import.meta.url));
    // A run of its own, not a subtest of this one (the runner marks its children with NODE_TEST_CONTEXT).
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const child = spawn(
      process.execPath,
      ["--test", "--test-reporter=tap", "--test-name-pattern=kernels\\.cu on the CPU", suite],
      {
        env: { ...env, LD_PRELOAD: libasan, ASAN_OPTIONS: "detect_leaks=0", SPILLWAY_HOST_CUDA_ADDON: built.path },
      },
    );
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    const tail = output.split("\n").slice(-40).join("\n");
    assert.doesNotMatch(output, /ERROR: AddressSanitizer|runtime error:/, tail);
    assert.equal(code, 0, tail);
    const passed = Number(/^# pass (\d+)$/m.exec(output)?.[1] ?? 0);
    assert.ok(passed >= 14, `only ${passed} kernel tests ran:\n${tail}`);
    assert.match(output, /^# fail 0$/m);
  },
);
