/**
 * The CUDA backend as the MoE runner's expert device (runtime/moe/expert-device.ts): a pass's routed
 * experts live in a device pool and run on the device (cuda-expert-memory.ts), with the CPU backend's
 * cache policy (ExpertStore), routing and prefetch decisions unchanged.
 *
 * The pool is the plan's GPU memory: the decoder's non-expert weights, KV cache and activations
 * (cuda-mixtral-decoder.ts: attention, norms, routers, the shared expert and the LM head run on the
 * device, on the experts' compute stream), the expert cache, staging block and prefetch buffers, and the
 * experts' activations (inputs, outputs, SwiGLU scratch). The runner's arena only stages the non-expert
 * weights on the host for their upload, so the pass's device peak is the pool's. Home copies are
 * page-locked (hostAlloc), so copies are truly asynchronous and CPU-computed misses read the same bytes.
 */
import type { ExpertDevice, OpenExpertDevice } from "../moe/expert-device.js";
import { expertStoredBytes } from "../moe/quantized-weights.js";
import { CudaExpertMemory } from "./cuda-expert-memory.js";
import { CudaMixtralDecoder } from "./cuda-mixtral-decoder.js";
import { DevicePool } from "./device-pool.js";
import type { CudaNative } from "./native-api.js";

/** @param overlap copies on their own stream (false: on the compute stream, in program order). */
export function cudaExpertDevice(native: CudaNative, overlap = true): ExpertDevice {
  return {
    async open(setup): Promise<OpenExpertDevice> {
      const { model, policy } = setup;
      const pinnedBuffers: ArrayBuffer[] = [];
      const streams: number[] = [];
      let pool: DevicePool | undefined;
      let memory: CudaExpertMemory | undefined;
      let origin: number | undefined;
      const close = async () => {
        try {
          native.deviceSynchronize(); // a successful pass has synchronised already (drain)
        } catch {
          // the pass's own error is the one to report
        } finally {
          memory?.destroy();
          if (origin !== undefined) native.eventDestroy(origin);
          for (const stream of streams) native.streamDestroy(stream);
          for (const buffer of pinnedBuffers) native.hostFree(buffer);
          pool?.close();
        }
      };
      try {
        const pinned = (bytes: number) => {
          const buffer = native.hostAlloc(Math.max(1, bytes));
          pinnedBuffers.push(buffer);
          return buffer;
        };
        const bytes = expertStoredBytes(model, policy.bits);
        const homes = new Uint8Array(pinned(setup.host.length * (setup.host[0]?.length ?? 0) * bytes));
        let at = 0;
        const host = setup.host.map((layer) =>
          layer.map((copy) => {
            homes.set(new Uint8Array(copy.buffer, copy.byteOffset, copy.byteLength), at);
            const view = new Uint16Array(homes.buffer, at, copy.length);
            at += bytes;
            return view;
          }),
        );
        pool = new DevicePool(native, setup.capacityBytes);
        const compute = native.streamCreate();
        streams.push(compute);
        const copy = overlap ? native.streamCreate() : compute;
        if (overlap) streams.push(copy);
        native.deviceSynchronize();
        origin = native.eventCreate(true);
        native.eventRecord(origin, copy);
        native.eventSynchronize(origin);
        const epochMs = performance.timeOrigin + performance.now();
        const open = new CudaExpertMemory(
          native,
          pool,
          host,
          model,
          policy.bits,
          setup.rowsPerStep * model.moe!.expertsPerToken,
          { compute, copy },
          { event: origin, epochMs },
          { onCopy: setup.onCopy, onExpert: setup.onExpert, onCompute: setup.onCompute },
          pinned,
        );
        memory = open;
        const devicePool = pool;
        return {
          memory: open,
          host,
          backend: "cuda",
          peakBytes: () => devicePool.peakBytes,
          decoder: (decoderSetup) =>
            new CudaMixtralDecoder(
              native,
              devicePool,
              compute,
              pinned,
              decoderSetup,
              {
                copy: (link, layer, bytes, issue) =>
                  open.trackCopy(link, link === "h2d" ? "activations-in" : "activations-out", layer, bytes, issue),
                compute: (layer, issue) => open.trackCompute(layer, issue),
              },
              policy,
            ),
          drain: () => {
            native.deviceSynchronize();
            open.report(true);
          },
          close,
        };
      } catch (error) {
        await close();
        throw error;
      }
    },
  };
}
