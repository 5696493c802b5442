/**
 * A run's progress, counted in computed steps (one layer of one GPU batch for one token): genLen x
 * numLayers x numGpuBatches steps in all, so the prefill, the longest token, moves layer by layer too.
 */
import type { OnProgress } from "../core/progress.js";
import type { ZigzagShape } from "../schedule/zigzag.js";

/** Reports 0 done at once, then one more step at each call ("token 2/5, layer 3/24"). */
export function runProgress(
  onProgress: OnProgress | undefined,
  phase: string,
  shape: ZigzagShape,
): (at: { readonly token: number; readonly layer: number }) => void {
  if (!onProgress) return () => {};
  const total = Math.max(1, shape.genLen * shape.numLayers * shape.numGpuBatches);
  let done = 0;
  onProgress({ phase, done, total });
  return ({ token, layer }) => {
    done = Math.min(total, done + 1);
    onProgress({
      phase,
      done,
      total,
      detail: `token ${token + 1}/${shape.genLen}${token === 0 ? " (prefill)" : ""}, layer ${layer + 1}/${shape.numLayers}`,
    });
  };
}
