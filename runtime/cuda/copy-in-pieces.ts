/**
 * A host-to-device copy issued as several copies of at most `pieceBytes` each (undefined: one copy), in
 * order on one stream, so that a copy queued on another stream waits for one piece at most
 * (core/weight-copy-chunk.ts).
 */
import type { CudaNative } from "./native-api.js";

export function copyInPieces(
  native: Pick<CudaNative, "memcpyHtoD">,
  dst: number,
  src: Uint8Array,
  stream: number,
  pieceBytes: number | undefined,
): void {
  const piece = pieceBytes ?? src.byteLength;
  if (!(piece > 0)) {
    native.memcpyHtoD(dst, src, stream);
    return;
  }
  for (let from = 0; from < src.byteLength; from += piece)
    native.memcpyHtoD(dst + from, src.subarray(from, Math.min(from + piece, src.byteLength)), stream);
}
