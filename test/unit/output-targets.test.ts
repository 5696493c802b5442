/**
 * Every writer of an output refuses what is not a plain file before it writes anything: the streamed
 * Chrome trace (simulate/run --trace), safetensors checkpoints (synth-weights), output folders
 * (synth-weights, report) and a file whose folder does not exist (checked before the work starts).
 */
import assert from "node:assert/strict";
import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { checkOutputFolder } from "../../core/check-output-folder.js";
import { InputError } from "../../core/input-error.js";
import { checkOutputPath } from "../../core/write-file-atomic.js";
import { DiskStore } from "../../runtime/disk-store.js";
import { writeSafetensors } from "../../runtime/safetensors.js";
import { FileTraceSink } from "../../simulator/file-trace-sink.js";
import { makeBadOutputTargets } from "../bad-output-targets.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-output-targets-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const { precious, folder, targets, assertUntouched: assertTargetsUntouched } = makeBadOutputTargets(dir);
const inputError = (message: RegExp) => (e: unknown) => e instanceof InputError && message.test(e.message);

function assertUntouched(): void {
  assertTargetsUntouched();
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes("tmp")),
    [],
    "no temporary file left",
  );
}

for (const target of targets) {
  test(`a trace file sink onto ${target.name} is refused when opened, before any work`, () => {
    const sink = new FileTraceSink(target.path);
    assert.throws(() => sink.open(), inputError(target.expect));
    sink.abort();
    assertUntouched();
  });

  test(`a safetensors checkpoint onto ${target.name} is refused`, () => {
    const tensor = { name: "w", dtype: "F32" as const, shape: [2], data: new Float32Array([1, 2]) };
    assert.throws(() => writeSafetensors(target.path, [tensor]), inputError(target.expect));
    assertUntouched();
  });
}

test("a file output whose folder does not exist is refused by checkOutputPath (before the work starts)", () => {
  assert.throws(() => checkOutputPath(join(dir, "missing", "p.json")), inputError(/is not an existing folder/));
  assert.throws(() => checkOutputPath(join(precious, "p.json")), inputError(/precious\.txt is not an existing folder/));
  assert.deepEqual(checkOutputPath(join(dir, "new.json")), { mode: undefined });
});

test("a trace file keeps the permission bits of the file it replaces", () => {
  const path = join(dir, "t.json");
  writeFileSync(path, "old");
  chmodSync(path, 0o600);
  const sink = new FileTraceSink(path).open();
  sink.memory(0, "gpu", 1);
  sink.close();
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.match(readFileSync(path, "utf8"), /traceEvents/);
  rmSync(path);
});

test("a safetensors temporary planted as a link at the old predictable name is not followed", () => {
  const path = join(dir, "model.safetensors");
  const planted = join(dir, `.model.safetensors.tmp-${process.pid}`);
  symlinkSync(precious, planted);
  const tensor = { name: "w", dtype: "F32" as const, shape: [2], data: new Float32Array([1, 2]) };
  writeSafetensors(path, [tensor]);
  assert.equal(readFileSync(precious, "utf8"), "keep me\n");
  assert.ok(statSync(path).size > 8);
  rmSync(planted);
  rmSync(path);
});

test("an output folder that is a link or not a folder is refused; an existing folder or a new name is fine", () => {
  const dirLink = join(dir, "folder-link");
  symlinkSync(folder, dirLink);
  assert.throws(
    () => checkOutputFolder(dirLink, "the checkpoint is written into"),
    inputError(/folder-link: is a symbolic link; --out names the folder the checkpoint is written into/),
  );
  assert.throws(() => checkOutputFolder(precious, "the report is written into"), inputError(/is not a folder/));
  assert.throws(() => checkOutputFolder("", "x"), inputError(/--out: expected a folder name/));
  assert.equal(checkOutputFolder(folder, "x"), true);
  assert.equal(checkOutputFolder(join(dir, "new-folder"), "x"), false);
  rmSync(dirLink);
});

test("the disk tier's offload folder under a parent that is not a folder is an InputError naming the parent", () => {
  assert.throws(
    () => new DiskStore(precious),
    inputError(/precious\.txt: cannot make the disk tier's offload folder here: ENOTDIR/),
  );
});
