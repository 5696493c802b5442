import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { CUDA_NATIVE_FUNCTIONS, type CudaNative, type NativeProbe } from "../../runtime/cuda/native-api.js";

// dist/test/cuda-build.test.js → the repository root is two levels up.
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const SCRIPT = join(ROOT, "scripts", "build-cuda.mjs");

function runBuild(args: string[], env: NodeJS.ProcessEnv): { status: number; output: string } {
  const result = spawnSync(process.execPath, [SCRIPT, ...args], { cwd: ROOT, env, encoding: "utf8", timeout: 600_000 });
  return { status: result.status ?? -1, output: `${result.stdout}${result.stderr}` };
}

test("build:cuda without nvcc: skips with one line saying why (exit 0), and fails with --require (exit 1)", () => {
  const nowhere = join(tmpdir(), "spillway-no-cuda-here");
  const env = {
    PATH: dirname(process.execPath),
    CUDA_HOME: nowhere,
    CUDA_PATH: nowhere,
    CUDACXX: join(nowhere, "bin", "nvcc"),
    SPILLWAY_NVCC: "none",
  };
  const out = join(nowhere, "spillway_cuda.node");
  const skipped = runBuild(["--out", out], env);
  assert.equal(skipped.status, 0, skipped.output);
  assert.match(skipped.output, /skipped the CUDA backend build/);
  assert.match(skipped.output, /nvcc/);
  assert.match(skipped.output, /SPILLWAY_NVCC=none/);
  assert.equal(skipped.output.trim().split("\n").length, 1, "one line");
  assert.ok(!existsSync(out), "nothing written");

  const required = runBuild(["--require", "--out", out], env);
  assert.equal(required.status, 1, required.output);
  assert.match(required.output, /cannot build the CUDA backend \(--require\).*nvcc/);

  // Without SPILLWAY_NVCC the lookup runs and, finding nothing, lists what it tried (only checkable
  // where no nvcc sits at the fixed fallback or beside node, which the restricted PATH still shows).
  if (!existsSync("/usr/local/cuda/bin/nvcc") && !existsSync(join(dirname(process.execPath), "nvcc"))) {
    const { SPILLWAY_NVCC: _, ...lookup } = env;
    const looked = runBuild(["--out", out], lookup);
    assert.equal(looked.status, 0, looked.output);
    assert.match(
      looked.output,
      /skipped the CUDA backend build: nvcc not found \(tried .*CUDACXX.*CUDA_HOME.*CUDA_PATH.*PATH.*\/usr\/local\/cuda\/bin\/nvcc\)/,
    );
  }
});

test("build:cuda rejects unknown flags and malformed --arch", () => {
  assert.equal(runBuild(["--bogus"], { ...process.env, SPILLWAY_NVCC: "none" }).status, 2);
  const bad = runBuild(["--arch", "sm75x"], { ...process.env, SPILLWAY_NVCC: "none" });
  assert.equal(bad.status, 2);
  assert.match(bad.output, /--arch expects compute capabilities/);
});

test("build:cuda with nvcc: a single-arch addon that loads, exports CudaNative, probes without throwing and validates arguments", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "spillway-cuda-build-"));
  try {
    const out = join(dir, "spillway_cuda.node");
    const started = performance.now();
    const build = runBuild(["--arch", "75", "--out", out], process.env);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(build.status, 0, build.output);
    const skip = /skipped the CUDA backend build: (.*)/.exec(build.output);
    if (skip) {
      t.skip(`nvcc not found: ${skip[1]}`);
      return;
    }
    assert.match(build.output, /built .*spillway_cuda\.node/);
    t.diagnostic(`single-arch (sm_75) build took ${seconds.toFixed(1)} s`);
    const info = JSON.parse(readFileSync(join(dir, "build-info.json"), "utf8")) as {
      archs: string[];
      nvccVersion: string;
      seconds: number;
    };
    assert.deepEqual(info.archs, ["sm_75"]);
    assert.match(info.nvccVersion, /release|V\d/);
    assert.ok(info.seconds > 0);

    const addon = createRequire(import.meta.url)(out) as CudaNative & {
      buildInfo: { cudaRuntimeVersion: number; archs: string };
    };
    for (const name of CUDA_NATIVE_FUNCTIONS) assert.equal(typeof addon[name], "function", name);
    assert.equal(addon.buildInfo.archs, "sm_75 compute_75");
    assert.ok(addon.buildInfo.cudaRuntimeVersion >= 11000, `${addon.buildInfo.cudaRuntimeVersion}`);

    let probe: NativeProbe | undefined;
    assert.doesNotThrow(() => {
      probe = addon.probe();
    });
    t.diagnostic(`probe(): ${JSON.stringify(probe)}`);
    assert.equal(typeof probe!.ok, "boolean");
    assert.ok(probe!.runtimeVersion >= 11000);
    assert.ok(Number.isInteger(probe!.driverVersion) && probe!.driverVersion >= 0);
    if (!probe!.ok) {
      assert.equal(probe!.deviceCount, 0);
      assert.match(probe!.error ?? "", /^cudaGetDeviceCount: .+ \(cudaError\w+\)$/);
    } else {
      assert.ok(probe!.deviceCount > 0);
      assert.equal(probe!.error, undefined);
    }

    // Malformed arguments are TypeErrors thrown before any CUDA call (safe without a driver).
    const typeError = (f: () => unknown, message?: RegExp) =>
      assert.throws(f, (e: unknown) => e instanceof TypeError && (!message || message.test(e.message)));
    const loose = addon as unknown as Record<string, (...args: unknown[]) => unknown>;
    typeError(() => addon.malloc(-1), /malloc: bytes must be .*non-negative integer/);
    typeError(() => addon.malloc(1.5));
    typeError(() => addon.malloc(2 ** 53));
    typeError(() => addon.malloc(Number.NaN));
    typeError(() => loose.malloc!("1"), /must be a number, got string/);
    typeError(() => loose.malloc!(), /expects 1 argument, got 0/);
    typeError(() => loose.free!(1, 2), /expects 1 argument, got 2/);
    typeError(() => loose.memcpyHtoD!(1, "x", 0), /src must be a TypedArray, DataView or ArrayBuffer/);
    typeError(() => loose.memcpyDtoH!(new Float32Array(4), -8, 0), /src must be/);
    typeError(() => addon.memcpyHtoD(1, new Uint8Array(4), -1), /stream/);
    typeError(() => addon.memset(1, 256, 4, 0), /byte/);
    typeError(() => loose.eventCreate!(1), /boolean/);
    typeError(() => addon.eventRecord(0, 0), /event/);
    typeError(() => addon.linear(0, 0, 0, 0, 4, -768, 3072, 0), /linear: k must be/);
    typeError(() => loose.linear!(0, 0, 0, 0, 4, 768, 3072), /expects 8 arguments, got 7/);
    typeError(() => addon.layerNorm(0, 0, 0, 0, 1, 8, Number.POSITIVE_INFINITY, 0), /eps/);
    typeError(() => addon.setDevice(-1), /device/);
    typeError(() => addon.hostFree(new ArrayBuffer(16)), /not a live buffer from hostAlloc/);
    typeError(() => loose.hostFree!(new Uint8Array(16)), /ArrayBuffer/);
    // Pure functions of the launchers' layout need no device.
    assert.equal(addon.q4Bytes(64), 36);
    assert.ok(addon.attentionScratchFloats(4, 16, 12) > 0);

    if (probe!.ok) {
      // A GPU is here: a round trip through device memory, pinned buffers and a stream.
      const stream = addon.streamCreate();
      const pinned = addon.hostAlloc(64);
      const device = addon.malloc(64);
      new Float32Array(pinned).set([1, -2, 3, -4]);
      addon.memcpyHtoD(device, new Float32Array(pinned, 0, 4), stream);
      addon.relu(device, 4, stream);
      const back = new Float32Array(4);
      addon.memcpyDtoH(back, device, stream);
      addon.streamSynchronize(stream);
      assert.deepEqual([...back], [1, 0, 3, 0]);
      addon.free(device);
      addon.hostFree(pinned);
      assert.equal(pinned.byteLength, 0, "detached");
      addon.streamDestroy(stream);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
