/**
 * FlexGen's released cost-model LP (experimental/cost_model.py, solve_lp) for one (gbs, bls), term for
 * term. Equalities that only name sub-expressions are substituted into the rows that use them; the
 * feasible set and the objective are unchanged. Bytes are scaled to GiB and times are in seconds so
 * the simplex sees well-scaled numbers.
 */

import { GIB } from "../../core/units.js";
import { type Affine, VariableSpace } from "../lp/affine.js";
import { type LinearProgram, LinearProgramBuilder } from "../lp/linear-program.js";
import type { FlexgenConstants } from "./flexgen-constants.js";

export interface FlexgenDims {
  /** Layers, hidden size, FFN size, heads. */
  readonly l: number;
  readonly h1: number;
  readonly h2: number;
  readonly nh: number;
  /** Prompt length and generated tokens. */
  readonly s: number;
  readonly n: number;
}

export interface FlexgenCapacities {
  /** Bytes, before alpha. */
  readonly gpuBytes: number;
  readonly cpuBytes: number;
  readonly diskBytes: number;
  readonly alphaGpu: number;
  readonly alphaCpu: number;
  readonly alphaDisk: number;
}

/** A hardware profile's capacities as FlexGen's LP takes them, with one memory relaxation factor for every tier. */
export function flexgenCapacities(
  hardware: { readonly capacityBytes: Readonly<Record<"gpu" | "cpu" | "disk", { readonly value: number }>> },
  alpha: number,
): FlexgenCapacities {
  return {
    gpuBytes: hardware.capacityBytes.gpu.value,
    cpuBytes: hardware.capacityBytes.cpu.value,
    diskBytes: hardware.capacityBytes.disk.value,
    alphaGpu: alpha,
    alphaCpu: alpha,
    alphaDisk: alpha,
  };
}

/** Six placement percents (wg wc cg cc hg hc); an entry left undefined stays free. */
export type FixedPercents = readonly (number | undefined)[];

export interface FlexgenLpInput {
  readonly dims: FlexgenDims;
  readonly constants: FlexgenConstants;
  readonly capacities: FlexgenCapacities;
  readonly gbs: number;
  readonly bls: number;
  readonly compressWeight: boolean;
  readonly percent?: FixedPercents;
}

export const FRACTIONS = ["wg", "wc", "wn", "cg", "cc", "cn", "hg", "hc", "hn"] as const;

/** The LP's named expressions, each affine in the fractions (times in seconds, memory in GiB). */
export interface FlexgenTerms {
  readonly ctogp: Affine;
  readonly gtocp: Affine;
  readonly dtocp: Affine;
  readonly ctodp: Affine;
  readonly compp: Affine;
  readonly ctogg: Affine;
  readonly gtocg: Affine;
  readonly dtocg: Affine;
  readonly ctodg: Affine;
  readonly compg: Affine;
  readonly gpuPeakPrefill: Affine;
  readonly gpuPeakDecode: Affine;
  readonly cpuPeakPrefill: Affine;
  readonly cpuPeakDecode: Affine;
  readonly diskPeak: Affine;
}

export const FLEXGEN_LP_VARIABLES = [...FRACTIONS, "Tpre", "Tgen"] as const;

export function flexgenTerms(input: FlexgenLpInput, space: VariableSpace): FlexgenTerms {
  const { l, h1, h2, nh, s, n } = input.dims;
  const k = input.constants;
  const { gbs, bls } = input;
  let wi = 8 * h1 ** 2 + 4 * h1 * h2;
  if (input.compressWeight) wi = wi / 4;
  const sum = (factor: number, ...names: string[]) => space.sum(factor, ...names);
  const v = (factor: number, name: string) => space.term(factor, name);
  const c = (value: number) => space.constant(value);

  const ctogp = sum(wi / k.ctogBw, "wc", "wn").plus(sum((2 * s * h1 * bls) / k.ctogBw, "hc", "hn"));
  const gtocp = sum((4 * (s + 1) * h1 * bls) / k.gtocBwCache, "cc", "cn").plus(
    sum((2 * s * h1 * bls) / k.gtocBwHidden, "hc", "hn"),
  );
  const dtocp = v(wi / k.dtocBw, "wn").plus(v((2 * s * h1 * bls) / k.dtocBw, "hn"));
  const ctodp = v((4 * bls * (s + 1) * h1) / k.ctodBwCachePrefill, "cn").plus(
    v((2 * s * h1 * bls) / k.ctodBwHiddenPrefill, "hn"),
  );
  const compp = c(
    (bls * (8 * s * h1 ** 2 + 4 * s * h1 * h2)) / k.mmFlopsPrefill + (4 * bls * s ** 2 * h1) / k.bmmFlopsPrefill,
  );

  const ctogg = sum(wi / k.ctogBw, "wc", "wn").plus(sum((2 * h1 * bls) / k.ctogBw, "hc", "hn"));
  const gtocg = sum((2 * h1 * bls) / k.gtocBwHidden, "hc", "hn");
  const dtocg = v((4 * bls * (s + n / 2) * h1) / k.dtocBw, "cn").plus(
    v((2 * h1 * bls) / k.dtocBw, "hn"),
    v(wi / (k.dtocBw * 0.95), "wn"),
  );
  const ctodg = v((4 * bls * h1) / k.ctodBwDecode, "cn").plus(v((2 * h1 * bls) / k.ctodBwDecode, "hn"));
  const A = Math.max(0, Math.log2(64 / gbs));
  const B = Math.max(0, Math.log2(4096 / h1));
  const cpuFlopsReal = k.cpuFlops * Math.max(0.1, 1 + k.c1 * (A * B) - k.c2 * A - k.c3 * B);
  const compg = c((bls * (8 * h1 ** 2 + 4 * h1 * h2)) / k.mmFlopsDecode).plus(
    v((4 * bls * (s + n / 2) * h1) / k.bmmFlopsDecode, "cg"),
    sum((4 * bls * (s + n / 2) * h1) / cpuFlopsReal, "cc", "cn"),
  );

  // Peak memory in bytes; "(1 - x)" terms expand to a constant minus the variable.
  const oneMinus = (x: string, factor: number) => c(factor).plus(v(-factor, x));
  const interp =
    8 * gbs * s * h1 +
    gbs * (2 * s * h1 + 2 * nh * s ** 2) +
    gbs * (2 * s * h1) +
    4 * gbs * s * h1 +
    2 * gbs * s * h2 +
    2 * gbs * s * h1;
  const gpuPeakPrefill = v(wi * l, "wg").plus(
    v(2 * s * h1 * bls, "hg"),
    v(4 * (s + n) * h1 * bls * l, "cg"),
    oneMinus("wg", 2 * wi),
    oneMinus("hg", 2 * s * h1 * gbs),
    c(interp),
  );
  const intergConst = 8 * gbs * h1 + 4 * gbs * h1 + 2 * gbs * h2 + 2 * gbs * h1;
  const intergCg = gbs * (2 * h1 + 2 * (s + n) * h1 + 2 * nh * (s + n)) + gbs * (2 * (s + n) * h1 + 2 * h1);
  const gpuPeakDecode = v(wi * l, "wg").plus(
    v(2 * h1 * bls, "hg"),
    v(4 * (s + n) * h1 * bls * l, "cg"),
    oneMinus("wg", 2 * wi),
    oneMinus("hg", 2 * h1 * gbs),
    v(2 * 2 * gbs * (s + n) * h1, "cg"),
    c(intergConst),
    v(intergCg, "cg"),
  );
  const cpuPeakPrefill = v(wi * l, "wc").plus(
    v(2 * s * h1 * bls, "hc"),
    v(4 * s * h1 * bls * l, "cc"),
    oneMinus("wg", wi),
    oneMinus("hg", 2 * s * h1 * gbs),
  );
  const cpuPeakDecode = v(wi * l, "wc").plus(
    v(2 * h1 * bls, "hc"),
    v(4 * (s + n) * h1 * bls * l, "cc"),
    v(wi, "wn"),
    v(4 * h1 * gbs, "hn"),
    v(8 * (s + n) * h1 * gbs, "cn"),
    c(2 * nh * (s + n) * gbs + 2 * h1 * gbs),
  );
  const diskPeak = v(wi * l, "wn").plus(v(2 * s * h1 * bls, "hn"), v(4 * (s + n) * h1 * bls * l, "cn"));
  const inGiB = (e: Affine) => e.times(1 / GIB);
  return {
    ctogp,
    gtocp,
    dtocp,
    ctodp,
    compp,
    ctogg,
    gtocg,
    dtocg,
    ctodg,
    compg,
    gpuPeakPrefill: inGiB(gpuPeakPrefill),
    gpuPeakDecode: inGiB(gpuPeakDecode),
    cpuPeakPrefill: inGiB(cpuPeakPrefill),
    cpuPeakDecode: inGiB(cpuPeakDecode),
    diskPeak: inGiB(diskPeak),
  };
}

export function buildFlexgenLp(input: FlexgenLpInput): { lp: LinearProgram; terms: FlexgenTerms } {
  const { l, n } = input.dims;
  const b = new LinearProgramBuilder(FLEXGEN_LP_VARIABLES);
  const space = b.space;
  const terms = flexgenTerms(input, space);
  const v = (factor: number, name: string) => space.term(factor, name);
  // Minimise T / bls with T = Tpre * l + Tgen * (n - 1) * l.
  b.minimise(v(l / input.bls, "Tpre").plus(v((l * (n - 1)) / input.bls, "Tgen")));
  b.add("weights_sum", space.sum(1, "wg", "wc", "wn"), "=", 1);
  b.add("cache_sum", space.sum(1, "cg", "cc", "cn"), "=", 1);
  b.add("hidden_sum", space.sum(1, "hg", "hc", "hn"), "=", 1);
  b.add("hidden_not_on_disk", space.sum(1, "hg", "hc"), "=", 1);
  const fixed = input.percent;
  if (fixed) {
    const names = ["wg", "wc", "cg", "cc", "hg", "hc"];
    fixed.forEach((p, i) => {
      if (p !== undefined) b.add(`fix_${names[i]}`, v(1, names[i]!), "=", p / 100);
    });
  }
  const tp = v(1, "Tpre");
  const tg = v(1, "Tgen");
  b.add("Tpre_io_in", tp, ">=", terms.ctogp.plus(terms.dtocp));
  b.add("Tpre_io_out", tp, ">=", terms.gtocp.plus(terms.ctodp));
  b.add("Tpre_compute", tp, ">=", terms.compp);
  b.add("Tgen_gtoc", tg, ">=", terms.gtocg.plus(terms.ctogg));
  b.add("Tgen_dtoc", tg, ">=", terms.dtocg.plus(terms.ctogg));
  b.add("Tgen_ctod", tg, ">=", terms.ctodg.plus(terms.ctogg));
  b.add("Tgen_compute", tg, ">=", terms.compg.plus(terms.ctogg));
  const cap = input.capacities;
  b.add("gpu_peak_prefill", terms.gpuPeakPrefill, "<=", (cap.gpuBytes * cap.alphaGpu) / GIB);
  b.add("gpu_peak_decode", terms.gpuPeakDecode, "<=", (cap.gpuBytes * cap.alphaGpu) / GIB);
  b.add("cpu_peak_prefill", terms.cpuPeakPrefill, "<=", (cap.cpuBytes * cap.alphaCpu) / GIB);
  b.add("cpu_peak_decode", terms.cpuPeakDecode, "<=", (cap.cpuBytes * cap.alphaCpu) / GIB);
  b.add("disk_peak", terms.diskPeak, "<=", (cap.diskBytes * cap.alphaDisk) / GIB);
  return { lp: b.build(), terms };
}

export interface FlexgenLpOutcome {
  readonly throughputTokensPerSecond: number;
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly fractions: Readonly<Record<(typeof FRACTIONS)[number], number>>;
  /** Peak bytes per tier as FlexGen's model estimates them (max of prefill and decode). */
  readonly peakBytes: { readonly gpu: number; readonly cpu: number; readonly disk: number };
  /** Per-layer seconds of each term, both phases, for naming the bottleneck. */
  readonly perLayerSeconds: Readonly<Record<string, number>>;
}

/** Reads FlexGen's reported figures off an LP solution. */
export function flexgenOutcome(
  input: FlexgenLpInput,
  terms: FlexgenTerms,
  values: ArrayLike<number>,
): FlexgenLpOutcome {
  const { l, n } = input.dims;
  const at = (name: (typeof FLEXGEN_LP_VARIABLES)[number]) => values[FLEXGEN_LP_VARIABLES.indexOf(name)] ?? 0;
  const tpre = at("Tpre");
  const tgen = at("Tgen");
  const total = tpre * l + tgen * (n - 1) * l;
  const fractions = Object.fromEntries(FRACTIONS.map((f) => [f, at(f)])) as Record<(typeof FRACTIONS)[number], number>;
  const perLayerSeconds: Record<string, number> = {};
  for (const name of [
    "ctogp",
    "gtocp",
    "dtocp",
    "ctodp",
    "compp",
    "ctogg",
    "gtocg",
    "dtocg",
    "ctodg",
    "compg",
  ] as const) {
    perLayerSeconds[name] = terms[name].evaluate(values);
  }
  const evaluate = (e: Affine, x: ArrayLike<number>) => e.evaluate(x);
  return {
    throughputTokensPerSecond: (input.bls * n) / total,
    prefillSeconds: tpre * l,
    decodeSeconds: tgen * (n - 1) * l,
    fractions,
    peakBytes: {
      gpu: GIB * Math.max(evaluate(terms.gpuPeakPrefill, values), evaluate(terms.gpuPeakDecode, values)),
      cpu: GIB * Math.max(evaluate(terms.cpuPeakPrefill, values), evaluate(terms.cpuPeakDecode, values)),
      disk: GIB * evaluate(terms.diskPeak, values),
    },
    perLayerSeconds,
  };
}

/**
 * Total bytes per link over the run implied by FlexGen's terms (its model omits what it omits: e.g.
 * decode-time KV stores from the GPU to the CPU). Used only to report the FlexGen model's own view.
 */
export function flexgenBytes(
  input: FlexgenLpInput,
  x: Readonly<Record<(typeof FRACTIONS)[number], number>>,
): { h2d: number; d2h: number; diskRead: number; diskWrite: number } {
  const { l, h1, h2, s, n } = input.dims;
  const bls = input.bls;
  let wi = 8 * h1 ** 2 + 4 * h1 * h2;
  if (input.compressWeight) wi /= 4;
  const decodeSteps = n - 1;
  return {
    h2d:
      l * (wi * (x.wc + x.wn) + 2 * s * h1 * bls * (x.hc + x.hn)) +
      l * decodeSteps * (wi * (x.wc + x.wn) + 2 * h1 * bls * (x.hc + x.hn)),
    d2h:
      l * (4 * (s + 1) * h1 * bls * (x.cc + x.cn) + 2 * s * h1 * bls * (x.hc + x.hn)) +
      l * decodeSteps * (2 * h1 * bls * (x.hc + x.hn)),
    diskRead:
      l * (wi * x.wn + 2 * s * h1 * bls * x.hn) +
      l * decodeSteps * (4 * bls * (s + n / 2) * h1 * x.cn + 2 * h1 * bls * x.hn + wi * x.wn),
    diskWrite:
      l * (4 * bls * (s + 1) * h1 * x.cn + 2 * s * h1 * bls * x.hn) +
      l * decodeSteps * (4 * bls * h1 * x.cn + 2 * h1 * bls * x.hn),
  };
}

/** FlexGen's figures for fixed fractions without the memory rows: what a policy that does not fit would do. */
export function flexgenUnconstrained(
  input: FlexgenLpInput,
  x: Readonly<Record<(typeof FRACTIONS)[number], number>>,
): FlexgenLpOutcome {
  const terms = flexgenTerms(input, new VariableSpace(FLEXGEN_LP_VARIABLES));
  const values = new Float64Array(FLEXGEN_LP_VARIABLES.length);
  FRACTIONS.forEach((f, i) => {
    values[i] = x[f];
  });
  const e = (a: Affine) => a.evaluate(values);
  const tpre = Math.max(e(terms.ctogp) + e(terms.dtocp), e(terms.gtocp) + e(terms.ctodp), e(terms.compp));
  const ctogg = e(terms.ctogg);
  const tgen = ctogg + Math.max(e(terms.gtocg), e(terms.dtocg), e(terms.ctodg), e(terms.compg));
  values[FLEXGEN_LP_VARIABLES.indexOf("Tpre")] = tpre;
  values[FLEXGEN_LP_VARIABLES.indexOf("Tgen")] = tgen;
  return flexgenOutcome(input, terms, values);
}
