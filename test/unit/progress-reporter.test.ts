import assert from "node:assert/strict";
import { test } from "node:test";
import { BarProgressReporter } from "../../cli/bar-progress-reporter.js";
import { progressListener, progressReporter, withProgress, withProgressSync } from "../../cli/command-progress.js";
import { DelayedProgressReporter } from "../../cli/delayed-progress-reporter.js";
import { PlainProgressReporter } from "../../cli/plain-progress-reporter.js";
import type { Progress } from "../../core/progress.js";

/** A stream that keeps what is written, and a clock the test moves. */
function fakes(isTTY = false) {
  const written: string[] = [];
  let seconds = 0;
  return {
    stream: { isTTY, write: (text: string) => written.push(text) },
    written,
    nowSeconds: () => seconds,
    advance: (by: number) => {
      seconds += by;
    },
  };
}

/** The percent each plain line shows ("run: 40% (4/10), …"). */
function percents(lines: readonly string[]): number[] {
  return lines.map((line) => {
    const m = /^[\w-]+: (\d+)% \(/.exec(line);
    assert.ok(m, `a progress line: ${JSON.stringify(line)}`);
    return Number(m[1]);
  });
}

test("plain progress: whole lines, at most one per 10% however many updates, monotone, from 0% to 100%", () => {
  const f = fakes();
  const reporter = new PlainProgressReporter(f.stream, { nowSeconds: f.nowSeconds });
  reporter.start(100_000, "run");
  for (let done = 0; done <= 100_000; done++) reporter.update(done, `step ${done}`);
  reporter.stop();
  assert.ok(f.written.every((line) => line.endsWith("\n") && line.indexOf("\n") === line.length - 1));
  assert.deepEqual(percents(f.written), [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
  assert.equal(f.written[0], "run: 0% (0/100000), step 0\n");
  assert.equal(f.written.at(-1), "run: 100% (100000/100000), step 100000\n");
});

test("plain progress: between 10% steps a line at most every 5 s while the count moves; going back is ignored", () => {
  const f = fakes();
  const reporter = new PlainProgressReporter(f.stream, { nowSeconds: f.nowSeconds });
  reporter.start(1000, "search");
  // 1000 s of work, an update a second: 11 step lines plus at most one per 5 s.
  for (let done = 0; done <= 1000; done++) {
    reporter.update(done);
    reporter.update(done - 1); // never printed: behind what was shown
    f.advance(1);
  }
  const shown = percents(f.written);
  assert.ok(shown.length <= 11 + 1000 / 5, `${shown.length} lines`);
  assert.ok(shown.length > 11, "the interval lines appear on slow work");
  for (let i = 1; i < shown.length; i++) assert.ok(shown[i]! >= shown[i - 1]!, `monotone at line ${i}`);
  // A count that stands still prints nothing more, however long it stands.
  const before = f.written.length;
  const stuck = new PlainProgressReporter(f.stream, { nowSeconds: f.nowSeconds });
  stuck.start(10, "stuck");
  stuck.update(3);
  for (let i = 0; i < 100; i++) {
    f.advance(10);
    stuck.update(3);
  }
  assert.equal(f.written.length - before, 1);
});

test("plain progress in bytes reads as sizes; a count past its total shows 100%", () => {
  const f = fakes();
  const reporter = new PlainProgressReporter(f.stream, { nowSeconds: f.nowSeconds });
  reporter.start(2 * 2 ** 20, "synth-weights", "bytes");
  reporter.update(2 ** 20, "fc1.weight");
  reporter.update(3 * 2 ** 20);
  assert.deepEqual(f.written, [
    "synth-weights: 50% (1.0 MiB of 2.0 MiB), fc1.weight\n",
    "synth-weights: 100% (2.0 MiB of 2.0 MiB)\n",
  ]);
});

test("--quiet prints nothing, on a terminal or not", async () => {
  for (const isTTY of [false, true]) {
    const f = fakes(isTTY);
    const listener = progressListener(progressReporter({ quiet: true, stream: f.stream, env: {} }));
    for (let done = 0; done <= 10; done++) listener({ phase: "run", done, total: 10 });
    withProgressSync({ quiet: true, stream: f.stream, env: {} }, (onProgress) =>
      onProgress({ phase: "simulate", done: 1, total: 1 }),
    );
    await withProgress({ quiet: true, stream: f.stream, env: {} }, async (onProgress) =>
      onProgress({ phase: "search", done: 1, total: 1 }),
    );
    assert.deepEqual(f.written, []);
  }
});

test("a redrawing bar only on a terminal that allows one: not under NO_COLOR, TERM=dumb, or a pipe", () => {
  const kind = (isTTY: boolean, env: NodeJS.ProcessEnv) =>
    progressReporter({ quiet: false, stream: fakes(isTTY).stream, env }).constructor;
  assert.equal(kind(true, { TERM: "xterm-256color" }), BarProgressReporter);
  assert.equal(kind(true, { NO_COLOR: "" }), BarProgressReporter, "an empty NO_COLOR does not opt out");
  assert.equal(kind(true, { NO_COLOR: "1" }), PlainProgressReporter);
  assert.equal(kind(true, { TERM: "dumb" }), PlainProgressReporter);
  assert.equal(kind(false, {}), PlainProgressReporter);
  assert.equal(
    progressReporter({ quiet: false, stream: fakes(true).stream, env: {}, delaySeconds: 1 }).constructor,
    DelayedProgressReporter,
  );
});

test("the bar draws on its stream and is finished by stop()", () => {
  const written: string[] = [];
  const stream = {
    isTTY: true,
    columns: 80,
    write: (text: string) => {
      written.push(text);
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  const bar = new BarProgressReporter(stream);
  bar.start(4, "run");
  bar.update(4, "token 2/2");
  bar.stop();
  bar.stop();
  const text = written.join("");
  assert.match(text, /run \[/);
  assert.match(text, /100% 4\/4 token 2\/2/);
  assert.ok(text.endsWith("\n"), "a finished bar ends its line");
});

test("a delayed reporter shows a phase only once it has lasted the delay", () => {
  const f = fakes();
  const reporter = new DelayedProgressReporter(
    new PlainProgressReporter(f.stream, { nowSeconds: f.nowSeconds }),
    1.5,
    f.nowSeconds,
  );
  // A quick phase: all of it within the delay, nothing shown.
  reporter.start(10, "search");
  for (let done = 0; done <= 10; done++) reporter.update(done);
  reporter.stop();
  assert.deepEqual(f.written, []);
  // A slow one: shown from the first update after the delay.
  reporter.start(10, "simulate");
  reporter.update(0);
  f.advance(1);
  reporter.update(1);
  f.advance(1);
  reporter.update(2);
  reporter.update(5);
  reporter.stop();
  assert.deepEqual(percents(f.written), [20, 50]);
});

test("the listener starts a new count for each phase the library reports", () => {
  const f = fakes();
  const listener = progressListener(new PlainProgressReporter(f.stream, { nowSeconds: f.nowSeconds }));
  const reports: Progress[] = [
    { phase: "simulate", done: 0, total: 2 },
    { phase: "simulate", done: 2, total: 2 },
    { phase: "run", done: 0, total: 4, detail: "start" },
    { phase: "run", done: 4, total: 4 },
  ];
  for (const p of reports) listener(p);
  assert.deepEqual(f.written, [
    "simulate: 0% (0/2)\n",
    "simulate: 100% (2/2)\n",
    "run: 0% (0/4), start\n",
    "run: 100% (4/4)\n",
  ]);
});
