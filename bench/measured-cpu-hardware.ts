/**
 * The CPU backend's hardware for the fidelity benches: this machine measured as `spillway profile
 * --backend cpu --quick` measures it, with a 0.5 GiB device arena standing for the GPU.
 */
import { type HardwareProfile, parseHardwareProfile, withCapacities } from "../core/hardware-profile.js";
import { GIB } from "../core/units.js";
import { defaultCapacities, measureCpuBackend, profileFromSamples } from "../runtime/profile-cpu.js";

export function measuredCpuHardware(): HardwareProfile {
  console.log("Measuring this machine (spillway profile --backend cpu --quick) ...");
  const samples = measureCpuBackend({ quick: true, gpuBytes: 0.5 * GIB });
  const profile = parseHardwareProfile(
    JSON.parse(JSON.stringify(profileFromSamples(samples, defaultCapacities(0.5 * GIB)))),
    "measured profile",
  );
  return withCapacities(profile, { gpu: 0.5 * GIB });
}
