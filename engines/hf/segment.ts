/**
 * One forward pass of a Hugging Face transformers decoder, cut where offloading engines act: at every
 * module that owns parameters (a Linear, a LayerNorm, an Embedding). Accelerate's AlignDevicesHook and
 * DeepSpeed ZeRO-3's fetch hook both run before such a module's own forward, so a segment is "that
 * module's parameters, then the GPU kernels and host-side framework operations from its call up to the
 * next parameter-owning module's call" (the attention arithmetic between v_proj and out_proj belongs to
 * v_proj's segment). Counts come from the modelling code (engines/hf/opt-forward.ts, llama-forward.ts).
 */

/** A parameter tensor a segment's module owns. */
export interface HfTensor {
  /** State-dict name inside the decoder layer or the model, e.g. "self_attn.q_proj.weight". */
  readonly name: string;
  readonly numel: number;
  readonly bytes: number;
}

/**
 * A GPU kernel: a GEMM through a weight (priced by the GEMM curve or roofline), a batched matmul
 * between activations (attention; roofline of its FLOPs and bytes), or an elementwise/copy kernel
 * (bytes read plus written).
 */
export type HfKernel =
  | { readonly kind: "gemm"; readonly name: string; readonly rows: number; readonly k: number; readonly n: number }
  | { readonly kind: "matmul"; readonly name: string; readonly flops: number; readonly bytes: number }
  | { readonly kind: "elementwise"; readonly name: string; readonly bytes: number };

/** Which part of the model a segment belongs to, for its placement. */
export type SegmentPart = "layer" | "embeddings" | "head" | "generate";

export interface HfSegment {
  /** The module whose hook runs at the segment's start, e.g. "self_attn.q_proj" (or "generate" for the loop). */
  readonly module: string;
  readonly part: SegmentPart;
  /** Parameters of that module (empty for the generate loop's own operations). */
  readonly params: readonly HfTensor[];
  readonly kernels: readonly HfKernel[];
  /** PyTorch operations dispatched on the host from this module's call to the next one's (views included). */
  readonly dispatchOps: number;
  /** Modelling-code file and function the segment is counted from. */
  readonly source: string;
}

/** The shape of one forward: `batch` sequences, `queryLen` new tokens each, attending over `contextLen` keys. */
export interface ForwardShape {
  readonly batch: number;
  readonly queryLen: number;
  readonly contextLen: number;
}

/** One decoder layer's segments and the model's segments before and after the layers. */
export interface HfForward {
  readonly before: readonly HfSegment[];
  readonly layer: readonly HfSegment[];
  readonly after: readonly HfSegment[];
}

export function tensor(name: string, numel: number, bytesPerValue: number): HfTensor {
  return { name, numel, bytes: numel * bytesPerValue };
}

export function gemm(name: string, rows: number, k: number, n: number): HfKernel {
  return { kind: "gemm", name, rows, k, n };
}

export function matmul(name: string, flops: number, bytes: number): HfKernel {
  return { kind: "matmul", name, flops, bytes };
}

export function elementwise(name: string, bytes: number): HfKernel {
  return { kind: "elementwise", name, bytes };
}

export function segmentParamBytes(segment: HfSegment): number {
  return segment.params.reduce((a, t) => a + t.bytes, 0);
}

export function segment(
  module: string,
  part: SegmentPart,
  params: readonly HfTensor[],
  kernels: readonly HfKernel[],
  dispatchOps: number,
  source: string,
): HfSegment {
  return { module, part, params, kernels, dispatchOps, source };
}

/** A decoder layer's segments as a modelling file counts them (layerSegments). */
export interface LayerSegments {
  /** A module's segment: part "layer", its source `${file} ${where}`. */
  layer(module: string, params: HfTensor[], kernels: HfKernel[], dispatchOps: number, where: string): HfSegment;
  /**
   * A Linear module's segment: its parameters, its GEMM (named as the module's last name: "q_proj" for
   * "self_attn.q_proj"), then `after`, the kernels its call issues before the next module's.
   */
  linear(module: string, k: number, n: number, after: HfKernel[], dispatchOps: number, where: string): HfSegment;
}

/** The segments of a layer counted from `file`, its Linear modules' GEMMs over `rows` rows and parameters `params`. */
export function layerSegments(
  file: string,
  rows: number,
  params: (module: string, k: number, n: number) => HfTensor[],
): LayerSegments {
  const layer: LayerSegments["layer"] = (module, moduleParams, kernels, dispatchOps, where) =>
    segment(module, "layer", moduleParams, kernels, dispatchOps, `${file} ${where}`);
  const linear: LayerSegments["linear"] = (module, k, n, after, dispatchOps, where) => {
    const gemmName = module.slice(module.lastIndexOf(".") + 1);
    return layer(module, params(module, k, n), [gemm(gemmName, rows, k, n), ...after], dispatchOps, where);
  };
  return { layer, linear };
}
