/** Offload-file I/O into and out of pinned buffers, on libuv's thread pool (the CUDA backend's disk tier). */
import { open } from "node:fs/promises";

/** Reads whole offload files into pinned buffers on libuv's thread pool; resolves when all are in. */
export async function readFiles(
  reads: { path: string; position: number; bytes: number; dst: Uint8Array }[],
): Promise<void> {
  await Promise.all(
    reads.map(async (r) => {
      const handle = await open(r.path, "r");
      try {
        let done = 0;
        while (done < r.bytes) {
          const { bytesRead } = await handle.read(r.dst, done, r.bytes - done, r.position + done);
          if (bytesRead === 0) throw new Error(`offload file ${r.path} ended after ${done} of ${r.bytes} bytes`);
          done += bytesRead;
        }
      } finally {
        await handle.close();
      }
    }),
  );
}

/** Writes pinned buffers to offload files (DiskStore targets) on libuv's thread pool; resolves when all are out. */
export async function writeFiles(
  writes: { path: string; position: number; truncate: boolean; src: Uint8Array }[],
): Promise<void> {
  await Promise.all(
    writes.map(async (w) => {
      const handle = await open(w.path, w.truncate ? "w" : "r+");
      try {
        let done = 0;
        while (done < w.src.byteLength) {
          const { bytesWritten } = await handle.write(w.src, done, w.src.byteLength - done, w.position + done);
          done += bytesWritten;
        }
      } finally {
        await handle.close();
      }
    }),
  );
}
