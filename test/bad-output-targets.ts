/**
 * Outputs a writer must refuse, made in a test's folder: a link to a precious file, a folder, a pipe
 * (where mkfifo exists) and a file in a missing folder; and the check that none of them was touched.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface BadOutputTargets {
  readonly precious: string;
  readonly link: string;
  readonly folder: string;
  readonly fifo: string | undefined;
  /** Each refused path with the message expected for it. */
  readonly targets: readonly { readonly name: string; readonly path: string; readonly expect: RegExp }[];
  /** Asserts that the link's target, the link, the pipe and the (empty) folder are as they were made. */
  assertUntouched(): void;
}

export function makeBadOutputTargets(dir: string): BadOutputTargets {
  const precious = join(dir, "precious.txt");
  writeFileSync(precious, "keep me\n");
  const link = join(dir, "link.json");
  symlinkSync(precious, link);
  const folder = join(dir, "folder");
  mkdirSync(folder);
  let fifo: string | undefined = join(dir, "fifo");
  try {
    execFileSync("mkfifo", [fifo]);
  } catch {
    fifo = undefined; // no mkfifo here: the other targets still run
  }
  const targets = [
    { name: "a symbolic link", path: link, expect: /link\.json: is a symbolic link/ },
    { name: "a folder", path: folder, expect: /folder: is a folder; expected a file to write/ },
    ...(fifo
      ? [{ name: "a pipe", path: fifo, expect: /fifo: is not a regular file \(a device, pipe or socket\)/ }]
      : []),
    {
      name: "a file in a folder that does not exist",
      path: join(dir, "missing", "o.json"),
      expect: /o\.json: cannot write: .*missing is not an existing folder/,
    },
  ];
  return {
    precious,
    link,
    folder,
    fifo,
    targets,
    assertUntouched() {
      assert.equal(readFileSync(precious, "utf8"), "keep me\n", "the link's target is untouched");
      assert.ok(lstatSync(link).isSymbolicLink(), "the link is still a link");
      if (fifo) assert.ok(lstatSync(fifo).isFIFO(), "the pipe is still a pipe");
      assert.deepEqual(readdirSync(folder), [], "the folder is still empty");
    },
  };
}
