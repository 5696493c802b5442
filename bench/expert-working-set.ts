/**
 * `node dist/bench/expert-working-set.js`: does the CPU backend's expert kernel run faster when the
 * experts it cycles through fit in the last-level cache?
 *
 * The MoE fidelity bench's model (4 layers, 8 experts of 3 x 256 x 512) holds ~25 MB of fp16 experts,
 * less than this VM's 105 MiB L3 (lscpu), while `spillway profile --backend cpu` measures its GEMM
 * curves over weights cycled through 96 MiB, and a real MoE model's experts never fit in a cache. So
 * this times the MoE runtime's expert linear (linearAtBits: fp16 and the 4-bit group-wise format) at
 * the bench model's expert shapes (256 -> 512 and 512 -> 256) and the profile's (768 -> 3072, 3072 ->
 * 768), at 1 and 4 rows, over three working sets: one matrix (in L2), the bench model's experts (24
 * MiB) and 256 MiB (2.4 times the L3 here). Times are per weight element, the median of seven
 * batches, both wall-clock and this process's CPU time (user + system, which other processes' load
 * inflates far less than wall-clock time on a shared machine).
 */
import type { ExpertBits } from "../core/expert-policy.js";
import { toFloat16Array } from "../runtime/fp16.js";
import { linearScratchLength } from "../runtime/kernels/linear-f16.js";
import { linearAtBits } from "../runtime/kernels/linear-quantized.js";
import { quantizeGroupwise } from "../runtime/moe/expert-quantization.js";

const MIB = 2 ** 20;
const WORKING_SETS = [
  { name: "one matrix", bytes: 0 },
  { name: "24 MiB", bytes: 24 * MIB },
  { name: "256 MiB", bytes: 256 * MIB },
];
const SHAPES: readonly (readonly [number, number])[] = [
  [256, 512],
  [512, 256],
  [768, 3072],
  [3072, 768],
];

function filled(n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(i * 12.9898) * 0.5;
  return x;
}

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Nanoseconds per weight (wall, CPU) of linearAtBits at m rows over [n, k] weights cycled through `bytes`. */
function time(m: number, k: number, n: number, bits: ExpertBits, bytes: number): { wall: number; cpu: number } {
  const values = filled(n * k);
  const base = bits === 16 ? toFloat16Array(values) : quantizeGroupwise(values, bits);
  const copies = Math.max(1, Math.round(bytes / base.byteLength));
  const weights = Array.from({ length: copies }, () => {
    const copy = base.slice();
    return new Uint16Array(copy.buffer, 0, copy.byteLength / 2);
  });
  const x = filled(m * k);
  const out = new Float32Array(m * n);
  const scratch = linearScratchLength(m, k);
  const tiles = { tile: new Float32Array(scratch.tile), out: new Float32Array(scratch.out) };
  let call = 0;
  const once = () => linearAtBits(x, weights[call++ % copies]!, undefined, out, { m, k, n, bits }, tiles);
  for (let i = 0; i < copies + 20; i++) once(); // every copy touched, the kernel compiled
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let b = 0; b < 7; b++) {
    const w0 = performance.now();
    const c0 = cpuMs();
    let reps = 0;
    do {
      once();
      reps++;
    } while (performance.now() - w0 < 60);
    wall.push(((performance.now() - w0) / reps / (k * n)) * 1e6);
    cpu.push(((cpuMs() - c0) / reps / (k * n)) * 1e6);
  }
  return { wall: median(wall), cpu: median(cpu) };
}

console.log(
  `ns per weight (wall / CPU time), weights cycled through: ${WORKING_SETS.map((w) => w.name.padStart(15)).join("")}`,
);
for (const bits of [16, 4] as const) {
  for (const m of [1, 4]) {
    for (const [k, n] of SHAPES) {
      const cells = WORKING_SETS.map(({ bytes }) => {
        const t = time(m, k, n, bits, bytes);
        return `${t.wall.toFixed(2)} / ${t.cpu.toFixed(2)}`.padStart(15);
      });
      console.log(`${`${bits}-bit, ${m} row${m > 1 ? "s" : ""}, ${k} -> ${n}`.padEnd(44)}${cells.join("")}`);
    }
  }
}
