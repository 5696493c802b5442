/** The plan file `spillway simulate` and `spillway run` take, with the profile and capacities it is for. */

import { readPlanFile } from "../core/parse-plan.js";
import { planHardware } from "../core/plan-hardware.js";

/**
 * A plan file with the profile it was made for (or --hardware, said on stderr unless quiet) and the
 * capacities it was planned against.
 */
export function loadPlanTarget(path: string, hardwareFlag: string | undefined, quiet = false) {
  const planFile = readPlanFile(path);
  const { profile, overrideNote } = planHardware(planFile, path === "-" ? "<stdin>" : path, hardwareFlag);
  if (overrideNote && !quiet) process.stderr.write(`note: ${overrideNote}\n`);
  const capacityBytes = planFile.predicted.capacityBytes;
  return { planFile, profile, capacityBytes };
}
