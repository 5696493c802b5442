/**
 * The safetensors format: an 8-byte little-endian header length N, N bytes of UTF-8 JSON describing
 * each tensor (dtype, shape, [begin, end) offsets into the data section), then the data. The reader
 * parses and validates only the header, then reads tensors on demand, so a checkpoint far larger than
 * memory can be opened; the writer streams tensor by tensor into a temporary file and renames it, so a
 * failed write never leaves a half-written file under the final name.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { endianness } from "node:os";
import { describeValue, InputError } from "../core/input-error.js";
import { removeOnSignal, removeStaleTemporaries, temporaryPathFor } from "../core/temporary-files.js";
import { checkOutputPath, openTemporaryExclusively } from "../core/write-file-atomic.js";
import { fromBfloat16Array, fromFloat16Array, toFloat16Array } from "./fp16.js";

/** Bytes per element of every dtype the safetensors specification defines (sub-byte types excluded). */
const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  U16: 2,
  I16: 2,
  F16: 2,
  BF16: 2,
  U32: 4,
  I32: 4,
  F32: 4,
  U64: 8,
  I64: 8,
  F64: 8,
} as const;

export type SafetensorsDtype = keyof typeof DTYPE_BYTES;
/** The dtypes `readFloat32` converts. */
export const FLOAT_DTYPES: readonly SafetensorsDtype[] = ["F16", "BF16", "F32", "F64"];

export interface TensorInfo {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly byteLength: number;
}

interface TensorEntry extends TensorInfo {
  /** Offset of the first byte from the start of the data section. */
  readonly begin: number;
}

const HEADER_LENGTH_BYTES = 8;
/** The reference implementation refuses headers over 100 MB; a bigger one means the length field is garbage. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = "__metadata__";
/** Reads and conversions go in pieces of this size, so converting a tensor needs no second full-size buffer. */
const IO_CHUNK_BYTES = 8 * 2 ** 20;
/** Below the 2 GiB that one read or write system call may move. */
const MAX_SYSCALL_BYTES = 2 ** 30;

function checkLittleEndianHost(): void {
  // Typed-array views of file bytes assume the file's little-endian order is the machine's.
  if (endianness() !== "LE") throw new Error("safetensors: a big-endian host is not supported");
}

/** The number of values a tensor of this shape holds. */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

// ---------------------------------------------------------------------------------------------
// Reading

export interface SafetensorsFile {
  readonly path: string;
  /** Tensor names in the order of their data in the file. */
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** The header's "__metadata__" (string to string), empty when absent. */
  metadata(): Record<string, string>;
  /** The tensor converted to fp32 (F16, BF16, F32, F64), into `dst` when given. */
  readFloat32(name: string, dst?: Float32Array): Float32Array;
  /** The tensor's bytes exactly as stored, into `dst` (at least the tensor's byteLength) when given. */
  readRaw(name: string, dst?: Uint8Array): Uint8Array;
  /** Values [firstValue, firstValue + dst.length) of a floating-point tensor, converted to fp32 into `dst`. */
  readFloat32Range(name: string, firstValue: number, dst: Float32Array): Float32Array;
  close(): void;
}

/** Opens a safetensors file and validates its whole header; tensor data is read only when asked for. */
export function openSafetensors(path: string): SafetensorsFile {
  checkLittleEndianHost();
  const fd = openForReading(path);
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new InputError(path, undefined, "is not a file, expected a safetensors file");
    const fileBytes = stats.size;
    const headerBytes = readHeaderLength(fd, path, fileBytes);
    const header = parseHeaderJson(readExactly(fd, path, HEADER_LENGTH_BYTES, headerBytes), path);
    const dataStart = HEADER_LENGTH_BYTES + headerBytes;
    const { entries, metadata } = validateHeader(header, path, fileBytes - dataStart);
    return new OpenSafetensorsFile(path, fd, dataStart, entries, metadata);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

function openForReading(path: string): number {
  try {
    // Checked before opening: opening a FIFO for reading would wait for a writer; a device has no end.
    const stats = statSync(path);
    if (!stats.isFile())
      throw new InputError(
        path,
        undefined,
        `${stats.isDirectory() ? "is a directory" : "is not a regular file (a device, pipe or socket)"}, expected a safetensors file`,
      );
    return openSync(path, "r");
  } catch (error) {
    if (error instanceof InputError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === "ENOENT"
        ? "no such file"
        : code === "EISDIR"
          ? "is a directory, expected a safetensors file"
          : (error as Error).message;
    throw new InputError(path, undefined, reason);
  }
}

function readHeaderLength(fd: number, path: string, fileBytes: number): number {
  if (fileBytes < HEADER_LENGTH_BYTES) {
    throw new InputError(
      path,
      undefined,
      `not a safetensors file: ${fileBytes} bytes, too short for the 8-byte header length`,
    );
  }
  const lengthField = Buffer.from(readExactly(fd, path, 0, HEADER_LENGTH_BYTES)).readBigUInt64LE(0);
  if (lengthField > BigInt(fileBytes - HEADER_LENGTH_BYTES)) {
    // A plausible length points to a file cut short inside its header; an absurd one to some other kind of file.
    if (lengthField <= BigInt(MAX_HEADER_BYTES)) {
      throw new InputError(
        path,
        undefined,
        `truncated: the header is ${lengthField} bytes but the file ends ${fileBytes - HEADER_LENGTH_BYTES} bytes into it`,
      );
    }
    throw new InputError(
      path,
      undefined,
      `not a safetensors file: header length ${lengthField} is larger than the file (${fileBytes} bytes)`,
    );
  }
  const headerBytes = Number(lengthField);
  if (headerBytes > MAX_HEADER_BYTES)
    throw new InputError(
      path,
      undefined,
      `not a safetensors file: header length ${headerBytes} is over the 100 MB limit`,
    );
  if (headerBytes < 2)
    throw new InputError(
      path,
      undefined,
      `not a safetensors file: header length ${headerBytes} is too short for a JSON object`,
    );
  return headerBytes;
}

function parseHeaderJson(bytes: Uint8Array, path: string): unknown {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new InputError(path, undefined, "not a safetensors file: the header is not UTF-8 text");
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InputError(
      path,
      undefined,
      `not a safetensors file: the header is not JSON (${(error as Error).message})`,
    );
  }
}

function validateHeader(
  header: unknown,
  path: string,
  dataBytes: number,
): { entries: Map<string, TensorEntry>; metadata: Record<string, string> } {
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new InputError(
      path,
      undefined,
      `not a safetensors file: the header is ${describeValue(header)}, expected a JSON object`,
    );
  }
  const record = header as Record<string, unknown>;
  const metadata = validateMetadata(record[METADATA_KEY], path);
  const entries = new Map<string, TensorEntry>();
  for (const [name, value] of Object.entries(record)) {
    if (name === METADATA_KEY) continue;
    entries.set(name, validateEntry(value, path, name));
  }
  checkDataRanges(entries, path, dataBytes);
  // Data order, so names() lists tensors the way a sequential reader meets them.
  const sorted = new Map([...entries].sort((a, b) => a[1].begin - b[1].begin));
  return { entries: sorted, metadata };
}

function validateMetadata(value: unknown, path: string): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InputError(path, METADATA_KEY, `expected an object of strings, got ${describeValue(value)}`);
  }
  const metadata: Record<string, string> = {};
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== "string")
      throw new InputError(path, `${METADATA_KEY}.${key}`, `expected a string, got ${describeValue(item)}`);
    metadata[key] = item;
  }
  return metadata;
}

function validateEntry(value: unknown, path: string, name: string): TensorEntry {
  const field = `tensor ${name}`;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InputError(
      path,
      field,
      `expected an object with dtype, shape and data_offsets, got ${describeValue(value)}`,
    );
  }
  const entry = value as Record<string, unknown>;
  const dtype = entry.dtype;
  if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_BYTES, dtype)) {
    throw new InputError(
      path,
      field,
      `unknown dtype ${typeof dtype === "string" ? JSON.stringify(dtype) : describeValue(dtype)}; expected one of ${Object.keys(DTYPE_BYTES).join(", ")}`,
    );
  }
  const shape = readShape(entry.shape, path, field);
  const offsets = entry.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
    throw new InputError(
      path,
      field,
      `data_offsets must be two non-negative integers [begin, end], got ${JSON.stringify(offsets)}`,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw new InputError(path, field, `data_offsets [${begin}, ${end}] end before they begin`);
  const typedDtype = dtype as SafetensorsDtype;
  const expectedBytes = elementCount(shape) * DTYPE_BYTES[typedDtype];
  if (end - begin !== expectedBytes) {
    throw new InputError(
      path,
      field,
      `data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${typedDtype} ${formatShape(shape)} needs ${expectedBytes}`,
    );
  }
  return { dtype: typedDtype, shape, byteLength: expectedBytes, begin };
}

function isNonNegativeInteger(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function readShape(value: unknown, path: string, field: string): number[] {
  if (!Array.isArray(value) || !value.every(isNonNegativeInteger)) {
    throw new InputError(path, field, `shape must be a list of non-negative integers, got ${JSON.stringify(value)}`);
  }
  if (!Number.isSafeInteger(elementCount(value)))
    throw new InputError(path, field, `shape ${formatShape(value)} has too many elements`);
  return [...value];
}

/** Every tensor must lie inside the data section, and no two may share bytes. */
function checkDataRanges(entries: ReadonlyMap<string, TensorEntry>, path: string, dataBytes: number): void {
  let last: { name: string; end: number } | undefined;
  for (const [name, entry] of entries) {
    const end = entry.begin + entry.byteLength;
    if (!last || end > last.end) last = { name, end };
  }
  if (last && last.end > dataBytes) {
    throw new InputError(
      path,
      undefined,
      `truncated: header says ${last.end} bytes of data but the file has ${dataBytes} (tensor ${last.name} ends at byte ${last.end})`,
    );
  }
  const byBegin = [...entries].filter(([, e]) => e.byteLength > 0).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < byBegin.length; i++) {
    const [previousName, previous] = byBegin[i - 1]!;
    const [name, entry] = byBegin[i]!;
    if (entry.begin < previous.begin + previous.byteLength) {
      throw new InputError(
        path,
        `tensor ${name}`,
        `data_offsets overlap tensor ${previousName} (bytes ${entry.begin} to ${previous.begin + previous.byteLength})`,
      );
    }
  }
}

/**
 * The buffer conversions read file bytes into, reused: a fresh one per read would be zero-filled and
 * page-faulted every time (and page faults of threads in one process contend for its memory map).
 * Each thread has its own (module state is per thread).
 */
let conversionBuffer = new Uint8Array(0);
function conversionChunk(bytes: number): Uint8Array {
  if (conversionBuffer.length < bytes) conversionBuffer = new Uint8Array(Math.max(bytes, 2 ** 20));
  return conversionBuffer.subarray(0, bytes);
}

/** Reads `length` bytes at `position`, looping because one call may return fewer; a short file is an error. */
function readExactly(fd: number, path: string, position: number, length: number, into?: Uint8Array): Uint8Array {
  const target = into ?? new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const got = readSync(fd, target, done, Math.min(length - done, MAX_SYSCALL_BYTES), position + done);
    if (got === 0)
      throw new InputError(
        path,
        undefined,
        `truncated: expected ${length} bytes at offset ${position}, the file ends after ${done}`,
      );
    done += got;
  }
  return target;
}

class OpenSafetensorsFile implements SafetensorsFile {
  private fd: number | undefined;

  constructor(
    readonly path: string,
    fd: number,
    private readonly dataStart: number,
    private readonly entries: ReadonlyMap<string, TensorEntry>,
    private readonly meta: Record<string, string>,
  ) {
    this.fd = fd;
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo {
    const { dtype, shape, byteLength } = this.entry(name);
    return { dtype, shape, byteLength };
  }

  metadata(): Record<string, string> {
    return { ...this.meta };
  }

  readRaw(name: string, dst?: Uint8Array): Uint8Array {
    const entry = this.entry(name);
    if (dst && dst.byteLength < entry.byteLength)
      throw new RangeError(
        `readRaw(${name}): destination holds ${dst.byteLength} bytes, the tensor has ${entry.byteLength}`,
      );
    const into = dst?.subarray(0, entry.byteLength);
    return readExactly(this.openFd(), this.path, this.dataStart + entry.begin, entry.byteLength, into);
  }

  readFloat32(name: string, dst?: Float32Array): Float32Array {
    const entry = this.floatEntry(name);
    const count = entry.byteLength / DTYPE_BYTES[entry.dtype];
    const out = dst ?? new Float32Array(count);
    if (out.length < count)
      throw new RangeError(`readFloat32(${name}): destination holds ${out.length} values, the tensor has ${count}`);
    this.readValues(entry, 0, out.subarray(0, count));
    return out;
  }

  readFloat32Range(name: string, firstValue: number, dst: Float32Array): Float32Array {
    const entry = this.floatEntry(name);
    const count = entry.byteLength / DTYPE_BYTES[entry.dtype];
    if (!Number.isSafeInteger(firstValue) || firstValue < 0 || firstValue + dst.length > count)
      throw new RangeError(
        `readFloat32Range(${name}): values ${firstValue} to ${firstValue + dst.length} are outside the tensor's ${count}`,
      );
    this.readValues(entry, firstValue, dst);
    return dst;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private floatEntry(name: string): TensorEntry {
    const entry = this.entry(name);
    if (!FLOAT_DTYPES.includes(entry.dtype)) {
      throw new InputError(
        this.path,
        `tensor ${name}`,
        `dtype ${entry.dtype} is not a floating-point type (expected ${FLOAT_DTYPES.join(", ")})`,
      );
    }
    return entry;
  }

  /** Values [firstValue, firstValue + out.length) of a float tensor into `out` as fp32. */
  private readValues(entry: TensorEntry, firstValue: number, out: Float32Array): void {
    const fd = this.openFd();
    const elementBytes = DTYPE_BYTES[entry.dtype];
    const position = this.dataStart + entry.begin + firstValue * elementBytes;
    const byteLength = out.length * elementBytes;
    if (entry.dtype === "F32") {
      // Same bytes: read straight into the destination.
      readExactly(fd, this.path, position, byteLength, new Uint8Array(out.buffer, out.byteOffset, byteLength));
      return;
    }
    this.readConverted(fd, entry, position, byteLength, out);
  }

  /** Reads `byteLength` bytes of a 2- or 8-byte dtype in chunks, converting each into its place in `out`. */
  private readConverted(fd: number, entry: TensorEntry, position: number, byteLength: number, out: Float32Array): void {
    const elementBytes = DTYPE_BYTES[entry.dtype];
    const chunk = conversionChunk(Math.min(IO_CHUNK_BYTES, byteLength));
    for (let offset = 0; offset < byteLength; offset += chunk.length) {
      const bytes = Math.min(chunk.length, byteLength - offset);
      readExactly(fd, this.path, position + offset, bytes, chunk);
      const first = offset / elementBytes;
      const count = bytes / elementBytes;
      const target = out.subarray(first, first + count);
      if (entry.dtype === "F16") fromFloat16Array(new Uint16Array(chunk.buffer, 0, count), target);
      else if (entry.dtype === "BF16") fromBfloat16Array(new Uint16Array(chunk.buffer, 0, count), target);
      else target.set(new Float64Array(chunk.buffer, 0, count));
    }
  }

  private entry(name: string): TensorEntry {
    const entry = this.entries.get(name);
    if (!entry) throw new InputError(this.path, `tensor ${name}`, "not in this file");
    return entry;
  }

  private openFd(): number {
    if (this.fd === undefined) throw new Error(`${this.path}: read after close()`);
    return this.fd;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

export type WritableDtype = "F16" | "F32";
export type TensorData = Uint16Array | Float32Array;

export interface TensorToWrite {
  readonly name: string;
  readonly dtype: WritableDtype;
  readonly shape: readonly number[];
  /**
   * The values in row-major order: F16 as fp16 bits (Uint16Array) or as fp32 values to round
   * (Float32Array); F32 as a Float32Array. Either the whole tensor, or a function that yields it in
   * consecutive chunks, so a tensor never has to exist in memory at once. Each chunk is written before
   * the next is asked for, so a generator may reuse one buffer.
   */
  readonly data: TensorData | (() => Iterable<TensorData>);
}

export interface TensorLayout {
  readonly name: string;
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsLayout {
  /** The header JSON, space-padded to a multiple of 8 bytes so the data section starts aligned. */
  readonly header: Buffer;
  readonly tensors: readonly TensorLayout[];
  readonly dataBytes: number;
  readonly fileBytes: number;
}

/** Where every tensor goes and how big the file will be, without writing anything. */
export function safetensorsLayout(
  tensors: readonly Pick<TensorToWrite, "name" | "dtype" | "shape">[],
  metadata?: Record<string, string>,
): SafetensorsLayout {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header[METADATA_KEY] = metadata;
  const layout: TensorLayout[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (t.name === METADATA_KEY || Object.hasOwn(header, t.name))
      throw new Error(`safetensors: tensor name ${JSON.stringify(t.name)} is reserved or repeated`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw new Error(`safetensors: tensor ${t.name} has an invalid shape ${formatShape(t.shape)}`);
    const bytes = elementCount(t.shape) * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    layout.push({ name: t.name, begin: offset, end: offset + bytes });
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const padded = Buffer.alloc(Math.ceil(json.length / 8) * 8, " ");
  json.copy(padded);
  return {
    header: padded,
    tensors: layout,
    dataBytes: offset,
    fileBytes: HEADER_LENGTH_BYTES + padded.length + offset,
  };
}

/**
 * Writes a safetensors file: into a temporary file beside `path`, tensor by tensor, synced and then
 * renamed over `path`. On any failure the temporary file is removed and `path` is left as it was.
 * Returns the file's size in bytes.
 */
export function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): number {
  checkLittleEndianHost();
  const layout = safetensorsLayout(tensors, metadata);
  // Like writeFileAtomic, streamed: the target must be absent or a regular file, the temporary is
  // unpredictably named and created exclusively (never through a planted link), and removed on a signal.
  const { mode } = checkOutputPath(path);
  removeStaleTemporaries(path);
  const temporary = temporaryPathFor(path);
  const forget = removeOnSignal(temporary);
  let fd: number | undefined;
  try {
    fd = openTemporaryExclusively(temporary, mode);
    const lengthField = Buffer.alloc(HEADER_LENGTH_BYTES);
    lengthField.writeBigUInt64LE(BigInt(layout.header.length));
    writeAll(fd, lengthField);
    writeAll(fd, layout.header);
    for (const tensor of tensors) writeTensorData(fd, tensor);
    // Data on disk before the rename publishes the name, so a crash cannot expose a file of zeros.
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temporary, path);
    return layout.fileBytes;
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    rmSync(temporary, { force: true });
    if (error instanceof InputError || !(error as NodeJS.ErrnoException).code) throw error;
    throw new InputError(path, undefined, `cannot write: ${(error as Error).message}`);
  } finally {
    forget();
  }
}

function writeTensorData(fd: number, tensor: TensorToWrite): void {
  const expectedValues = elementCount(tensor.shape);
  let writtenValues = 0;
  const chunks = typeof tensor.data === "function" ? tensor.data() : [tensor.data];
  for (const chunk of chunks) {
    writtenValues += chunk.length;
    if (writtenValues > expectedValues) break;
    writeChunk(fd, tensor, chunk);
  }
  if (writtenValues !== expectedValues) {
    throw new Error(
      `safetensors: tensor ${tensor.name} ${formatShape(tensor.shape)} needs ${expectedValues} values, its data has ${writtenValues > expectedValues ? "more" : writtenValues}`,
    );
  }
}

function writeChunk(fd: number, tensor: TensorToWrite, chunk: TensorData): void {
  if (tensor.dtype === "F32" && !(chunk instanceof Float32Array)) {
    throw new Error(`safetensors: tensor ${tensor.name} is F32, its data must be a Float32Array`);
  }
  if (tensor.dtype === "F32" || chunk instanceof Uint16Array) {
    writeAll(fd, new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    return;
  }
  // fp32 values for an F16 tensor: round piece by piece, so no fp16 copy of the whole tensor is made.
  const pieceValues = IO_CHUNK_BYTES / 2;
  const encoded = new Uint16Array(Math.min(pieceValues, chunk.length));
  for (let first = 0; first < chunk.length; first += pieceValues) {
    const piece = chunk.subarray(first, Math.min(first + pieceValues, chunk.length));
    toFloat16Array(piece, encoded);
    writeAll(fd, new Uint8Array(encoded.buffer, 0, piece.length * 2));
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    done += writeSync(fd, bytes, done, Math.min(bytes.length - done, MAX_SYSCALL_BYTES));
  }
}
