/**
 * What quantisation costs a Mixture-of-Experts run, measured against the fp16 model on the same prompts:
 * - free-running: the share of generated tokens (by position) the quantised all-resident run has in
 *   common with the fp16 all-resident run (one early difference changes everything after it, so this
 *   is a harsh figure);
 * - teacher-forced: the quantised model fed the fp16 run's tokens, step by step; at every step its LM
 *   head logits against the fp16 run's (largest absolute difference, relative error ‖Δ‖₂ / ‖fp16‖₂ over
 *   all steps and sequences) and whether its greedy token is the fp16 one (top-1 agreement).
 * The tolerance (quantizedTolerance, by the coarser of the experts' and the attention's widths) is on the
 * teacher-forced relative logits error; the other figures are reported beside it.
 */
import type { ExpertBits, ExpertPolicy } from "../../core/expert-policy.js";
import { argmax } from "../kernels/argmax.js";
import { gaussianWeightNoise } from "./expert-quantization.js";

/** The LM head logits of each step of a pass, [batch, vocab] per step, in step order. */
export class LogitsRecorder {
  readonly steps: Float32Array[] = [];

  add(logits: Float32Array): void {
    this.steps.push(logits.slice());
  }
}

export interface QuantizedTolerance {
  /** The format's relative RMS error on Gaussian weights at the coarser width (gaussianWeightNoise). */
  readonly weightNoise: number;
  /** Teacher-forced relative logits error ‖Δ‖₂ / ‖fp16‖₂ at most this. */
  readonly logitsRelativeError: number;
}

/**
 * A router near-tie that any rounding can resolve the other way swaps one of a token's experts: an
 * O(1) change to that token's layer output, however fine the format. This floor covers a few such
 * flips in a short run (8-bit weights and router on the synthetic model: 0.017 measured).
 */
export const ROUTER_FLIP_ERROR_FLOOR = 0.05;

/**
 * The tolerance of a quantised run, by the coarser of bits and attentionBits: relative logits error at
 * most twice the format's weight noise ε (each layer's matrices add errors of about ε to the residual
 * stream, partly cancelling; measured on the synthetic model: 1.0-1.2ε at 2-4 bits), and never below
 * the router-flip floor.
 */
export function quantizedTolerance(bits: ExpertBits, attentionBits: ExpertBits): QuantizedTolerance {
  const weightNoise = gaussianWeightNoise(Math.min(bits, attentionBits) as ExpertBits);
  return { weightNoise, logitsRelativeError: Math.max(2 * weightNoise, ROUTER_FLIP_ERROR_FLOOR) };
}

export interface QuantizedFidelity {
  readonly bits: ExpertBits;
  readonly attentionBits: ExpertBits;
  /** The fp16 all-resident run's tokens (the quantised reference's are the run's referenceTokens). */
  readonly fp16Tokens: number[][];
  /** Free-running: generated tokens equal, position by position, to the fp16 run's (share). */
  readonly tokenAgreement: number;
  /** Teacher-forced on the fp16 tokens: steps whose greedy token equals the fp16 one (share). */
  readonly top1Agreement: number;
  readonly logitsMaxAbsDiff: number;
  readonly logitsRelativeError: number;
  readonly tolerance: QuantizedTolerance;
  readonly withinTolerance: boolean;
}

export function quantizedFidelity(
  policy: Pick<ExpertPolicy, "bits" | "attentionBits">,
  fp16Tokens: number[][],
  quantizedTokens: number[][],
  fp16Logits: LogitsRecorder,
  forcedLogits: LogitsRecorder,
): QuantizedFidelity {
  if (policy.bits === 16 && policy.attentionBits === 16)
    throw new Error("quantizedFidelity: the policy is not quantised");
  const tolerance = quantizedTolerance(policy.bits, policy.attentionBits);
  const B = fp16Tokens.length;
  const steps = fp16Logits.steps.length;
  if (forcedLogits.steps.length !== steps || fp16Tokens[0]!.length !== steps)
    throw new Error(`quantizedFidelity: ${steps} fp16 steps, ${forcedLogits.steps.length} teacher-forced`);
  let same = 0;
  let total = 0;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < steps; t++) {
      total++;
      if (fp16Tokens[b]![t] === quantizedTokens[b]![t]) same++;
    }
  let agree = 0;
  let maxAbs = 0;
  let diff2 = 0;
  let ref2 = 0;
  for (let t = 0; t < steps; t++) {
    const ref = fp16Logits.steps[t]!;
    const got = forcedLogits.steps[t]!;
    const vocab = ref.length / B;
    for (let b = 0; b < B; b++) if (argmax(got, b * vocab, vocab) === fp16Tokens[b]![t]) agree++;
    for (let i = 0; i < ref.length; i++) {
      const d = got[i]! - ref[i]!;
      maxAbs = Math.max(maxAbs, Math.abs(d));
      diff2 += d * d;
      ref2 += ref[i]! * ref[i]!;
    }
  }
  const top1Agreement = agree / total;
  const logitsRelativeError = Math.sqrt(diff2 / ref2);
  return {
    bits: policy.bits,
    attentionBits: policy.attentionBits,
    fp16Tokens,
    tokenAgreement: same / total,
    top1Agreement,
    logitsMaxAbsDiff: maxAbs,
    logitsRelativeError,
    tolerance,
    withinTolerance: logitsRelativeError <= tolerance.logitsRelativeError,
  };
}
