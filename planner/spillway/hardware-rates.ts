/** The effective rates the Spillway cost model reads off a profile (measured where known, else datasheet). */
import { effective, type HardwareProfile } from "../../core/hardware-profile.js";

export interface HardwareRates {
  readonly gpuFlopsPerSecond: number;
  readonly gpuMemoryBytesPerSecond: number;
  readonly kernelLaunchSeconds: number;
  readonly cpuFlopsPerSecond: number;
  readonly cpuMemoryBytesPerSecond: number;
  readonly h2dBytesPerSecond: number;
  /** Host->device rate from pageable memory; without a figure, a pageable copy is modelled as a CPU memcpy into a pinned buffer followed by a pinned copy. */
  readonly h2dPageableBytesPerSecond: number | undefined;
  readonly h2dLatencySeconds: number;
  readonly d2hBytesPerSecond: number;
  readonly d2hLatencySeconds: number;
  readonly diskReadBytesPerSecond: number;
  readonly diskWriteBytesPerSecond: number;
  readonly diskLatencySeconds: number;
  readonly capacityBytes: { readonly gpu: number; readonly cpu: number; readonly disk: number };
}

export function hardwareRates(profile: HardwareProfile): HardwareRates {
  return {
    gpuFlopsPerSecond: effective(profile.gpu.fp16MatmulFlopsPerSecond),
    gpuMemoryBytesPerSecond: effective(profile.gpu.memoryBandwidthBytesPerSecond),
    kernelLaunchSeconds: effective(profile.gpu.kernelLaunchSeconds),
    cpuFlopsPerSecond: effective(profile.cpu.fp32FlopsPerSecond),
    cpuMemoryBytesPerSecond: effective(profile.cpu.memoryBandwidthBytesPerSecond),
    h2dBytesPerSecond: effective(profile.hostToDevice.pinnedBytesPerSecond),
    h2dPageableBytesPerSecond: profile.hostToDevice.pageableBytesPerSecond ? effective(profile.hostToDevice.pageableBytesPerSecond) : undefined,
    h2dLatencySeconds: effective(profile.hostToDevice.latencySeconds),
    d2hBytesPerSecond: effective(profile.deviceToHost.pinnedBytesPerSecond),
    d2hLatencySeconds: effective(profile.deviceToHost.latencySeconds),
    diskReadBytesPerSecond: effective(profile.disk.readBytesPerSecond),
    diskWriteBytesPerSecond: effective(profile.disk.writeBytesPerSecond),
    diskLatencySeconds: effective(profile.disk.latencySeconds),
    capacityBytes: { gpu: profile.capacityBytes.gpu.value, cpu: profile.capacityBytes.cpu.value, disk: profile.capacityBytes.disk.value },
  };
}
