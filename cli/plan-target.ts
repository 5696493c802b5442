/** The plan file `spillway simulate` and `spillway run` take, with the profile and capacities it is for. */

import { readPlanFile } from "../core/parse-plan.js";
import { resolveHardware } from "../core/resolve-hardware.js";

/** A plan file with the profile it was made for (or --hardware) and the capacities it was planned against. */
export function loadPlanTarget(path: string, hardwareFlag: string | undefined) {
  const planFile = readPlanFile(path);
  const profile = resolveHardware(hardwareFlag ?? planFile.hardwareSource ?? planFile.hardware);
  const capacityBytes = planFile.predicted.capacityBytes;
  return { planFile, profile, capacityBytes };
}
