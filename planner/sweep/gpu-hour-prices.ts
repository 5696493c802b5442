/**
 * Prices per GPU-hour a sweep turns throughput into cost with: one for every profile, and (taking
 * precedence) one per profile name. Cost per million generated tokens = GPUs x dollars per GPU-hour /
 * 3600 / (token/s) x 1e6: every GPU of the profile is paid for, whether or not the plan uses it.
 */

export interface GpuHourPrices {
  /** Dollars per GPU-hour for a profile not named in byProfile. */
  readonly all?: number;
  /** Dollars per GPU-hour by profile name. */
  readonly byProfile?: Readonly<Record<string, number>>;
}

/** The price of one GPU-hour of `profile`, if one is given. */
export function dollarsPerGpuHourOf(prices: GpuHourPrices | undefined, profile: string): number | undefined {
  if (!prices) return undefined;
  if (prices.byProfile && Object.hasOwn(prices.byProfile, profile)) return prices.byProfile[profile];
  return prices.all;
}

/** Dollars per million generated tokens for `gpus` GPUs at `dollarsPerGpuHour` each, generating `tokensPerSecond`. */
export function dollarsPerMillionTokens(gpus: number, dollarsPerGpuHour: number, tokensPerSecond: number): number {
  return ((gpus * dollarsPerGpuHour) / 3600 / tokensPerSecond) * 1e6;
}
