/** What `run()` takes beside the plan and the profile. */
import type { OnProgress } from "../core/progress.js";
import type { ScheduleName } from "../core/schedule-name.js";
import type { TraceOptions } from "../simulator/open-trace-sink.js";
import type { CudaNative } from "./cuda/native-api.js";

export interface RunOptions extends TraceOptions {
  readonly weightsDir: string;
  readonly schedule?: ScheduleName;
  readonly capacityBytes: { readonly gpu: number; readonly cpu: number; readonly disk: number };
  /** Where offload files go (a fresh subdirectory is made and removed). Default: the OS temp dir. */
  readonly offloadDir?: string;
  /** Also run the all-on-device reference and compare tokens (default true). */
  readonly reference?: boolean;
  readonly promptSeed?: number;
  /**
   * Run transfers and disk I/O on worker threads beside the compute (default: the plan's `overlap`;
   * an MoE plan on the CPU backend: false, its device being the host's cores, run-moe-plan.ts).
   * Without, every transfer runs on the main thread when issued.
   */
  readonly overlap?: boolean;
  /** Where the plan runs (default "cpu"). The all-on-device reference always runs on the CPU backend. */
  readonly backend?: "cpu" | "cuda";
  /** The CUDA backend's device interface (default: the built addon; tests pass the emulated device). */
  readonly cudaNative?: CudaNative;
  /**
   * Called as the run computes, one layer of one GPU batch at a time: phase "run" for the plan, then
   * "reference" for the all-on-device reference run.
   */
  readonly onProgress?: OnProgress;
  /**
   * Mixture-of-Experts plans: write the routing the run recorded (router choices, and the speculative
   * prefetcher's guesses) to this file as a routing CSV, which `plan --routing` and `simulate --routing`
   * read. Dense plans have no routing: refused.
   */
  readonly routingPath?: string;
  /**
   * Worker threads that quantise 4-bit weights while they are placed (default: the machine's cores, at
   * most 16; below 2, the main thread quantises). The bytes are the same either way.
   */
  readonly encoderThreads?: number;
}
