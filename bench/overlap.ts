/**
 * How much the CPU backend's transfers overlap its compute: the same run (a small synthetic OPT, KV
 * cache in host memory, so every layer loads and stores it) with transfers on worker threads and
 * inline, side by side. Printed, not asserted: how much work the OS lets the worker threads do during a
 * compute depends on the machine and its load (test/integration/runtime.test.ts checks what does not: the same
 * tokens and bytes either way, and no transfer during a compute without overlap).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { withCapacities } from "../core/hardware-profile.js";
import type { ModelSpec } from "../core/model-spec.js";
import { resolveHardware } from "../core/resolve-hardware.js";
import { plan } from "../planner/plan.js";
import { run } from "../runtime/run.js";
import { synthesizeOptWeights } from "../runtime/synth-weights.js";

const MODEL: ModelSpec = {
  name: "opt-small",
  family: "opt",
  numLayers: 3,
  hiddenSize: 256,
  ffnSize: 1024,
  numHeads: 4,
  numKvHeads: 4,
  vocabSize: 512,
  maxPositions: 256,
  ffnKind: "relu",
  wordEmbedDim: 256,
  tiedEmbeddings: true,
  bytesPerParam: 2,
};

interface TraceSlice {
  readonly cat: string;
  readonly ts: number;
  readonly dur: number;
  readonly ph: string;
}

/** Transfers (in a run's Chrome trace) that were in flight while a GPU-lane compute ran, and all transfers. */
function overlappingTransfers(tracePath: string): { overlapping: number; transfers: number } {
  const slices = (JSON.parse(readFileSync(tracePath, "utf8")) as { traceEvents: TraceSlice[] }).traceEvents.filter(
    (e) => e.ph === "X" && e.dur > 0,
  );
  const compute = slices.filter((e) => e.cat === "gpu");
  const moves = slices.filter((e) => e.cat !== "gpu" && e.cat !== "cpu");
  const overlapping = moves.filter((m) => compute.some((c) => m.ts < c.ts + c.dur && c.ts < m.ts + m.dur)).length;
  return { overlapping, transfers: moves.length };
}

/** Lines of the overlap benchmark: per mode, the median makespan of `trials` runs and the overlapping transfers. */
export async function benchOverlap(trials = 3): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), "spillway-bench-overlap-"));
  try {
    synthesizeOptWeights(MODEL, dir, { seed: 3 });
    const hardware = withCapacities(resolveHardware("t4"), { gpu: 64 * 2 ** 20, cpu: 2 ** 30, disk: 2 ** 30 });
    const p = await plan({
      model: MODEL,
      hardware,
      workload: { promptLen: 48, genLen: 8 },
      fixed: { gbs: 4, nb: 2, percent: [0, 0, 0, 100, 100, 0] },
    });
    const measure = async (overlap: boolean) => {
      const seconds: number[] = [];
      let counts = { overlapping: 0, transfers: 0 };
      for (let i = 0; i < trials; i++) {
        const tracePath = join(dir, `trace-${overlap}-${i}.json`);
        const r = await run(p, hardware, {
          weightsDir: dir,
          capacityBytes: p.predicted.capacityBytes,
          tracePath,
          overlap,
          reference: false,
        });
        seconds.push(r.makespanSeconds);
        counts = overlappingTransfers(tracePath);
      }
      return { seconds: [...seconds].sort((a, b) => a - b)[Math.floor(seconds.length / 2)]!, ...counts };
    };
    const on = await measure(true);
    const off = await measure(false);
    return [
      `with overlap (worker threads): ${(on.seconds * 1e3).toFixed(0)} ms, ${on.overlapping} of ${on.transfers} transfers in flight during a compute`,
      `without (inline):              ${(off.seconds * 1e3).toFixed(0)} ms, ${off.overlapping} of ${off.transfers} transfers in flight during a compute`,
      `makespan ratio without / with: ${(off.seconds / on.seconds).toFixed(2)}x (median of ${trials} runs each)`,
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
