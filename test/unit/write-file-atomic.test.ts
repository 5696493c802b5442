/** Outputs are written atomically, never through a link, never over what is not a plain file. */
import assert from "node:assert/strict";
import {
  chmodSync,
  mkdirSync,
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
import { InputError } from "../../core/input-error.js";
import { writeFileAtomic } from "../../core/write-file-atomic.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-write-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("writes the content, replaces a regular file keeping its permissions, and leaves no temporary file", () => {
  const path = join(dir, "out.json");
  writeFileAtomic(path, "one\n");
  assert.equal(readFileSync(path, "utf8"), "one\n");
  chmodSync(path, 0o600);
  writeFileAtomic(path, "two\n");
  assert.equal(readFileSync(path, "utf8"), "two\n");
  assert.equal(statSync(path).mode & 0o777, 0o600, "a 0600 file stays 0600");
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes("tmp")),
    [],
  );
});

test("a symbolic link, a folder or an empty name is refused, and what the link points at is untouched", () => {
  const target = join(dir, "precious.txt");
  writeFileSync(target, "keep me\n");
  const link = join(dir, "link.json");
  symlinkSync(target, link);
  assert.throws(
    () => writeFileAtomic(link, "x"),
    (e: unknown) => e instanceof InputError && /symbolic link/.test(e.message),
  );
  assert.equal(readFileSync(target, "utf8"), "keep me\n");
  // The old predictable temporary name (OUT.tmp-PID) planted as a link is not followed either.
  const out = join(dir, "p.json");
  symlinkSync(target, `${out}.tmp-${process.pid}`);
  writeFileAtomic(out, "plan\n");
  assert.equal(readFileSync(target, "utf8"), "keep me\n");
  assert.equal(readFileSync(out, "utf8"), "plan\n");
  const folder = join(dir, "folder");
  mkdirSync(folder);
  assert.throws(() => writeFileAtomic(folder, "x"), /is a folder; expected a file to write/);
  assert.throws(() => writeFileAtomic("", "x"), /--out: expected a file name, got an empty string/);
});

test("a device is refused, not replaced by a regular file", { skip: process.platform === "win32" }, () => {
  assert.throws(() => writeFileAtomic("/dev/null", "x"), /not a regular file/);
  assert.ok(statSync("/dev/null").isCharacterDevice());
});
