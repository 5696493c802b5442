/**
 * The ZeRO stage-3 settings that decide how ZeRO-Inference fetches parameters, with DeepSpeed's own
 * defaults (deepspeed/runtime/zero/config.py DeepSpeedZeroConfig, offload_config.py
 * DeepSpeedZeroOffloadParamConfig, swap_tensor/constants.py) and the configuration FlexGen's benchmark
 * harness ran its ZeRO-Inference baseline with (FlexGen benchmark/hf_ds/hf_opt.py get_ds_opt_model).
 */

/**
 * How the one-GPU fetch moves a module's parameters:
 * - "no-gather" (DeepSpeed since the one-rank shortcut, HEAD edaa722: partition_parameters.py
 *   `_no_gather_coalesced` / NoGatherHandle): `ds_tensor.to(device, non_blocking=True)` on the all-gather
 *   stream, a view, nothing else;
 * - "all-gather-coalesced" (v0.7.7, the version FlexGen's harness installs: partition_parameters.py
 *   `all_gather_coalesced` and AllGatherCoalescedHandle.wait): each parameter's blocking `.to(device)`
 *   (the host waits for the copy), a `torch.cat` of them into a flat GPU buffer, a one-rank all-gather in
 *   place, and in `wait()` a second `torch.cat` per parameter that copies it out of the flat buffer.
 */
export type ZeroFetchPath = "no-gather" | "all-gather-coalesced";

export interface ZeroInferenceConfig {
  /** The one-GPU fetch code path of the DeepSpeed version run. */
  readonly fetchPath: ZeroFetchPath;
  /** stage3_param_persistence_threshold: parameters with at most this many elements stay on the GPU (parameter_offload.py mark_persistent_parameters). */
  readonly paramPersistenceThresholdNumel: number;
  /**
   * stage3_max_reuse_distance: a parameter used again within this many elements of later modules is kept
   * instead of released (PartitionedParameterCoordinator.__params_to_release).
   */
  readonly maxReuseDistanceNumel: number;
  /** offload_param.buffer_count: pinned swap-in buffers for NVMe offload (one parameter each). */
  readonly nvmeBufferCount: number;
  /** offload_param.buffer_size: elements per swap-in buffer; it must hold the largest NVMe parameter. */
  readonly nvmeBufferNumel: number;
  /**
   * Parameters smaller than this many bytes are not swapped to NVMe but kept in host memory
   * (partitioned_param_swapper.py swappable_tensor: max(MIN_AIO_BYTES = 1 MiB, aio block_size)).
   */
  readonly nvmeMinBytes: number;
  readonly source: string;
}

/** 1 MiB: swap_tensor/utils.py MIN_AIO_BYTES and constants.py AIO_BLOCK_SIZE_DEFAULT. */
const MIN_AIO_BYTES = 1024 ** 2;

export const DEEPSPEED_DEFAULT_ZERO_CONFIG: ZeroInferenceConfig = {
  fetchPath: "no-gather",
  paramPersistenceThresholdNumel: 1e5,
  maxReuseDistanceNumel: 1e9,
  nvmeBufferCount: 5,
  nvmeBufferNumel: 1e8,
  nvmeMinBytes: MIN_AIO_BYTES,
  source:
    "DeepSpeed HEAD (edaa722) defaults and one-GPU fetch path: zero/config.py (param_persistence_threshold 1e5, max_reuse_distance 1e9), offload_config.py (buffer_count 5, buffer_size 1e8), swap_tensor/utils.py MIN_AIO_BYTES",
};

/**
 * FlexGen's harness: stage3_param_persistence_threshold 0 (every parameter is fetched),
 * stage3_prefetch_bucket_size hidden^2, NVMe buffer_count 5 and buffer_size 2 * GB elements
 * (flexgen/utils.py GB = 2^30), aio block_size 1 MiB; the other settings are DeepSpeed's defaults. The
 * harness runs DeepSpeed v0.7.7 (FlexGen benchmark/third_party/README.md), whose one-GPU fetch is the
 * all-gather path.
 */
export const FLEXGEN_HARNESS_ZERO_CONFIG: ZeroInferenceConfig = {
  fetchPath: "all-gather-coalesced",
  paramPersistenceThresholdNumel: 0,
  maxReuseDistanceNumel: DEEPSPEED_DEFAULT_ZERO_CONFIG.maxReuseDistanceNumel,
  nvmeBufferCount: 5,
  nvmeBufferNumel: 2 * 2 ** 30,
  nvmeMinBytes: MIN_AIO_BYTES,
  source:
    "FlexGen benchmark/hf_ds/hf_opt.py get_ds_opt_model (ds_config), DeepSpeed v0.7.7's fetch path (benchmark/third_party/README.md), DeepSpeed defaults elsewhere",
};
