/**
 * Thread synchronisation of the CPU backend: what one CPU split of a llama.cpp graph pays in barriers,
 * counted from ggml-org/ggml src/ggml-cpu/ggml-cpu.c (commit d99724f2, 2026-08-21) and priced at a barrier
 * cost measured by llama.cpp's own microbenchmark.
 *
 * Count. `ggml_backend_cpu_graph_compute` runs a split through `ggml_graph_compute`; in the default Linux build
 * (GGML_OPENMP on) that is one `#pragma omp parallel` region (libgomp: the team's start and end are barriers of
 * the pool) with an `omp single` inside (an implicit barrier), then `ggml_graph_compute_thread`: a
 * `ggml_barrier` after every node but the last and one after the loop (`ggml_barrier` is `#pragma omp
 * barrier`). `ggml_compute_forward_mul_mat` and `ggml_compute_forward_mul_mat_id` each pass one more barrier
 * after converting the activations to the weight's `vec_dot_type`. RMS_NORM followed by its MUL by the weight
 * is one node on the CPU (`ggml_cpu_try_fuse_ops`).
 *
 * Rate. llama.cpp tests/test-barrier.cpp times a graph of 2000 small MUL_MAT nodes (64 x 128 Q4_0), each
 * passing two barriers (the mat-mul's own and the node's). slaren's run in ggml-org/llama.cpp PR 9461
 * (2024-09-17, Intel Core i9-13900K, OpenMP build): 474 ns per node on 1 thread (the node's work, no barrier),
 * 1039.47 ns per node on 8 threads. With the work split over 8 threads, synchronisation is
 * 1039.47 - 474 / 8 = 980 ns per node, 490 ns per barrier. Measured on a different CPU than the ones priced
 * (a stand-in, like the profiles' copy latencies) and at 8 threads, whatever `-t` is: the count, not this rate,
 * is what the source fixes. Other runs in PR 9461 and PR 9598 give 2.07 and 3.16 us per node at 8 threads
 * (unnamed 4.2 GHz machine, AMD EPYC); the named Intel desktop part is the closest to the Intel hosts priced.
 */
export const BARRIER_SECONDS = (1039.47e-9 - 474e-9 / 8) / 2;

/** Barriers a CPU split pays besides its nodes': libgomp's team start and end, and the `omp single`'s. */
export const SPLIT_BARRIERS = 3;

/** Barriers of `nodes` CPU nodes of which `matmuls` are mul_mat or mul_mat_id: one after each node, one more inside each mat-mul. */
export function nodeBarriers(nodes: number, matmuls: number): number {
  return nodes + matmuls;
}
