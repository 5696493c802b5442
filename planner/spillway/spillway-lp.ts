/**
 * Spillway's LP for one (gbs, nb) and one family of discrete choices (compression, CPU attention,
 * activation tier): choose placement fractions minimising predicted seconds per generated token under
 * the memory limits. Rows come from the same expressions the exact evaluation uses (step-costs.ts,
 * layer-time.ts); decode is costed at the average context s + n/2, as FlexGen does. Memory is in GiB.
 */
import type { ModelSpec } from "../../core/model-spec.js";
import { RESOURCES } from "../../core/resources.js";
import { GIB } from "../../core/units.js";
import type { Workload } from "../../core/workload.js";
import { VariableSpace } from "../lp/affine.js";
import type { DenseLp } from "../lp/dense-lp.js";
import { type LinearProgram, LinearProgramBuilder } from "../lp/linear-program.js";
import { LinearProgramFamily } from "../lp/lp-family.js";
import type { HardwareRates } from "./hardware-rates.js";
import { layerTimeBounds } from "./layer-time.js";
import {
  type CostSettings,
  type LayerCosts,
  type ModelCostConstants,
  type PlacementTerms,
  StepCostModel,
  type StepCosts,
} from "./step-costs.js";

export const SPILLWAY_LP_VARIABLES = ["wg", "wc", "wd", "cg", "cc", "cd", "Tpre", "Tgen"] as const;

export interface SpillwayLpInput {
  readonly model: ModelSpec;
  readonly rates: HardwareRates;
  readonly workload: Workload;
  readonly settings: CostSettings;
  readonly constants: ModelCostConstants;
  /** Fixed fractions (wg, wc, cg, cc) where the user gave --percent. */
  readonly fixed?: { readonly wg: number; readonly wc: number; readonly cg: number; readonly cc: number };
  /** The layer costs spillwayLayerCosts() gave for these settings (any nb): computed here when absent. */
  readonly layerCosts?: SpillwayLayerCosts;
}

/** One layer's costs in each phase, as LP expressions; they depend on the settings but not on nb. */
export interface SpillwayLayerCosts {
  readonly prefill: LayerCosts;
  readonly decode: LayerCosts;
}

function placementTerms(space: VariableSpace, constants: ModelCostConstants): PlacementTerms {
  const v = (name: string) => space.term(1, name);
  const E = constants.embeddingStoredBytes;
  return {
    wg: v("wg"),
    wc: v("wc"),
    wd: v("wd"),
    cg: v("cg"),
    cc: v("cc"),
    cd: v("cd"),
    embedding: { gpu: space.term(E, "wg"), cpu: space.term(E, "wc"), disk: space.term(E, "wd") },
    // Linear in the off-GPU fraction, exact when all or none of the embeddings are off the GPU.
    headBuffer: space.sum(E * Math.min(1, constants.headBufferAllOffBytes / Math.max(E, 1)), "wc", "wd"),
  };
}

/**
 * The layer costs of the LP for `input`'s settings, the same for every nb (StepCostModel.layer reads
 * no nb), so that a search building the LP for many nb at one GPU batch size computes them once.
 */
export function spillwayLayerCosts(input: Omit<SpillwayLpInput, "fixed" | "layerCosts">): SpillwayLayerCosts {
  const space = new VariableSpace(SPILLWAY_LP_VARIABLES);
  const terms = placementTerms(space, input.constants);
  const costModel = new StepCostModel(input.model, input.rates, input.workload, input.settings, input.constants, space);
  const { promptLen: s, genLen: n } = input.workload;
  return { prefill: costModel.layer("prefill", s, terms), decode: costModel.layer("decode", s + n / 2, terms) };
}

export function buildSpillwayLp(input: SpillwayLpInput): LinearProgram {
  const { model, rates, workload, settings, constants } = input;
  const b = new LinearProgramBuilder(SPILLWAY_LP_VARIABLES);
  const space = b.space;
  const v = (name: string) => space.term(1, name);
  const terms = placementTerms(space, constants);
  const costModel = new StepCostModel(model, rates, workload, settings, constants, space);
  const L = model.numLayers;
  const { promptLen: s, genLen: n } = workload;
  const prefill = input.layerCosts?.prefill ?? costModel.layer("prefill", s, terms);
  const decode = input.layerCosts?.decode ?? costModel.layer("decode", s + n / 2, terms);
  const head = costModel.head(terms);
  const serial = (step: StepCosts) => RESOURCES.map((r) => step.seconds[r]).reduce((a, e) => a.plus(e));
  const fill = prefill.weights.seconds.h2d.plus(prefill.weights.seconds.diskRead);
  const bls = settings.gbs * settings.nb;
  // Seconds of the whole run per sequence of the block; the constant parts do not change the optimum.
  b.minimise(
    v("Tpre")
      .times(L)
      .plus(v("Tgen").times(L * (n - 1)), fill, serial(head).times(n))
      .times(1 / bls),
  );
  b.add("weights_sum", space.sum(1, "wg", "wc", "wd"), "=", 1);
  b.add("cache_sum", space.sum(1, "cg", "cc", "cd"), "=", 1);
  if (input.fixed) {
    b.add("fix_wg", v("wg"), "=", input.fixed.wg);
    b.add("fix_wc", v("wc"), "=", input.fixed.wc);
    b.add("fix_cg", v("cg"), "=", input.fixed.cg);
    b.add("fix_cc", v("cc"), "=", input.fixed.cc);
  }
  layerTimeBounds(prefill, settings).forEach((bound, i) => b.add(`Tpre_${i}`, v("Tpre"), ">=", bound));
  layerTimeBounds(decode, settings).forEach((bound, i) => b.add(`Tgen_${i}`, v("Tgen"), ">=", bound));
  const memory = costModel.memory(terms);
  const cap = rates.capacityBytes;
  memory.gpu.forEach((e, i) => b.add(`gpu_peak_${i}`, e.times(1 / GIB), "<=", cap.gpu / GIB));
  memory.cpu.forEach((e, i) => b.add(`cpu_peak_${i}`, e.times(1 / GIB), "<=", cap.cpu / GIB));
  b.add("disk_peak", memory.disk.times(1 / GIB), "<=", cap.disk / GIB);
  return b.build();
}

/**
 * Spillway's LPs at one GPU batch size for every nb: each row is affine in nb (weights load once per
 * block, the batch terms and the KV scale with nb), and so is the objective times the block size, so
 * the LP is built at nb = 1 and 2 and interpolated (lp-family.ts). The rows equal buildSpillwayLp's up
 * to rounding (test/unit/spillway-lp.test.ts).
 */
export class SpillwayLpFamily {
  private readonly family: LinearProgramFamily;
  /** The objective times the block size at nb = 1, and its change per GPU batch. */
  private readonly blockObjective: readonly number[];
  private readonly blockObjectiveSlope: readonly number[];
  /** Where fill writes each LP (one at a time: the LP screen reads it during the call only). */
  private readonly scratch: DenseLp;
  private readonly scratchObjective: number[];

  constructor(
    lpInputAt: (nb: number) => SpillwayLpInput,
    private readonly gbs: number,
  ) {
    this.family = new LinearProgramFamily((nb) => buildSpillwayLp(lpInputAt(nb)), 1, 2);
    const [one, two] = this.family.objectives;
    this.blockObjective = one.map((c) => c * gbs);
    this.blockObjectiveSlope = two.map((c, j) => c * 2 * gbs - this.blockObjective[j]!);
    this.scratch = this.family.emptyDenseLp();
    this.scratchObjective = one.map(() => 0);
  }

  private objectiveAt(nb: number, objective: number[]): number[] {
    const bls = this.gbs * nb;
    for (let j = 0; j < objective.length; j++)
      objective[j] = (this.blockObjective[j]! + (nb - 1) * this.blockObjectiveSlope[j]!) / bls;
    return objective;
  }

  at(nb: number): LinearProgram {
    return this.family.at(
      nb,
      this.objectiveAt(
        nb,
        this.blockObjective.map(() => 0),
      ),
    );
  }

  /** at(nb)'s numbers, in the family's scratch storage (overwritten by the next fill). */
  fill(nb: number): DenseLp {
    this.family.fill(nb, this.objectiveAt(nb, this.scratchObjective), this.scratch);
    return this.scratch;
  }
}
