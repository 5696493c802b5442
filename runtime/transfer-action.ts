/**
 * The work of one transfer on the CPU backend: copies between memory views (host ↔ device arena) and
 * positioned file reads and writes (the disk tier). A transfer is a list of actions done in order and
 * timed as one task. The same function runs inline on the main thread (no overlap) and in the
 * transfer workers (overlap), so both modes move exactly the same bytes.
 */
import { closeSync, openSync, readSync, writeSync } from "node:fs";

export type TransferAction =
  | { readonly type: "copy"; readonly src: Uint8Array; readonly dst: Uint8Array }
  | { readonly type: "read"; readonly path: string; readonly position: number; readonly dst: Uint8Array }
  | {
      readonly type: "write";
      readonly path: string;
      readonly position: number;
      readonly src: Uint8Array;
      readonly truncate: boolean;
    };

export function actionBytes(action: TransferAction): number {
  return action.type === "write" ? action.src.byteLength : action.dst.byteLength;
}

export function executeTransferActions(actions: readonly TransferAction[]): void {
  for (const action of actions) {
    if (action.type === "copy") action.dst.set(action.src);
    else if (action.type === "read") {
      const fd = openSync(action.path, "r");
      try {
        const { dst } = action;
        let done = 0;
        while (done < dst.byteLength) {
          const n = readSync(fd, dst, done, dst.byteLength - done, action.position + done);
          if (n === 0) throw new Error(`offload file ${action.path} ended after ${done} of ${dst.byteLength} bytes`);
          done += n;
        }
      } finally {
        closeSync(fd);
      }
    } else {
      const fd = openSync(action.path, action.truncate ? "w" : "r+");
      try {
        const { src } = action;
        let done = 0;
        while (done < src.byteLength) done += writeSync(fd, src, done, src.byteLength - done, action.position + done);
      } finally {
        closeSync(fd);
      }
    }
  }
}
