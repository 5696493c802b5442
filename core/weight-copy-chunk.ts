/**
 * The largest single host-to-GPU copy of layer weights under Spillway's schedule. A link serves one
 * copy at a time and a copy, once started, runs to its end, so a small latency-critical copy issued on
 * another stream (the output of CPU attention going back up, a hidden state, a KV load) waits behind
 * whatever copy holds the link. A whole layer as one copy is about 1 GB for OPT-175B with 4-bit
 * weights, 85 ms on a T4's PCIe 3.0 x16, during which each CPU-attended batch's output waited and the
 * GPU idled (the default plan's decode took 37% longer than planned). In pieces of this size the wait
 * is at most one piece (5.6 ms at the T4's measured 12 GB/s), while the fixed cost of the extra copies
 * (2.6 us each on the T4) stays under 0.1% of the copy time.
 * A design choice of the runtime, not a hardware constant: the CUDA backend copies weights in these
 * pieces (runtime/cuda/cuda-weights.ts) and the simulator issues one task per piece
 * (simulator/schedule-builder.ts).
 */
export const WEIGHT_COPY_CHUNK_BYTES = 16 * 2 ** 20;
