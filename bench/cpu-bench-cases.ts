/**
 * The CPU-backend policies the fidelity and calibration benches run (OPT-125M, gbs 4 x nb 2): every tier
 * and flag once.
 */
import type { FixedPolicy } from "../planner/plan.js";

export const CPU_BENCH_CASES: { name: string; fixed: FixedPolicy }[] = [
  { name: "all on device", fixed: { percent: [100, 0, 100, 0, 100, 0] } },
  { name: "weights on host", fixed: { percent: [0, 100, 100, 0, 100, 0] } },
  { name: "weights on disk", fixed: { percent: [0, 0, 100, 0, 100, 0] } },
  { name: "KV on host", fixed: { percent: [100, 0, 0, 100, 100, 0] } },
  { name: "weights and KV on disk", fixed: { percent: [0, 0, 0, 0, 100, 0] } },
  { name: "CPU attention", fixed: { percent: [100, 0, 0, 100, 100, 0], cpuAttention: true } },
  { name: "activations on host", fixed: { percent: [100, 0, 100, 0, 0, 100] } },
  {
    name: "4-bit weights and KV",
    fixed: { percent: [50, 50, 50, 50, 100, 0], compressWeight: true, compressCache: true },
  },
];
