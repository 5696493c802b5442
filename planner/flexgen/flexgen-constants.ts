/**
 * The hardware constants FlexGen's cost model takes, in bytes/s and FLOP/s. For a profile with a
 * `flexgenFitted` section (the T4) they are FlexGen's released values; otherwise they are derived
 * from the profile's own measured-or-datasheet figures, one FlexGen constant per physical link.
 */
import { effective, type HardwareProfile } from "../../core/hardware-profile.js";
import { GIB, TERA } from "../../core/units.js";

export interface FlexgenConstants {
  readonly origin: "fitted" | "derived";
  readonly ctogBw: number;
  readonly gtocBwCache: number;
  readonly gtocBwHidden: number;
  readonly dtocBw: number;
  readonly ctodBwCachePrefill: number;
  readonly ctodBwHiddenPrefill: number;
  readonly ctodBwDecode: number;
  readonly mmFlopsPrefill: number;
  readonly mmFlopsDecode: number;
  readonly bmmFlopsPrefill: number;
  readonly bmmFlopsDecode: number;
  readonly cpuFlops: number;
  readonly c1: number;
  readonly c2: number;
  readonly c3: number;
}

export function flexgenConstants(profile: HardwareProfile): FlexgenConstants {
  const f = profile.flexgenFitted;
  if (f) {
    return {
      origin: "fitted",
      ctogBw: f.ctogBandwidthGiBPerSecond * GIB,
      gtocBwCache: f.gtocCacheBandwidthGiBPerSecond * GIB,
      gtocBwHidden: f.gtocHiddenBandwidthGiBPerSecond * GIB,
      dtocBw: f.dtocBandwidthGiBPerSecond * GIB,
      ctodBwCachePrefill: f.ctodCachePrefillBandwidthGiBPerSecond * GIB,
      ctodBwHiddenPrefill: f.ctodHiddenPrefillBandwidthGiBPerSecond * GIB,
      ctodBwDecode: f.ctodDecodeBandwidthGiBPerSecond * GIB,
      mmFlopsPrefill: f.mmPrefillTflops * TERA,
      mmFlopsDecode: f.mmDecodeTflops * TERA,
      bmmFlopsPrefill: f.bmmPrefillTflops * TERA,
      bmmFlopsDecode: f.bmmDecodeTflops * TERA,
      cpuFlops: f.cpuTflops * TERA,
      c1: f.c1,
      c2: f.c2,
      c3: f.c3,
    };
  }
  const h2d = effective(profile.hostToDevice.pinnedBytesPerSecond);
  const d2h = effective(profile.deviceToHost.pinnedBytesPerSecond);
  const diskRead = effective(profile.disk.readBytesPerSecond);
  const diskWrite = effective(profile.disk.writeBytesPerSecond);
  const gemm = effective(profile.gpu.fp16MatmulFlopsPerSecond);
  return {
    origin: "derived",
    ctogBw: h2d,
    gtocBwCache: d2h,
    gtocBwHidden: d2h,
    dtocBw: diskRead,
    ctodBwCachePrefill: diskWrite,
    ctodBwHiddenPrefill: diskWrite,
    ctodBwDecode: diskWrite,
    mmFlopsPrefill: gemm,
    mmFlopsDecode: gemm,
    bmmFlopsPrefill: gemm,
    bmmFlopsDecode: gemm,
    cpuFlops: effective(profile.cpu.fp32FlopsPerSecond),
    c1: 0,
    c2: 0,
    c3: 0,
  };
}
