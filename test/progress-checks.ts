import assert from "node:assert/strict";
import type { Progress } from "../core/progress.js";

/**
 * Checks the reports a library call made through onProgress: phases in `phases` order, each starting
 * at 0, never going back, never past its total, and ending at its total.
 */
export function assertProgressPhases(reports: readonly Progress[], phases: readonly string[]): void {
  const seen: string[] = [];
  for (const [i, p] of reports.entries()) {
    const previous = reports[i - 1];
    if (previous?.phase !== p.phase) {
      seen.push(p.phase);
      assert.equal(p.done, 0, `${p.phase} starts at 0`);
      if (previous) assert.equal(previous.done, previous.total, `${previous.phase} ends at its total`);
    } else {
      assert.ok(p.done >= previous.done, `${p.phase} goes forward: ${previous.done} then ${p.done}`);
      assert.equal(p.total, previous.total, `${p.phase} keeps its total`);
    }
    assert.ok(p.total >= 1 && p.done <= p.total, `${p.phase}: ${p.done} of ${p.total}`);
  }
  assert.deepEqual(seen, phases);
  const last = reports.at(-1);
  if (last) assert.equal(last.done, last.total, `${last.phase} ends at its total`);
}
