/**
 * Finds and loads the CUDA addon, and says why when it cannot: not built, built but unloadable, or
 * loaded with no driver or GPU behind it. Nothing here throws for a missing GPU.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CUDA_NATIVE_FUNCTIONS, type CudaNative, type NativeProbe } from "./native-api.js";

/** Where `npm run build:cuda` puts the addon, relative to the package root. */
export const ADDON_RELATIVE_PATH = "build/cuda/spillway_cuda.node";

/**
 * The addon's path: $SPILLWAY_CUDA_ADDON (relative to the working directory), else
 * build/cuda/spillway_cuda.node under the package root.
 */
export function addonPath(): string {
  const fromEnv = process.env.SPILLWAY_CUDA_ADDON;
  if (fromEnv) return resolve(fromEnv);
  // dist/runtime/cuda/load-native.js → the package root is three levels up.
  return fileURLToPath(new URL(`../../../${ADDON_RELATIVE_PATH}`, import.meta.url));
}

export type NativeLoad =
  | { readonly loaded: true; readonly native: CudaNative; readonly path: string }
  | { readonly loaded: false; readonly reason: string; readonly path: string };

let cached: NativeLoad | undefined;

/** Loads the addon once per process (a failed load is remembered too). */
export function loadNative(path = addonPath()): NativeLoad {
  path = resolve(path);
  if (cached && cached.path === path) return cached;
  cached = loadUncached(path);
  return cached;
}

function loadUncached(path: string): NativeLoad {
  if (!existsSync(path)) {
    return {
      loaded: false,
      path,
      reason: `the CUDA addon is not built (${path} does not exist): run \`npm run build:cuda\` on a machine with nvcc`,
    };
  }
  let module: Record<string, unknown>;
  try {
    module = createRequire(import.meta.url)(path) as Record<string, unknown>;
  } catch (error) {
    return {
      loaded: false,
      path,
      reason: `the CUDA addon at ${path} could not be loaded: ${(error as Error).message.split("\n")[0]} (rebuild it with \`npm run build:cuda\`)`,
    };
  }
  const missing = CUDA_NATIVE_FUNCTIONS.filter((name) => typeof module[name] !== "function");
  if (missing.length > 0) {
    return {
      loaded: false,
      path,
      reason: `the CUDA addon at ${path} is out of date: it lacks ${missing.join(", ")} (rebuild it with \`npm run build:cuda\`)`,
    };
  }
  return { loaded: true, path, native: module as unknown as CudaNative };
}

/** The addon with a usable GPU behind it, or why there is none (for --backend cuda's error). */
export function usableCuda(): { readonly native: CudaNative } | { readonly reason: string } {
  const load = loadNative();
  if (!load.loaded) return { reason: load.reason };
  const probe = load.native.probe();
  if (!probe.ok || probe.deviceCount === 0)
    return { reason: `no usable GPU (${probe.error ?? "no devices"}); \`spillway devices\` says more` };
  return { native: load.native };
}

export interface PcieLink {
  /** e.g. "16.0 GT/s PCIe" as the kernel reports it. */
  readonly speed: string;
  readonly width: number;
  readonly maxSpeed?: string;
  readonly maxWidth?: number;
}

export interface CudaDeviceInfo {
  readonly index: number;
  readonly name: string;
  readonly memoryBytes: number;
  readonly freeBytes?: number;
  readonly computeCapability: string;
  readonly multiprocessors: number;
  readonly l2CacheBytes: number;
  readonly memoryBusWidthBits: number;
  readonly pciBusId: string;
  /** The PCIe link, read from Linux sysfs (absent where sysfs does not show the device, e.g. in some VMs). */
  readonly pcieLink?: PcieLink;
}

export interface CudaStatus {
  readonly available: boolean;
  readonly reason?: string;
  readonly addon?: string;
  readonly runtimeVersion?: string;
  readonly driverVersion?: string;
  readonly devices?: CudaDeviceInfo[];
}

function cudaVersion(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}

function readSysfs(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** The PCIe link of a device at domain:bus:device.0 from /sys/bus/pci/devices. */
export function pcieLink(pciBusId: string, sysfsRoot = "/sys/bus/pci/devices"): PcieLink | undefined {
  const dir = `${sysfsRoot}/${pciBusId.toLowerCase()}`;
  const speed = readSysfs(`${dir}/current_link_speed`);
  const width = Number(readSysfs(`${dir}/current_link_width`));
  if (!speed || !Number.isFinite(width) || width <= 0) return undefined;
  const maxSpeed = readSysfs(`${dir}/max_link_speed`);
  const maxWidth = Number(readSysfs(`${dir}/max_link_width`));
  return {
    speed,
    width,
    ...(maxSpeed ? { maxSpeed } : {}),
    ...(Number.isFinite(maxWidth) && maxWidth > 0 ? { maxWidth } : {}),
  };
}

function hex(n: number, digits: number): string {
  return n.toString(16).padStart(digits, "0");
}

/** What `spillway devices --json` prints under "cuda": never throws for a missing addon, driver or GPU. */
export function cudaStatus(load: NativeLoad = loadNative()): CudaStatus {
  if (!load.loaded) return { available: false, reason: load.reason };
  const native = load.native;
  let probe: NativeProbe;
  try {
    probe = native.probe();
  } catch (error) {
    return { available: false, addon: load.path, reason: `the CUDA addon's probe failed: ${(error as Error).message}` };
  }
  const versions = {
    runtimeVersion: cudaVersion(probe.runtimeVersion),
    ...(probe.driverVersion > 0 ? { driverVersion: cudaVersion(probe.driverVersion) } : {}),
  };
  if (!probe.ok || probe.deviceCount === 0) {
    const why = probe.error ?? "the CUDA runtime reports no devices";
    const hint = probe.driverVersion === 0 ? "no NVIDIA driver was found (libcuda.so.1)" : "no usable GPU was found";
    return { available: false, addon: load.path, ...versions, reason: `${hint}: ${why}` };
  }
  const devices: CudaDeviceInfo[] = [];
  for (let index = 0; index < probe.deviceCount; index++) {
    const p = native.deviceProperties(index);
    const pciBusId = `${hex(p.pciDomain, 4)}:${hex(p.pciBus, 2)}:${hex(p.pciDevice, 2)}.0`;
    let freeBytes: number | undefined;
    try {
      native.setDevice(index);
      freeBytes = native.memGetInfo().freeBytes;
    } catch {
      freeBytes = undefined;
    }
    const link = pcieLink(pciBusId);
    devices.push({
      index,
      name: p.name,
      memoryBytes: p.totalBytes,
      ...(freeBytes !== undefined ? { freeBytes } : {}),
      computeCapability: `${p.major}.${p.minor}`,
      multiprocessors: p.multiprocessors,
      l2CacheBytes: p.l2CacheBytes,
      memoryBusWidthBits: p.memoryBusWidthBits,
      pciBusId,
      ...(link ? { pcieLink: link } : {}),
    });
  }
  return { available: true, addon: load.path, ...versions, devices };
}
