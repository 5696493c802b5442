import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { type FinishedTransfer, sharedBytes, TransferEngine, TransferError } from "../../runtime/transfer-engine.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-transfers-"));
after(() => rmSync(dir, { recursive: true, force: true }));

for (const threads of [true, false]) {
  const mode = threads ? "worker threads" : "inline";

  test(`transfer engine (${mode}): a disk write, a read that depends on it, and a copy that depends on the read move the bytes in order`, async () => {
    // The order shows in the bytes, not in timestamps: the file holds other bytes until the write, and
    // the staging and device buffers start as zeros, so a read that ran before the write (or a copy that
    // ran before the read) leaves the device different from the source.
    const finished: FinishedTransfer<string>[] = [];
    const engine = await TransferEngine.start<string>(threads, (t) => finished.push(t));
    try {
      const path = join(dir, `chain-${threads}.bin`);
      const source = sharedBytes(1 << 20);
      for (let i = 0; i < source.length; i++) source[i] = (i * 31) & 255;
      writeFileSync(path, new Uint8Array(source.length).fill(0xa5));
      const staging = sharedBytes(source.length);
      const device = sharedBytes(source.length);
      const write = engine.submit(
        "diskWrite",
        [{ type: "write", path, position: 0, src: source, truncate: true }],
        [],
        "write",
      );
      const read = engine.submit("diskRead", [{ type: "read", path, position: 0, dst: staging }], [write], "read");
      const copy = engine.submit("h2d", [{ type: "copy", src: staging, dst: device }], [read], "copy");
      engine.wait(copy);
      assert.deepEqual(device, source);
      engine.drain();
      assert.deepEqual(staging, source);
      assert.deepEqual(finished.map((t) => t.meta).sort(), ["copy", "read", "write"]);
      for (const t of finished) assert.equal(t.bytes, source.length, t.meta);
      assert.equal(
        engine.submit("h2d", [{ type: "copy", src: new Uint8Array(0), dst: sharedBytes(0) }], [], "nothing"),
        0,
        "an empty transfer is no transfer",
      );
    } finally {
      await engine.close();
    }
  });

  test(`transfer engine (${mode}): a copy run now, on the calling thread, follows the copies submitted before it on its stream`, async () => {
    const finished: FinishedTransfer<string>[] = [];
    const engine = await TransferEngine.start<string>(threads, (t) => finished.push(t));
    try {
      // Two copies into one buffer: the earlier (submitted) one must land first, so the buffer ends
      // with the later (run now) one's bytes, and both are reported.
      const size = 1 << 22;
      const first = sharedBytes(size).fill(1);
      const second = sharedBytes(size).fill(2);
      const device = sharedBytes(size);
      engine.submit("h2d", [{ type: "copy", src: first, dst: device }], [], "submitted");
      engine.runNow("h2d", [{ type: "copy", src: second, dst: device }], "now");
      assert.ok(
        device.every((b) => b === 2),
        "the copy run now came after the submitted one",
      );
      assert.deepEqual(
        finished.map((t) => t.meta),
        ["submitted", "now"],
        "both reported, in stream order, by the time runNow returns",
      );
      assert.equal(finished[1]!.bytes, size);
      engine.runNow("h2d", [{ type: "copy", src: new Uint8Array(0), dst: sharedBytes(0) }], "nothing");
      assert.equal(finished.length, 2, "an empty copy is nothing");
    } finally {
      await engine.close();
    }
  });

  test(`transfer engine (${mode}): a failed transfer is an error naming the file, and so is one that waited on it`, async () => {
    const engine = await TransferEngine.start<string>(threads, () => undefined);
    try {
      const missing = join(dir, "no-such-file.bin");
      let read = 0;
      const submitAndWait = () => {
        read = engine.submit(
          "diskRead",
          [{ type: "read", path: missing, position: 0, dst: sharedBytes(16) }],
          [],
          "read",
        );
        engine.wait(read);
      };
      if (threads) {
        assert.throws(
          submitAndWait,
          (e: Error) => e instanceof TransferError && e.message.includes("no-such-file.bin"),
        );
        const copy = engine.submit("h2d", [{ type: "copy", src: sharedBytes(8), dst: sharedBytes(8) }], [read], "copy");
        assert.throws(() => engine.wait(copy), TransferError);
      } else assert.throws(submitAndWait, /no-such-file\.bin/);
    } finally {
      await engine.close();
    }
  });
}

test("transfer engine (worker threads): memory a worker writes must be shared", async () => {
  const engine = await TransferEngine.start<string>(true, () => undefined);
  try {
    assert.throws(
      () => engine.submit("h2d", [{ type: "copy", src: sharedBytes(8), dst: new Uint8Array(8) }], [], "copy"),
      /not shared memory/,
    );
  } finally {
    await engine.close();
  }
});
