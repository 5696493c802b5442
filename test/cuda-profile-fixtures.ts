import type { ProfileSample } from "../runtime/profile-cpu.js";

/** Host-side rows as the CPU backend's profiler writes them (the CUDA profiler reuses that measurement). */
export const HOST_SAMPLES: readonly ProfileSample[] = [
  { measurement: "diskRead", size: 4096, shape: "", seconds: 2e-5 },
  { measurement: "diskRead", size: 16 << 20, shape: "", seconds: 8e-3 },
  { measurement: "diskWrite", size: 4096, shape: "", seconds: 3e-5 },
  { measurement: "diskWrite", size: 16 << 20, shape: "", seconds: 1.6e-2 },
  { measurement: "cpuAttention", size: 4 * 512 * 768, shape: "1x512x768", seconds: 4e-4 },
  { measurement: "hostMemcpy", size: 16 << 20, shape: "", seconds: 2e-3 },
];
