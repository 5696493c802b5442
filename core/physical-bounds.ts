/**
 * The physically meaningful ranges every number Spillway reads must lie in (hardware profiles, model
 * specs, workloads, plans). A value outside them is refused where it is read (exit 2, naming the file,
 * the field and the range), so the planner, the LPs and the simulator only ever see sizes and rates a
 * real machine or model could have: no rate of 5e-324 FLOP/s, no latency of 1e308 s, no model of 1e9
 * layers. The ranges are wide (decades beyond today's hardware and models) and documented in the
 * published schemas (schemas/definitions.ts) and docs/bounds.md.
 */
import type { Tier } from "./tiers.js";

/** Rates (bytes, FLOP or values per second): from a slow USB stick's kilobytes to an exascale machine. */
export const MIN_RATE_PER_SECOND = 1e3;
export const MAX_RATE_PER_SECOND = 1e18;

/** Fixed latencies (a kernel launch, a transfer's setup, a dispatch): at most an hour. */
export const MAX_LATENCY_SECONDS = 3600;

/** Capacities per tier: a 16 TiB GPU, 64 TiB of host memory, a 1 PiB disk. */
export const MAX_CAPACITY_BYTES: Readonly<Record<Tier, number>> = { gpu: 2 ** 44, cpu: 2 ** 46, disk: 2 ** 50 };

/** Transfer sizes in a measured curve, and rows in a GEMM curve. */
export const MAX_CURVE_BYTES = 2 ** 50;
export const MAX_CURVE_ROWS = 1e8;
/** A matmul curve's seconds per weight element: at most a second (a rate below MIN_RATE_PER_SECOND is absurd anyway). */
export const MIN_SECONDS_PER_WEIGHT = 1e-18;
export const MAX_SECONDS_PER_WEIGHT = 1;

/** CPU cores of one host. */
export const MAX_CPU_CORES = 65536;
/** Cluster shapes: nodes in a cluster, GPUs in one node (the largest NVLink domains hold 72). */
export const MAX_CLUSTER_NODES = 4096;
export const MAX_GPUS_PER_NODE = 72;

/** Model shapes. */
export const MAX_LAYERS = 1e5;
export const MAX_HIDDEN_SIZE = 1e6;
export const MAX_FFN_SIZE = 1e7;
export const MAX_HEADS = 1e5;
export const MAX_VOCAB_SIZE = 1e8;
export const MAX_POSITIONS = 1e8;
export const MAX_BYTES_PER_PARAM = 8;
export const MAX_EXPERTS = 1e4;
/** All parameters of a model together (1e15: thousands of times today's largest). */
export const MAX_TOTAL_PARAMS = 1e15;

/** Workload: prompt tokens (up to the longest positions a model may have) and generated tokens per sequence. */
export const MAX_PROMPT_TOKENS = MAX_POSITIONS;
export const MAX_GENERATED_TOKENS = 2 ** 17;

/** Policy: sequences per GPU batch and GPU batches per block. */
export const MAX_GPU_BATCH_SIZE = 2 ** 20;
export const MAX_GPU_BATCHES = 2 ** 16;

/** FlexGen's fitted constants, in its own units (GiB/s and TFLOP/s). */
export const MIN_FLEXGEN_GIB_PER_SECOND = 1e-6;
export const MAX_FLEXGEN_GIB_PER_SECOND = 1e9;
export const MIN_FLEXGEN_TFLOPS = 1e-9;
export const MAX_FLEXGEN_TFLOPS = 1e6;
