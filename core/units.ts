/** Binary gigabyte (2^30 bytes): FlexGen's "GB", and what --gpu-mem/--cpu-mem/--disk-mem take (GiB). */
export const GIB = 2 ** 30;
/** 10^12, FlexGen's "T" for FLOP/s. */
export const TERA = 1e12;

/** A figure to `digits` significant digits, never in exponent notation: whole from 10^digits up (85490, not 8.549e+4). */
export function formatSignificant(x: number, digits = 4): string {
  return Math.abs(x) >= 10 ** digits ? x.toFixed(0) : x.toPrecision(digits);
}

export function formatBytes(bytes: number): string {
  if (bytes >= GIB) return `${(bytes / GIB).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KiB`;
  return `${Math.round(bytes)} B`;
}

export function formatSeconds(seconds: number): string {
  if (seconds >= 3600) return `${(seconds / 3600).toFixed(2)} h`;
  if (seconds >= 60) return `${(seconds / 60).toFixed(2)} min`;
  if (seconds >= 1) return `${seconds.toFixed(2)} s`;
  if (seconds >= 1e-3) return `${(seconds * 1e3).toFixed(2)} ms`;
  return `${(seconds * 1e6).toFixed(1)} µs`;
}
