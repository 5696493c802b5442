import assert from "node:assert/strict";
import { test } from "node:test";
import { copyInPieces } from "../../runtime/cuda/copy-in-pieces.js";

/** Records every copy as (device address, bytes copied, stream). */
function recorder() {
  const copies: { dst: number; bytes: number[]; stream: number }[] = [];
  return {
    copies,
    native: {
      memcpyHtoD(dst: number, src: ArrayBufferView, stream: number) {
        copies.push({ dst, bytes: [...new Uint8Array(src.buffer, src.byteOffset, src.byteLength)], stream });
      },
    },
  };
}

test("copyInPieces: pieces of at most the given size, in order, at consecutive addresses, the same bytes", () => {
  const src = Uint8Array.from({ length: 10 }, (_, i) => 100 + i);
  const { copies, native } = recorder();
  copyInPieces(native, 4096, src.subarray(0, 10), 7, 4);
  assert.deepEqual(
    copies.map((c) => [c.dst, c.bytes.length, c.stream]),
    [
      [4096, 4, 7],
      [4100, 4, 7],
      [4104, 2, 7],
    ],
  );
  assert.deepEqual(
    copies.flatMap((c) => c.bytes),
    [...src],
  );
});

test("copyInPieces: one copy without a piece size, or when the source fits one piece", () => {
  const src = new Uint8Array(6).fill(3);
  for (const piece of [undefined, 6, 64]) {
    const { copies, native } = recorder();
    copyInPieces(native, 0, src, 1, piece);
    assert.deepEqual(
      copies.map((c) => c.bytes.length),
      [6],
      `piece ${piece}`,
    );
  }
});
