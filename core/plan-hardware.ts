/**
 * The hardware profile a plan file is for: `--hardware` when given, else the profile the plan carries,
 * else (plan files written before plans carried their profile) a shipped profile the plan names. A path
 * named inside a plan file is never opened: a plan from someone else cannot make Spillway read a file.
 */
import type { HardwareProfile } from "./hardware-profile.js";
import { InputError } from "./input-error.js";
import type { Plan } from "./plan.js";
import { loadShippedProfile, resolveHardware, shippedProfileNames } from "./resolve-hardware.js";

export interface PlanHardware {
  readonly profile: HardwareProfile;
  /** Set when --hardware replaced the profile the plan carries: a line saying so. */
  readonly overrideNote?: string;
}

export function planHardware(plan: Plan, source: string, hardwareFlag: string | undefined): PlanHardware {
  if (Array.isArray(hardwareFlag)) throw new InputError("--hardware", undefined, "given more than once");
  if (hardwareFlag !== undefined) {
    const profile = resolveHardware(hardwareFlag);
    const carried = plan.hardwareProfile;
    return carried && JSON.stringify(carried) !== JSON.stringify(profile)
      ? {
          profile,
          overrideNote: `--hardware ${hardwareFlag} replaces the profile ${source} was made with (${carried.name})`,
        }
      : { profile };
  }
  if (plan.hardwareProfile) return { profile: plan.hardwareProfile };
  const shipped = shippedProfileNames();
  const name = [plan.hardwareSource, plan.hardware].find((n) => n !== undefined && shipped.includes(n.toLowerCase()));
  if (name) return { profile: loadShippedProfile(name.toLowerCase()) };
  throw new InputError(
    source,
    "hardwareProfile",
    `missing: the plan does not carry its hardware profile and names ${JSON.stringify(plan.hardwareSource ?? plan.hardware)}, which is not a shipped profile (a path named inside a plan is never opened); give --hardware, or plan again to write a plan that carries it`,
  );
}
