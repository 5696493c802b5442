/**
 * Temporaries of outputs: a recognisable name beside the target, stale ones of the same target (process
 * gone, or over an hour old) removed before the next write, the current one removed on a signal.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  removeStaleTemporaries,
  STALE_TEMPORARY_SECONDS,
  temporaryOwnerPid,
  temporaryPathFor,
} from "../../core/temporary-files.js";
import { writeFileAtomic } from "../../core/write-file-atomic.js";
import { FileTraceSink } from "../../simulator/file-trace-sink.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-temporaries-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The PID of a process that has ended. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(child.stdout);
}

test("temporary names: beside the target, with this process's PID, recognised only for their own target", () => {
  const target = join(dir, "out.json");
  const temporary = temporaryPathFor(target);
  assert.equal(join(temporary, ".."), dir);
  const name = temporary.slice(dir.length + 1);
  assert.match(name, /^\.out\.json\.\d+\.[0-9a-f]{12}\.spillway-tmp$/);
  assert.equal(temporaryOwnerPid(target, name), process.pid);
  assert.equal(temporaryOwnerPid(join(dir, "other.json"), name), undefined);
  assert.equal(temporaryOwnerPid(target, `${name}x`), undefined);
  assert.notEqual(temporaryPathFor(target), temporary, "unpredictable");
});

test("stale temporaries of the target are removed; fresh ones of live processes, other names, links and folders stay", () => {
  const folder = join(dir, "stale");
  mkdirSync(folder);
  const target = join(folder, "plan.json");
  const dead = deadPid();
  const path = (name: string) => join(folder, name);
  const ofDead = path(`.plan.json.${dead}.0123456789ab.spillway-tmp`);
  const ofLive = path(`.plan.json.${process.pid}.0123456789ab.spillway-tmp`);
  const oldOfLive = path(`.plan.json.${process.pid}.ba9876543210.spillway-tmp`);
  const otherTarget = path(`.other.json.${dead}.0123456789ab.spillway-tmp`);
  const nearMiss = path(`.plan.json.${dead}.0123456789ab.spillway-tmp.keep`);
  const link = path(`.plan.json.${dead}.aaaaaaaaaaaa.spillway-tmp`);
  const subfolder = path(`.plan.json.${dead}.bbbbbbbbbbbb.spillway-tmp`);
  for (const file of [ofDead, ofLive, oldOfLive, otherTarget, nearMiss]) writeFileSync(file, "x");
  const old = (Date.now() - (STALE_TEMPORARY_SECONDS + 60) * 1000) / 1000;
  utimesSync(oldOfLive, old, old);
  symlinkSync(ofLive, link);
  mkdirSync(subfolder);
  const removed = removeStaleTemporaries(target);
  assert.deepEqual(removed.sort(), [ofDead, oldOfLive].sort());
  for (const kept of [ofLive, otherTarget, nearMiss, link, subfolder]) assert.ok(existsSync(kept), kept);
});

test("writeFileAtomic and the trace sink remove the temporaries a killed run left", () => {
  const folder = join(dir, "writers");
  mkdirSync(folder);
  const dead = deadPid();
  const left = join(folder, `.out.json.${dead}.0123456789ab.spillway-tmp`);
  writeFileSync(left, "half");
  writeFileAtomic(join(folder, "out.json"), "{}\n");
  assert.deepEqual(readdirSync(folder), ["out.json"]);
  const leftTrace = join(folder, `.t.json.${dead}.0123456789ab.spillway-tmp`);
  writeFileSync(leftTrace, "half");
  const sink = new FileTraceSink(join(folder, "t.json")).open();
  assert.equal(existsSync(leftTrace), false);
  assert.equal(readdirSync(folder).filter((f) => f.endsWith(".spillway-tmp")).length, 1, "the sink's own");
  sink.close();
  assert.deepEqual(readdirSync(folder).sort(), ["out.json", "t.json"]);
});

test("SIGTERM, SIGINT and SIGHUP remove the current temporary and still end the process", async () => {
  const module = fileURLToPath(new URL("../../core/temporary-files.js", import.meta.url));
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    const temporary = join(dir, `signal-${signal}.spillway-tmp`);
    const script = `import { writeFileSync } from "node:fs";
      import { removeOnSignal } from ${JSON.stringify(module)};
      writeFileSync(${JSON.stringify(temporary)}, "half");
      removeOnSignal(${JSON.stringify(temporary)});
      process.stdout.write("ready");
      setTimeout(() => {}, 60000);`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    assert.ok(existsSync(temporary));
    child.kill(signal);
    const [code, got] = (await new Promise((resolve) => child.once("exit", (c, s) => resolve([c, s])))) as [
      number | null,
      string | null,
    ];
    assert.equal(existsSync(temporary), false, `${signal}: the temporary is gone`);
    assert.deepEqual([code, got], [null, signal], `${signal}: the process ends as killed by it`);
  }
});
