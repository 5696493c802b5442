/**
 * Dense fp32 matrix product with bias, the CPU backend's hot kernel: every projection of an OPT layer
 * (q/k/v/out projections, fc1, fc2) and the LM head go through `matmulBias`.
 *
 *   out[m, n] = a[m, k] · wᵀ + bias,   w stored [n, k] row-major
 *
 * `w` has the PyTorch `nn.Linear` / Hugging Face layout `weight[out_features, in_features]`, so each
 * output element is the dot product of one row of `a` with one row of `w`, both contiguous in memory.
 *
 * Two implementations:
 * - a WebAssembly SIMD kernel (f32x4 mul + add; Node 20's V8 has no FMA in standard wasm SIMD and
 *   relaxed SIMD is still behind a flag). The module is assembled here from a few dozen opcodes, so
 *   there is no build step and no dependency. The micro-kernel keeps MR×NR f32x4 accumulators in
 *   registers, each holding four partial sums of one dot product, and reduces them horizontally once
 *   per k block. Inputs are copied into the module's memory per call, k padded to a multiple of 4
 *   and w to whole NR-row tiles with zeros, so the kernel has no edge cases. The copies cost
 *   O(mk + nk) against O(mnk) work: nothing for prefill, but for one-token decoding copying w is
 *   about half the time (1×768×3072: ~0.35 ms of ~0.7 ms). The memory keeps its high-water mark,
 *   bounded by `maxWorkingBytes` (512 MiB) by chunking larger products.
 * - a register-blocked JavaScript kernel, used when WebAssembly SIMD is unavailable and for products
 *   too small for the copy to pay off. It also serves as the benchmark's baseline.
 */

// ---------------------------------------------------------------------------------------------------
// A tiny WebAssembly assembler: just the sections and opcodes the GEMM kernel needs.
// ---------------------------------------------------------------------------------------------------

const I32 = 0x7f;
const V128 = 0x7b;

function uleb(value: number): number[] {
  const bytes: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    bytes.push(byte);
  } while (v !== 0);
  return bytes;
}

function sleb(value: number): number[] {
  const bytes: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    bytes.push(done ? byte : byte | 0x80);
    if (done) return bytes;
  }
}

function utf8(text: string): number[] {
  return [...uleb(text.length), ...Array.from(text, (c) => c.charCodeAt(0))];
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

/** Function body builder; method names follow the wasm text format. */
class Body {
  readonly bytes: number[] = [];
  private readonly localGroups: Array<[count: number, type: number]> = [];
  private nextLocal: number;

  constructor(paramCount: number) {
    this.nextLocal = paramCount;
  }

  /** Declares `count` locals of `type`, returning the index of the first. */
  locals(type: number, count: number): number {
    const first = this.nextLocal;
    this.localGroups.push([count, type]);
    this.nextLocal += count;
    return first;
  }

  get(index: number): this {
    return this.emit(0x20, ...uleb(index));
  }
  set(index: number): this {
    return this.emit(0x21, ...uleb(index));
  }
  tee(index: number): this {
    return this.emit(0x22, ...uleb(index));
  }
  i32Const(value: number): this {
    return this.emit(0x41, ...sleb(value));
  }
  i32Add(): this {
    return this.emit(0x6a);
  }
  i32Sub(): this {
    return this.emit(0x6b);
  }
  i32Mul(): this {
    return this.emit(0x6c);
  }
  i32LtU(): this {
    return this.emit(0x49);
  }
  loop(): this {
    return this.emit(0x03, 0x40);
  }
  end(): this {
    return this.emit(0x0b);
  }
  brIf(depth: number): this {
    return this.emit(0x0d, ...uleb(depth));
  }
  f32Load(offsetBytes = 0): this {
    return this.emit(0x2a, 2, ...uleb(offsetBytes));
  }
  f32Add(): this {
    return this.emit(0x92);
  }
  f32Store(offsetBytes = 0): this {
    return this.emit(0x38, 2, ...uleb(offsetBytes));
  }
  private simd(opcode: number): this {
    return this.emit(0xfd, ...uleb(opcode));
  }
  /** Appends an instruction's bytes (opcode and immediates). */
  private emit(...code: number[]): this {
    this.bytes.push(...code);
    return this;
  }
  v128Load(offsetBytes = 0): this {
    return this.simd(0x00).emit(4, ...uleb(offsetBytes));
  }
  v128Store(offsetBytes = 0): this {
    return this.simd(0x0b).emit(4, ...uleb(offsetBytes));
  }
  v128Zero(): this {
    return this.simd(0x0c).emit(...new Array<number>(16).fill(0));
  }
  /** i8x16.shuffle with float lanes 0..3 from the first operand and 4..7 from the second. */
  shuffleF32(lanes: readonly [number, number, number, number]): this {
    this.simd(0x0d);
    for (const lane of lanes) this.bytes.push(4 * lane, 4 * lane + 1, 4 * lane + 2, 4 * lane + 3);
    return this;
  }
  f32x4ExtractLane(lane: number): this {
    return this.simd(0x1f).emit(lane);
  }
  f32x4Add(): this {
    return this.simd(0xe4);
  }
  f32x4Mul(): this {
    return this.simd(0xe6);
  }

  encode(): number[] {
    const locals = [
      ...uleb(this.localGroups.length),
      ...this.localGroups.flatMap(([count, type]) => [...uleb(count), type]),
    ];
    const body = [...locals, ...this.bytes, 0x0b];
    return [...uleb(body.length), ...body];
  }
}

/**
 * Emits `gemm(aPtr, wPtr, outPtr, biasPtr, mTiles, nTiles, kBytes, ldkBytes, ldoBytes)`:
 * for every MR×NR tile, out[i, j] = (accumulate ? out[i, j] : bias[j]) + Σ_p a[i, p]·w[j, p] over
 * p < kBytes/4, where a and w rows are `ldkBytes` apart and out rows `ldoBytes` apart.
 * Requires kBytes a positive multiple of 16 and mTiles, nTiles ≥ 1 (the caller pads).
 */
function emitGemm(mr: number, nr: number, accumulate: boolean): Body {
  const [A, W, OUT, BIAS, MT, NT, KB, LDK, LDO] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const f = new Body(9);
  const aRow = f.locals(I32, 1);
  const oRow = f.locals(I32, 1);
  const wRow = f.locals(I32, 1);
  const oPtr = f.locals(I32, 1);
  const bPtr = f.locals(I32, 1);
  const jt = f.locals(I32, 1);
  const p = f.locals(I32, 1);
  const aR = f.locals(I32, mr);
  const wC = f.locals(I32, nr);
  const acc = f.locals(V128, mr * nr);
  const wv = f.locals(V128, nr);
  const av = f.locals(V128, 1);
  const t0 = f.locals(V128, 1);
  const t1 = f.locals(V128, 1);

  f.get(A).set(aRow).get(OUT).set(oRow);
  f.loop(); // over row tiles
  for (let r = 0; r < mr; r++)
    f.get(aRow)
      .get(LDK)
      .i32Const(r)
      .i32Mul()
      .i32Add()
      .set(aR + r);
  f.get(W).set(wRow).get(oRow).set(oPtr).get(BIAS).set(bPtr).get(NT).set(jt);
  f.loop(); // over column tiles
  for (let c = 0; c < nr; c++)
    f.get(wRow)
      .get(LDK)
      .i32Const(c)
      .i32Mul()
      .i32Add()
      .set(wC + c);
  for (let i = 0; i < mr * nr; i++) f.v128Zero().set(acc + i);
  f.i32Const(0).set(p);
  f.loop(); // over k, four values at a time
  for (let c = 0; c < nr; c++)
    f.get(wC + c)
      .get(p)
      .i32Add()
      .v128Load()
      .set(wv + c);
  for (let r = 0; r < mr; r++) {
    f.get(aR + r)
      .get(p)
      .i32Add()
      .v128Load()
      .set(av);
    for (let c = 0; c < nr; c++)
      f.get(acc + r * nr + c)
        .get(av)
        .get(wv + c)
        .f32x4Mul()
        .f32x4Add()
        .set(acc + r * nr + c);
  }
  f.get(p).i32Const(16).i32Add().tee(p).get(KB).i32LtU().brIf(0);
  f.end();
  // Reduce each accumulator's four partial sums and add bias (first k block) or the stored sum.
  for (let r = 0; r < mr; r++) {
    const rowAddress = () => f.get(oPtr).get(LDO).i32Const(r).i32Mul().i32Add();
    let c = 0;
    for (; c + 4 <= nr; c += 4) {
      const [x0, x1, x2, x3] = [0, 1, 2, 3].map((d) => acc + r * nr + c + d) as [number, number, number, number];
      // Transpose-and-add: [x0 x1 x2 x3 sums] in one vector with 6 shuffles and 3 adds.
      f.get(x0).get(x1).shuffleF32([0, 1, 4, 5]).get(x0).get(x1).shuffleF32([2, 3, 6, 7]).f32x4Add().set(t0);
      f.get(x2).get(x3).shuffleF32([0, 1, 4, 5]).get(x2).get(x3).shuffleF32([2, 3, 6, 7]).f32x4Add().set(t1);
      rowAddress();
      f.get(t0).get(t1).shuffleF32([0, 2, 4, 6]).get(t0).get(t1).shuffleF32([1, 3, 5, 7]).f32x4Add();
      if (accumulate) rowAddress().v128Load(4 * c);
      else f.get(bPtr).v128Load(4 * c);
      f.f32x4Add().v128Store(4 * c);
    }
    for (; c < nr; c++) {
      const x = acc + r * nr + c;
      f.get(x).get(x).get(x).shuffleF32([2, 3, 0, 1]).f32x4Add().set(t0);
      f.get(t0).get(t0).get(t0).shuffleF32([1, 0, 3, 2]).f32x4Add().set(t0);
      rowAddress();
      f.get(t0).f32x4ExtractLane(0);
      if (accumulate) rowAddress().f32Load(4 * c);
      else f.get(bPtr).f32Load(4 * c);
      f.f32Add().f32Store(4 * c);
    }
  }
  f.get(wRow).get(LDK).i32Const(nr).i32Mul().i32Add().set(wRow);
  f.get(oPtr)
    .i32Const(4 * nr)
    .i32Add()
    .set(oPtr);
  f.get(bPtr)
    .i32Const(4 * nr)
    .i32Add()
    .set(bPtr);
  f.get(jt).i32Const(1).i32Sub().tee(jt).brIf(0);
  f.end();
  f.get(aRow).get(LDK).i32Const(mr).i32Mul().i32Add().set(aRow);
  f.get(oRow).get(LDO).i32Const(mr).i32Mul().i32Add().set(oRow);
  f.get(MT).i32Const(1).i32Sub().tee(MT).brIf(0);
  f.end();
  return f;
}

/**
 * Module bytes: imports `env.mem`; for each row count r in 1..mr exports `store{r}` (out = bias + a·wᵀ)
 * and `accumulate{r}` (out += a·wᵀ), all with NR columns per tile. The r < mr kernels take the rows
 * left over after whole mr-row tiles, so `a` is never padded with rows of zeros that would cost work.
 */
function gemmModuleBytes(mr: number, nr: number): Uint8Array<ArrayBuffer> {
  const type = [0x60, ...uleb(9), ...new Array<number>(9).fill(I32), 0];
  const names: string[] = [];
  const bodies: number[][] = [];
  for (let rows = 1; rows <= mr; rows++) {
    for (const accumulate of [false, true]) {
      names.push(`${accumulate ? "accumulate" : "store"}${rows}`);
      bodies.push(emitGemm(rows, nr, accumulate).encode());
    }
  }
  const exports = names.flatMap((name, index) => [...utf8(name), 0x00, ...uleb(index)]);
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [1, ...type]),
    // A shared memory (limits flag 0x03: shared, with a maximum): see createWasmMatmul.
    ...section(2, [1, ...utf8("env"), ...utf8("mem"), 0x02, 0x03, 0x01, ...uleb(MAX_MEMORY_PAGES)]),
    ...section(3, [...uleb(bodies.length), ...bodies.map(() => 0)]),
    ...section(7, [...uleb(names.length), ...exports]),
    ...section(10, [...uleb(bodies.length), ...bodies.flat()]),
  ];
  return new Uint8Array(bytes);
}

// ---------------------------------------------------------------------------------------------------
// Driver: pads inputs into wasm memory, blocks over k and n for cache reuse, copies the result out.
// ---------------------------------------------------------------------------------------------------

export interface WasmGemmTuning {
  /** Rows of `a` per register tile. */
  mr: number;
  /** Rows of `w` (output columns) per register tile. */
  nr: number;
  /** k values per block: how long a tile's accumulators run before being reduced; mr rows × kBlock of a stay in L1. */
  kBlock: number;
  /** Output columns per block: nBlock rows × kBlock values of w stay in L2 while all of a's rows stream past. */
  nBlock: number;
  /** Cap on one call's padded copies in wasm memory; larger products run in column chunks. Default 512 MiB. */
  maxWorkingBytes?: number;
}

/**
 * Measured on the 2-core AMD EPYC (AVX2, no AVX-512) dev machine, 1024³: 2×4 ≈ 32 GFLOP/s, 4×2 ≈ 30,
 * 3×4 ≈ 24, 4×4 ≈ 19 (x64 has 16 xmm registers and V8 keeps one as scratch: 2×4 needs 8 accumulators
 * + 4 w + 1 a + 1 product; bigger tiles spill). kBlock 1024 beat 256 (27) by reducing less often.
 */
export const DEFAULT_WASM_GEMM_TUNING: WasmGemmTuning = { mr: 2, nr: 4, kBlock: 1024, nBlock: 64 };

type GemmExport = (
  aPtr: number,
  wPtr: number,
  outPtr: number,
  biasPtr: number,
  mTiles: number,
  nTiles: number,
  kBytes: number,
  ldkBytes: number,
  ldoBytes: number,
) => void;

const PAGE_BYTES = 65536;
/** wasm32's largest memory (4 GiB), the shared memory's declared maximum (address space, not memory, until grown). */
const MAX_MEMORY_PAGES = 65536;
/** Default cap on one call's padded copies (wasm32 memory tops out at 4 GiB; this leaves room and bounds growth). */
const MAX_WORKING_BYTES = 512 * 2 ** 20;

const roundUp = (value: number, multiple: number) => Math.ceil(value / multiple) * multiple;

export type MatmulBias = (
  a: Float32Array,
  w: Float32Array,
  bias: Float32Array | undefined,
  out: Float32Array,
  m: number,
  k: number,
  n: number,
) => void;

/** Whether this engine validates and runs WebAssembly SIMD (Node 20 does). */
export function wasmSimdSupported(): boolean {
  try {
    return typeof WebAssembly === "object" && WebAssembly.validate(gemmModuleBytes(1, 4));
  } catch {
    return false;
  }
}

/** Builds a WebAssembly SIMD `matmulBias` with its own memory and the given register and cache blocking. */
export function createWasmMatmul(tuning: WasmGemmTuning = DEFAULT_WASM_GEMM_TUNING): MatmulBias {
  const { mr, nr } = tuning;
  const kBlock = roundUp(tuning.kBlock, 4);
  const nBlock = roundUp(tuning.nBlock, nr);
  const maxWorkingBytes = tuning.maxWorkingBytes ?? MAX_WORKING_BYTES;
  // Shared, so that growing it never detaches an ArrayBuffer: the first detach in a process
  // invalidates V8's ArrayBuffer-detaching protector, which throws away every optimised function that
  // reads a typed array (here the fp16 decode and the expert kernels around this GEMM) and recompiles
  // them with detach checks. Measured with process CPU time on a 2-core Xeon VM (Node 20): the MoE
  // bench's fp16 linear (1x256x512) went from ~5 to 8-9 ns per weight for the seconds after the
  // profile's first large GEMM grew a non-shared memory, and recovered only as it was recompiled;
  // a shared memory's grow leaves it unchanged. The old views stay valid (and unused) after a grow.
  const memory = new WebAssembly.Memory({ initial: 16, maximum: MAX_MEMORY_PAGES, shared: true });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(gemmModuleBytes(mr, nr)), { env: { mem: memory } });
  const kernel = (name: string) => instance.exports[name] as GemmExport;
  /** store[r], accumulate[r]: kernels for tiles of r rows (index 0 unused). */
  const store: GemmExport[] = [];
  const accumulate: GemmExport[] = [];
  for (let rows = 1; rows <= mr; rows++) {
    store[rows] = kernel(`store${rows}`);
    accumulate[rows] = kernel(`accumulate${rows}`);
  }
  let heap = new Float32Array(memory.buffer);

  const ensureFloats = (floats: number) => {
    const bytes = floats * 4;
    if (bytes > memory.buffer.byteLength) memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / PAGE_BYTES));
    // Growing gives memory.buffer a new (longer) SharedArrayBuffer; refresh the view whenever it changed.
    if (heap.buffer !== memory.buffer) heap = new Float32Array(memory.buffer);
  };

  /** Copies `rows` rows of length k (stride k in src) to heap[at] with stride kp, zero-filling to `paddedRows`. */
  const copyRowsPadded = (
    src: Float32Array,
    srcOffset: number,
    rows: number,
    k: number,
    kp: number,
    at: number,
    paddedRows: number,
  ) => {
    if (k === kp) heap.set(src.subarray(srcOffset, srcOffset + rows * k), at);
    else {
      for (let r = 0; r < rows; r++) {
        heap.set(src.subarray(srcOffset + r * k, srcOffset + r * k + k), at + r * kp);
        heap.fill(0, at + r * kp + k, at + r * kp + kp);
      }
    }
    heap.fill(0, at + rows * kp, at + paddedRows * kp);
  };

  /** Output columns n0 .. n0 + nCount (rows n0.. of w). */
  const chunk = (
    a: Float32Array,
    w: Float32Array,
    bias: Float32Array | undefined,
    out: Float32Array,
    m: number,
    k: number,
    n: number,
    n0: number,
    nCount: number,
  ) => {
    const kp = roundUp(k, 4);
    const np = roundUp(nCount, nr);
    // Float offsets of the four regions; each is 16-byte aligned because kp is a multiple of 4.
    const aAt = 0;
    const wAt = aAt + m * kp;
    const biasAt = wAt + np * kp;
    const outAt = biasAt + roundUp(np, 4);
    ensureFloats(outAt + m * np);
    copyRowsPadded(a, 0, m, k, kp, aAt, m);
    copyRowsPadded(w, n0 * k, nCount, k, kp, wAt, np);
    if (bias) heap.set(bias.subarray(n0, n0 + nCount), biasAt);
    heap.fill(0, bias ? biasAt + nCount : biasAt, biasAt + np);

    /** `mTiles` tiles of rows i0.. by output columns j0 .. j0 + jLen, over k0 .. k0 + kLen (byte addresses). */
    const tiles = (
      kernel: GemmExport,
      i0: number,
      mTiles: number,
      k0: number,
      kLen: number,
      j0: number,
      jLen: number,
    ) =>
      kernel(
        4 * (aAt + i0 * kp + k0),
        4 * (wAt + j0 * kp + k0),
        4 * (outAt + i0 * np + j0),
        4 * (biasAt + j0),
        mTiles,
        jLen / nr,
        4 * kLen,
        4 * kp,
        4 * np,
      );
    const wholeTiles = Math.floor(m / mr);
    const leftoverRows = m - wholeTiles * mr;
    for (let k0 = 0; k0 < kp; k0 += kBlock) {
      const kLen = Math.min(kBlock, kp - k0);
      const kernels = k0 === 0 ? store : accumulate;
      for (let j0 = 0; j0 < np; j0 += nBlock) {
        const jLen = Math.min(nBlock, np - j0);
        if (wholeTiles > 0) tiles(kernels[mr]!, 0, wholeTiles, k0, kLen, j0, jLen);
        if (leftoverRows > 0) tiles(kernels[leftoverRows]!, wholeTiles * mr, 1, k0, kLen, j0, jLen);
      }
    }
    if (n0 === 0 && nCount === n && np === n) out.set(heap.subarray(outAt, outAt + m * n));
    else for (let i = 0; i < m; i++) out.set(heap.subarray(outAt + i * np, outAt + i * np + nCount), i * n + n0);
  };

  const matmul: MatmulBias = (a, w, bias, out, m, k, n) => {
    checkShapes(a, w, bias, out, m, k, n);
    if (m === 0 || n === 0) return;
    if (k === 0) {
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[i * n + j] = bias ? bias[j]! : 0;
      return;
    }
    const kp = roundUp(k, 4);
    // Rows of a (and of out, both contiguous row blocks) per chunk: a's copy takes at most half the cap.
    const mChunk = Math.max(1, Math.floor(maxWorkingBytes / 8 / kp));
    if (m > mChunk) {
      for (let i0 = 0; i0 < m; i0 += mChunk) {
        const rows = Math.min(mChunk, m - i0);
        matmul(a.subarray(i0 * k, (i0 + rows) * k), w, bias, out.subarray(i0 * n, (i0 + rows) * n), rows, k, n);
      }
      return;
    }
    // Columns per chunk so that a, the w chunk, its bias and its output fit the rest of the cap.
    const perColumnFloats = kp + m + 1;
    const budgetFloats = maxWorkingBytes / 4 - m * kp;
    const nChunk = Math.max(nr, Math.floor(budgetFloats / perColumnFloats / nr) * nr);
    for (let n0 = 0; n0 < n; n0 += nChunk) chunk(a, w, bias, out, m, k, n, n0, Math.min(nChunk, n - n0));
  };
  return matmul;
}

const checkShapes: MatmulBias = (a, w, bias, out, m, k, n) => {
  if (a.length < m * k) throw new RangeError(`matmulBias: a has ${a.length} values, needs m*k = ${m * k}`);
  if (w.length < n * k) throw new RangeError(`matmulBias: w has ${w.length} values, needs n*k = ${n * k}`);
  if (bias && bias.length < n) throw new RangeError(`matmulBias: bias has ${bias.length} values, needs n = ${n}`);
  if (out.length < m * n) throw new RangeError(`matmulBias: out has ${out.length} values, needs m*n = ${m * n}`);
};

// ---------------------------------------------------------------------------------------------------
// JavaScript kernel.
// ---------------------------------------------------------------------------------------------------

/**
 * Register-blocked scalar kernel: 2 rows of a × 4 rows of w per tile (8 accumulators, which V8 keeps
 * in registers), k unrolled by 2. Accumulates in float64 (JS numbers), so it is also slightly more
 * accurate than the wasm kernel. `out` must not alias `a` or `w`.
 */
export const matmulBiasJs: MatmulBias = (a, w, bias, out, m, k, n) => {
  checkShapes(a, w, bias, out, m, k, n);
  const k2 = k & ~1;
  let i = 0;
  for (; i + 2 <= m; i += 2) {
    const a0 = i * k;
    const a1 = a0 + k;
    let j = 0;
    for (; j + 4 <= n; j += 4) {
      const w0 = j * k;
      const w1 = w0 + k;
      const w2 = w1 + k;
      const w3 = w2 + k;
      let s00 = 0,
        s01 = 0,
        s02 = 0,
        s03 = 0,
        s10 = 0,
        s11 = 0,
        s12 = 0,
        s13 = 0;
      let p = 0;
      for (; p < k2; p += 2) {
        const x0 = a[a0 + p]!,
          y0 = a[a0 + p + 1]!;
        const x1 = a[a1 + p]!,
          y1 = a[a1 + p + 1]!;
        const u0 = w[w0 + p]!,
          v0 = w[w0 + p + 1]!;
        const u1 = w[w1 + p]!,
          v1 = w[w1 + p + 1]!;
        const u2 = w[w2 + p]!,
          v2 = w[w2 + p + 1]!;
        const u3 = w[w3 + p]!,
          v3 = w[w3 + p + 1]!;
        s00 += x0 * u0 + y0 * v0;
        s01 += x0 * u1 + y0 * v1;
        s02 += x0 * u2 + y0 * v2;
        s03 += x0 * u3 + y0 * v3;
        s10 += x1 * u0 + y1 * v0;
        s11 += x1 * u1 + y1 * v1;
        s12 += x1 * u2 + y1 * v2;
        s13 += x1 * u3 + y1 * v3;
      }
      if (p < k) {
        const x0 = a[a0 + p]!,
          x1 = a[a1 + p]!;
        const u0 = w[w0 + p]!,
          u1 = w[w1 + p]!,
          u2 = w[w2 + p]!,
          u3 = w[w3 + p]!;
        s00 += x0 * u0;
        s01 += x0 * u1;
        s02 += x0 * u2;
        s03 += x0 * u3;
        s10 += x1 * u0;
        s11 += x1 * u1;
        s12 += x1 * u2;
        s13 += x1 * u3;
      }
      const b0 = bias ? bias[j]! : 0,
        b1 = bias ? bias[j + 1]! : 0,
        b2 = bias ? bias[j + 2]! : 0,
        b3 = bias ? bias[j + 3]! : 0;
      const o0 = i * n + j;
      const o1 = o0 + n;
      out[o0] = s00 + b0;
      out[o0 + 1] = s01 + b1;
      out[o0 + 2] = s02 + b2;
      out[o0 + 3] = s03 + b3;
      out[o1] = s10 + b0;
      out[o1 + 1] = s11 + b1;
      out[o1 + 2] = s12 + b2;
      out[o1 + 3] = s13 + b3;
    }
    for (; j < n; j++) {
      out[i * n + j] = dot(a, a0, w, j * k, k) + (bias ? bias[j]! : 0);
      out[(i + 1) * n + j] = dot(a, a1, w, j * k, k) + (bias ? bias[j]! : 0);
    }
  }
  for (; i < m; i++) {
    const a0 = i * k;
    let j = 0;
    for (; j + 4 <= n; j += 4) {
      const w0 = j * k;
      const w1 = w0 + k;
      const w2 = w1 + k;
      const w3 = w2 + k;
      let s0 = 0,
        s1 = 0,
        s2 = 0,
        s3 = 0;
      for (let p = 0; p < k; p++) {
        const x = a[a0 + p]!;
        s0 += x * w[w0 + p]!;
        s1 += x * w[w1 + p]!;
        s2 += x * w[w2 + p]!;
        s3 += x * w[w3 + p]!;
      }
      const o = i * n + j;
      out[o] = s0 + (bias ? bias[j]! : 0);
      out[o + 1] = s1 + (bias ? bias[j + 1]! : 0);
      out[o + 2] = s2 + (bias ? bias[j + 2]! : 0);
      out[o + 3] = s3 + (bias ? bias[j + 3]! : 0);
    }
    for (; j < n; j++) out[i * n + j] = dot(a, a0, w, j * k, k) + (bias ? bias[j]! : 0);
  }
};

function dot(x: Float32Array, xOffset: number, y: Float32Array, yOffset: number, length: number): number {
  let s = 0;
  for (let p = 0; p < length; p++) s += x[xOffset + p]! * y[yOffset + p]!;
  return s;
}

// ---------------------------------------------------------------------------------------------------
// Public entry point.
// ---------------------------------------------------------------------------------------------------

/** Below about this many multiply-adds the JS kernel wins (measured: 1×16×16 JS 0.26 µs vs wasm 0.47 µs; 1×32×32 JS 0.96 µs vs 0.62 µs): the wasm call's copies and padding dominate. */
const WASM_MIN_MACS = 1024;

let wasmMatmul: MatmulBias | null | undefined;

/** The wasm kernel, created on first use; null where WebAssembly SIMD is unavailable. */
function wasmKernel(): MatmulBias | null {
  if (wasmMatmul === undefined) wasmMatmul = wasmSimdSupported() ? createWasmMatmul() : null;
  return wasmMatmul;
}

/**
 * out[m, n] = a[m, k] · wᵀ + bias, with w stored [n, k] row-major (weight[out_features, in_features])
 * and bias of length n (or undefined for none). All row-major fp32. `out` must not alias `a` or `w`.
 */
export const matmulBias: MatmulBias = (a, w, bias, out, m, k, n) => {
  const wasm = m * n * k >= WASM_MIN_MACS ? wasmKernel() : null;
  if (wasm) wasm(a, w, bias, out, m, k, n);
  else matmulBiasJs(a, w, bias, out, m, k, n);
};

/** Which implementation large products use in this process (for benchmark reports). */
export function matmulImplementation(): "wasm-simd" | "js" {
  return wasmKernel() ? "wasm-simd" : "js";
}
