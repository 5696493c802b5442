/**
 * The largest single host-to-GPU copy of layer weights under Spillway's schedule. A link serves one
 * copy at a time and a copy, once started, runs to its end, so a small latency-critical copy issued on
 * another stream (the output of CPU attention going back up, a hidden state, a KV load) waits behind
 * whatever copy holds the link. A whole layer as one copy is about 1 GB for OPT-175B with 4-bit
 * weights, 85 ms on a T4's PCIe 3.0 x16, during which each CPU-attended batch's output waited and the
 * GPU idled (the default plan's decode took 37% longer than planned). In pieces of this size the wait
 * is at most one piece (1.4 ms at the T4's measured 12 GB/s), while the fixed cost of the extra copies
 * (2.6 us each on the T4) stays under 0.2% of the copy time. Larger pieces left the CPU-attention
 * chain waiting often enough to matter (llama-2-7b on an L4: decode 19.1 s simulated in 64 MiB pieces,
 * 18.1 s in 32 MiB, 15.3 s in 16 MiB, 15.2 s in 4 MiB); smaller ones multiply the simulator's tasks.
 * A design choice of the runtime, not a hardware constant: the CUDA backend copies weights in these
 * pieces (runtime/cuda/cuda-weights.ts) and the simulator issues one task per piece
 * (simulator/schedule-builder.ts).
 */
export const WEIGHT_COPY_CHUNK_BYTES = 16 * 2 ** 20;
