/**
 * The host emulation of the CUDA runtime (native/cuda/host/, scripts/build-cuda-host.mjs) catches what
 * it claims to: kernels.cu altered three ways (a missing barrier, a shuffle only half a warp reaches, a
 * misaligned WMMA pointer) fails where the real kernels.cu passes, and pointers that are not device
 * memory are refused with the call named. Skipped where no C++ compiler or Node's headers are found.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadNative } from "../../runtime/cuda/load-native.js";
import type { CudaNative } from "../../runtime/cuda/native-api.js";
import { CLI, random } from "../helpers.js";
import { hostCudaAddon } from "../host-cuda-addon.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const host = hostCudaAddon();
const skip = "reason" in host ? { skip: `no host build of the CUDA sources here: ${host.reason}` } : {};

/** kernels.cu with `from` replaced by `to`, where `from` occurs exactly once. */
function alter(source: string, from: string, to: string): string {
  const at = source.indexOf(from);
  assert.ok(
    at >= 0 && source.indexOf(from, at + 1) < 0,
    `kernels.cu no longer holds exactly one ${JSON.stringify(from)}: update this test`,
  );
  return source.slice(0, at) + to + source.slice(at + from.length);
}

const ALTERATIONS: [string, string][] = [
  // The GEMV reads the staged x tile without waiting for the threads that stage it.
  ["xs[r * KT + e] = __ldg(xRow + e);\n    }\n    __syncthreads();\n", "xs[r * KT + e] = __ldg(xRow + e);\n    }\n"],
  // Half of each warp skips the block reduction's shuffles and goes on to __syncthreads.
  [
    "  v = MAX ? warpMax(v) : warpSum(v);\n  __syncthreads();",
    "  if (lane < 16) v = MAX ? warpMax(v) : warpSum(v);\n  __syncthreads();",
  ],
  // A matrix_b fragment loaded 16 bytes past a 32-byte boundary.
  [
    "wmma::load_matrix_sync(b[j], Bs + (wc * 32 + j * 16) * GEMM_LDS + kk, GEMM_LDS);",
    "wmma::load_matrix_sync(b[j], Bs + (wc * 32 + j * 16) * GEMM_LDS + kk + 8, GEMM_LDS);",
  ],
];

let work: string | undefined;
let altered: CudaNative | undefined;

before(async () => {
  if ("reason" in host) return;
  work = mkdtempSync(join(tmpdir(), "spillway-host-cuda-"));
  let source = readFileSync(join(ROOT, "native", "cuda", "kernels.cu"), "utf8");
  for (const [from, to] of ALTERATIONS) source = alter(source, from, to);
  const kernels = join(work, "kernels-altered.cu");
  writeFileSync(kernels, source);
  const out = join(work, "altered.node");
  const child = spawn(
    process.execPath,
    [join(ROOT, "scripts", "build-cuda-host.mjs"), "--quiet", "--require", "--kernels", kernels, "--out", out],
    { cwd: ROOT },
  );
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  assert.equal(code, 0, `building the altered kernels.cu failed:\n${output}`);
  const load = loadNative(out);
  assert.ok(load.loaded, load.loaded ? "" : load.reason);
  altered = load.native;
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Runs `linear` with random inputs on `native`; returns the output and a float64 reference. */
function linear(native: CudaNative, m: number, k: number, n: number): { out: Float32Array; reference: Float64Array } {
  const rand = random(m * 1000 + k + n);
  const x = Float32Array.from({ length: m * k }, () => rand() * 2 - 1);
  const w = new Uint16Array(n * k).fill(0x3c00); // 1.0
  const dx = native.malloc(x.byteLength);
  const dw = native.malloc(w.byteLength);
  const dout = native.malloc(m * n * 4);
  try {
    native.memcpyHtoD(dx, x, 0);
    native.memcpyHtoD(dw, w, 0);
    native.linear(dx, dw, 0, dout, m, k, n, 0);
    const out = new Float32Array(m * n);
    native.memcpyDtoH(out, dout, 0);
    native.streamSynchronize(0);
    const reference = new Float64Array(m * n);
    for (let r = 0; r < m; r++) {
      let sum = 0;
      for (let i = 0; i < k; i++) sum += x[r * k + i]!;
      reference.fill(sum, r * n, (r + 1) * n);
    }
    return { out, reference };
  } finally {
    for (const p of [dx, dw, dout]) native.free(p);
  }
}

function maxError(out: Float32Array, reference: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < out.length; i++)
    worst = Math.max(worst, Number.isNaN(out[i]!) ? Infinity : Math.abs(out[i]! - reference[i]!));
  return worst;
}

/** ReLU of four values at device pointer p, read back. */
function assertReluWorks(native: CudaNative, p: number): void {
  native.memcpyHtoD(p, new Float32Array([-1, 2, -3, 4]), 0);
  native.relu(p, 4, 0);
  const back = new Float32Array(4);
  native.memcpyDtoH(back, p, 0);
  assert.deepEqual(Array.from(back), [0, 2, 0, 4]);
}

function layerNorm(native: CudaNative): void {
  const cols = 300;
  const x = native.malloc(cols * 4);
  const gamma = native.malloc(cols * 4);
  const beta = native.malloc(cols * 4);
  try {
    native.memcpyHtoD(x, new Float32Array(cols).fill(1), 0);
    native.memcpyHtoD(gamma, new Float32Array(cols).fill(1), 0);
    native.memcpyHtoD(beta, new Float32Array(cols), 0);
    native.layerNorm(x, gamma, beta, x, 1, cols, 1e-5, 0);
  } finally {
    for (const p of [x, gamma, beta]) native.free(p);
  }
}

test("host emulation: the real kernels.cu computes the GEMV, the tensor-core GEMM and LayerNorm", skip, () => {
  if (!("native" in host)) return;
  for (const [m, k, n] of [
    [2, 64, 64],
    [20, 64, 64],
  ] as const) {
    const { out, reference } = linear(host.native, m, k, n);
    assert.ok(maxError(out, reference) < 1e-4, `linear ${m}x${k}x${n}`);
  }
  layerNorm(host.native);
});

test(
  "host emulation: a GEMV that reads shared memory before the barrier computes garbage (threads run in shuffled order over poisoned shared memory)",
  skip,
  () => {
    assert.ok(altered);
    const { out, reference } = linear(altered, 2, 64, 64);
    assert.ok(maxError(out, reference) > 1e-2, "the missing __syncthreads went unnoticed");
  },
);

test(
  "host emulation: a shuffle that half a warp skips fails the launch as divergence, naming the kernel and line",
  skip,
  () => {
    assert.ok(altered);
    assert.throws(
      () => layerNorm(altered!),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, "cudaErrorLaunchFailure");
        assert.match(
          error.message,
          /^layerNorm\(.*layer_norm_kernel, block \(0, 0, 0\): warp 0 diverged: 16 lanes wait at __shfl_xor_sync \(line \d+\), 0 exited, 16 wait at __syncthreads/,
        );
        return true;
      },
    );
    // The launch failure is not sticky: the next launch works.
    const p = altered.malloc(16);
    try {
      assertReluWorks(altered, p);
    } finally {
      altered.free(p);
    }
  },
);

test("host emulation: a WMMA fragment pointer off its 32-byte alignment fails the launch", skip, () => {
  assert.ok(altered);
  assert.throws(
    () => linear(altered!, 20, 64, 64),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, "cudaErrorLaunchFailure");
      assert.match(
        error.message,
        /linear_wmma_kernel<true>, thread \(\d+, 0, 0\) of block \(0, 0, 0\): wmma::load_matrix_sync \(matrix_b, col_major\): pointer 0x[0-9a-f]+ is not 32-byte aligned/,
      );
      return true;
    },
  );
});

test("host emulation: kernels and copies refuse memory that is not on the device, naming the call", skip, () => {
  if (!("native" in host)) return;
  const native = host.native;
  const p = native.malloc(256);
  try {
    // An address outside every cudaMalloc allocation as a kernel argument.
    assert.throws(
      () => native.relu(8, 4, 0),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, "cudaErrorInvalidDevicePointer");
        assert.match(error.message, /relu_kernel: argument 0 \(0x8\) is not device memory/);
        return true;
      },
    );
    // A copy running past the end of its allocation, and a device-to-device copy from host memory.
    assert.throws(
      () => native.memcpyHtoD(p, new Float32Array(65), 0),
      /cudaMemcpyAsync\(HtoD.*destination 0x[0-9a-f]+ \+ 260 bytes is not inside one device allocation/,
    );
    assert.throws(
      () => native.memcpyDtoD(p, 4096, 16, 0),
      /source 0x1000 \+ 16 bytes is not inside one device allocation/,
    );
    // The device still works after the refused calls.
    assertReluWorks(native, p);
  } finally {
    native.free(p);
  }
});

test(
  "spillway devices --json over the host build (SPILLWAY_CUDA_ADDON, relative to the working directory) lists the emulated device, named as not a GPU",
  skip,
  () => {
    if (!("native" in host)) return;
    const r = spawnSync(process.execPath, [CLI, "devices", "--json"], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, SPILLWAY_CUDA_ADDON: relative(ROOT, host.path) },
    });
    assert.equal(r.status, 0, r.stderr);
    const cuda = JSON.parse(r.stdout).cuda;
    assert.equal(cuda.available, true, JSON.stringify(cuda));
    assert.equal(cuda.addon, host.path);
    assert.equal(cuda.devices.length, 1);
    assert.match(cuda.devices[0].name, /host emulation \(CPU, not a GPU\)/);
    assert.equal(cuda.devices[0].computeCapability, "0.0");
    assert.equal(cuda.devices[0].pcieLink, undefined);
  },
);
