/**
 * An upper bound on the exact throughput of every policy with given weight and KV compression that
 * fits in memory, from the disk reads alone: when a layer's weights cannot all stay in GPU and CPU
 * memory, whatever is left over (weights, or the KV cache of the sequences that made room for them)
 * is read from disk at every token step. The search skips a whole family of discrete choices when
 * this bound is below the best policy it has already scored (spillway-search.ts), so the bound must
 * hold for every placement the family's repair could end at, at any gbs and nb.
 *
 * The argument, in the terms of step-costs.ts and evaluate-policy.ts (L layers, prompt s, n tokens
 * generated, block of bls = gbs x nb sequences, disk read rate B):
 *
 * 1. Time: under every schedule (layer-time.ts) a layer's wall time is at least its weights' disk time
 *    plus nb times one batch's (w.diskRead + nb b.diskRead: a bound of its own under the Spillway
 *    schedule, the sum of all resources without overlap, a lane's first step plus nb - 1 more under
 *    FlexGen's), and the head's serial seconds include its disk reads, so the exact total seconds are
 *    at least busySeconds.diskRead. The weights' disk reads, wd x W / B per layer (plus latencies),
 *    happen at the prefill and at each of the n - 1 decode steps; the KV reads, cd x gbs x
 *    kvRead(s + i) / B per batch (plus latencies) at decode step i, kvRead(c) = 2 (c - 1) kv 2 cf.
 *    So  T >= (L / B) (n wd W + bls cd sigma K),  K = 2 (s + n) kv 2 cf (one sequence's stored KV of
 *    one layer, step-costs memory()), sigma = sum over i of kvRead(s + i) / K.
 * 2. Bytes: the time reads the parameter fraction wd of W (a layer's stored bytes); the layer's stored
 *    bytes on disk, D, are at most maxBytesPerParam / (W / P) times that (P: a layer's parameters), so
 *    wd W >= rho D with rho = (W / P) / maxBytesPerParam (1 without compression).
 * 3. Memory: the GPU's peak holds at least L (layer bytes on the GPU) + L bls cg K and the CPU's at
 *    least L (layer bytes on the CPU) + L bls cc K (every other term of memory() is non-negative);
 *    both fit, so with cg + cc + cd = 1 and the three tiers' layer bytes adding up to W:
 *    D + bls cd K >= W + bls K - (GPU + CPU capacity) / L = bls K + Delta.
 * 4. Together: T >= (L / B) m (bls K + Delta), m = min(n rho, sigma). When Delta > 0 (the weights alone
 *    overflow GPU and CPU memory), throughput = bls n / T < n B / (L m K) for every bls.
 *
 * Time added to the cost model elsewhere (stalls, another resource's work) only raises T: the bound
 * stays valid. It reads: the layer time bounds (layer-time.ts: w[r] + nb b[r] for r = diskRead), the
 * disk reads of weightLoad and batchStep and the weight and KV terms of memory() (step-costs.ts), and
 * predictTime's total (evaluate-policy.ts).
 */
import type { ModelSpec } from "../../core/model-spec.js";
import { layerWeightTensors } from "../../core/model-spec.js";
import { storedTensorBytes } from "../../core/realize-placement.js";
import type { Workload } from "../../core/workload.js";
import { VariableSpace } from "../lp/affine.js";
import { costConstants } from "./cost-constants.js";
import type { HardwareRates } from "./hardware-rates.js";
import { StepCostModel } from "./step-costs.js";

/** Relative slack for the rounding of the figures compared (far above float error, far below any gap used). */
const ROUNDING_SLACK = 1e-9;

/**
 * Tokens per second that no policy with this weight and KV compression can reach while fitting in
 * memory (the argument above); Infinity when the disk reads give no bound (the weights fit in GPU and
 * CPU memory, or nothing is generated after the prompt).
 */
export function diskReadThroughputBound(
  model: ModelSpec,
  rates: HardwareRates,
  workload: Workload,
  compression: { readonly compressWeight: boolean; readonly compressCache: boolean },
): number {
  const { promptLen: s, genLen: n } = workload;
  const L = model.numLayers;
  const constants = costConstants(model, compression.compressWeight);
  const W = constants.layerStoredBytes;
  const capacity = rates.capacityBytes.gpu + rates.capacityBytes.cpu;
  const delta = W - capacity / L;
  if (!(delta > 0)) return Infinity;
  // The cost model's own KV width and stored fraction (StepCostModel reads no placement for these).
  const costModel = new StepCostModel(
    model,
    rates,
    workload,
    {
      gbs: 1,
      nb: 1,
      ...compression,
      cpuAttention: false,
      activationTier: "gpu",
      pinWeight: true,
      overlap: true,
      schedule: "spillway",
    },
    constants,
    new VariableSpace([]),
  );
  const kvBytesPerToken = 2 * costModel.kv * 2 * costModel.cacheFactor;
  const K = (s + n) * kvBytesPerToken;
  let kvReadBytes = 0;
  for (let i = 1; i < n; i++) kvReadBytes += (s + i - 1) * kvBytesPerToken;
  const sigma = kvReadBytes / K;
  let maxBytesPerParam = 0;
  for (const t of layerWeightTensors(model))
    for (const matrix of [false, true])
      maxBytesPerParam = Math.max(
        maxBytesPerParam,
        storedTensorBytes({ params: t.params, matrix }, model, compression.compressWeight) / t.params,
      );
  const rho = W / constants.layerParams / maxBytesPerParam;
  const m = Math.min(n * rho, sigma);
  if (!(m > 0 && K > 0)) return Infinity;
  return ((n * rates.diskReadBytesPerSecond) / (L * m * K)) * (1 + ROUNDING_SLACK);
}
