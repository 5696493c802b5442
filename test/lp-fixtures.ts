/** LPs and cost settings the LP tests share. */
import type { ScheduleName } from "../core/schedule-name.js";
import type { Tier } from "../core/tiers.js";
import { type LinearProgram, LinearProgramBuilder } from "../planner/lp/linear-program.js";
import type { CostSettings } from "../planner/spillway/step-costs.js";

/** min x + 2y  s.t.  x + y >= 1,  x - y <= 0.5,  z <= 0.1 + 0.5x  → x = 0.75, y = 0.25, objective 1.25 */
export function dietLp(): LinearProgram {
  const b = new LinearProgramBuilder(["x", "y", "z"]);
  const v = (n: string) => b.space.term(1, n);
  b.minimise(v("x").plus(v("y").times(2)));
  b.add("cover", v("x").plus(v("y")), ">=", 1);
  b.add("balance", v("x").minus(v("y")), "<=", 0.5);
  b.add("z_cap", v("z"), "<=", v("x").times(0.5).plus(b.space.constant(0.1)));
  return b.build();
}

/** A family of Spillway's discrete choices (compression of weights and KV together) at one gbs x nb, weights pinned. */
export function spillwaySettings(
  gbs: number,
  nb: number,
  choices: {
    readonly compress: boolean;
    readonly cpuAttention: boolean;
    readonly activationTier: Tier;
    readonly schedule: ScheduleName;
    readonly overlap: boolean;
  },
): CostSettings {
  return {
    gbs,
    nb,
    compressWeight: choices.compress,
    compressCache: choices.compress,
    cpuAttention: choices.cpuAttention,
    activationTier: choices.activationTier,
    pinWeight: true,
    overlap: choices.overlap,
    schedule: choices.schedule,
  };
}
