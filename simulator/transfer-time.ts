/**
 * How long the simulator's transfers take, from the hardware profile: a fixed latency per transfer plus
 * bytes over bandwidth, and, where the profile has a measured rate-versus-size curve, the curve itself
 * (interpolated in log size, joined to the large-transfer rate above its last sample).
 */
import { effective, type HardwareProfile, type LinkProfile } from "../core/hardware-profile.js";
import type { Link } from "../core/links.js";

export class TransferTimes {
  constructor(private readonly profile: HardwareProfile) {}

  /** Seconds to move `bytes` in `count` separate transfers of equal size. */
  seconds(link: Link, bytes: number, count = 1): number {
    if (bytes <= 0 || count <= 0) return 0;
    if (link === "diskRead" || link === "diskWrite") {
      const d = this.profile.disk;
      const rate = effective(link === "diskRead" ? d.readBytesPerSecond : d.writeBytesPerSecond);
      return count * effective(d.latencySeconds) + bytes / rate;
    }
    const l = link === "h2d" ? this.profile.hostToDevice : this.profile.deviceToHost;
    return count * linkSeconds(l, bytes / count);
  }
}

function linkSeconds(link: LinkProfile, bytes: number): number {
  const rate = effective(link.pinnedBytesPerSecond);
  const latency = effective(link.latencySeconds);
  const samples = link.curve?.samples;
  if (!samples || samples.length === 0 || bytes < samples[0]!.bytes) return latency + bytes / rate;
  const last = samples[samples.length - 1]!;
  if (bytes >= last.bytes) return last.bytes / last.bytesPerSecond + (bytes - last.bytes) / rate;
  let i = 1;
  while (samples[i]!.bytes < bytes) i++;
  const a = samples[i - 1]!;
  const b = samples[i]!;
  const f = (Math.log(bytes) - Math.log(a.bytes)) / (Math.log(b.bytes) - Math.log(a.bytes));
  const r = a.bytesPerSecond + f * (b.bytesPerSecond - a.bytesPerSecond);
  return bytes / r;
}
