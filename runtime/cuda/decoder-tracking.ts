/**
 * How the decoder's work is timed and reported with the pass's (cuda-expert-memory.ts's trackCopy and
 * trackCompute: device events around what `issue` enqueues), for `layer` (-1: the step's own).
 */
export interface DecoderTracking {
  /** A copy of activations up (h2d) or back (d2h). */
  copy(link: "h2d" | "d2h", layer: number, bytes: number, issue: () => void): void;
  /** Kernels: a gpu compute slice. */
  compute(layer: number, issue: () => void): void;
}
