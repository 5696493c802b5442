/**
 * Every input is read through readInputText: only regular files (or "-", standard input), never more
 * than the limit for its kind, a UTF-8 byte order mark dropped. Devices, FIFOs and folders are refused
 * before they are opened, so /dev/zero or a FIFO can neither hang a command nor fill its memory.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { InputError } from "../../core/input-error.js";
import { readPlanFile } from "../../core/parse-plan.js";
import { INPUT_LIMIT_BYTES, readInputText } from "../../core/read-input-file.js";
import { parseJsonText, readJsonFile } from "../../core/read-json-file.js";
import { resolveHardware } from "../../core/resolve-hardware.js";
import { resolveModel } from "../../models/resolve-model.js";
import { readReportInput } from "../../reports/read-report-input.js";
import { readRoutingTrace } from "../../routing/read-routing-trace.js";
import { readMixtralConfig } from "../../runtime/moe/synth-mixtral-weights.js";
import { openSafetensors } from "../../runtime/safetensors.js";

const dir = mkdtempSync(join(tmpdir(), "spillway-read-"));
after(() => rmSync(dir, { recursive: true, force: true }));

let fifo: string | undefined = join(dir, "fifo");
try {
  execFileSync("mkfifo", [fifo]);
} catch {
  fifo = undefined; // no mkfifo here: the devices and the folder cover non-regular files
}

test("devices, FIFOs and folders are refused by every reader, naming the file", () => {
  const folder = join(dir, "folder");
  mkdirSync(folder);
  const readers: [string, (path: string) => unknown][] = [
    ["--model", resolveModel],
    ["--hardware", resolveHardware],
    ["plan", readPlanFile],
    ["routing trace", (p) => readRoutingTrace(p, { format: "csv" })],
    ["report input", readReportInput],
    ["safetensors", openSafetensors],
  ];
  for (const [what, read] of readers)
    for (const path of ["/dev/zero", "/dev/urandom", folder, ...(fifo ? [fifo] : [])])
      assert.throws(
        () => read(path),
        (e: unknown) =>
          e instanceof InputError &&
          e.message.startsWith(`${path}: `) &&
          /not a regular file|is a directory|is not a regular file/.test(e.message),
        `${what} ${path}`,
      );
  assert.throws(() => readInputText(join(dir, "none.json")), /none\.json: no such file/);
});

test("files over the limit for their kind are refused before they are read", () => {
  const big = join(dir, "big.json");
  writeFileSync(big, "");
  truncateSync(big, INPUT_LIMIT_BYTES.document + 1);
  assert.throws(
    () => readJsonFile(big),
    new RegExp(
      `big\\.json: ${INPUT_LIMIT_BYTES.document + 1} bytes; an input file may hold at most ${INPUT_LIMIT_BYTES.document} bytes \\(64 MiB\\)`,
    ),
  );
  assert.throws(() => readInputText(big, { maxBytes: 10, what: "a plan" }), /a plan may hold at most 10 bytes/);
  // Traces have a larger limit: the same file is within it (and is then not valid JSON).
  assert.throws(() => readReportInput(big), /big\.json: not valid JSON/);
});

test("a UTF-8 byte order mark before JSON or CSV is accepted", () => {
  const path = join(dir, "bom.json");
  writeFileSync(path, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a": 1}\n')]));
  assert.deepEqual(readJsonFile(path), { a: 1 });
  assert.deepEqual(parseJsonText('\uFEFF{"b": 2}', "x.json"), { b: 2 });
  assert.equal(readInputText(path).startsWith("{"), true);
  const profile = fileURLToPath(new URL("../../../profiles/rtx3090.json", import.meta.url));
  const withMark = join(dir, "profile.json");
  writeFileSync(withMark, `\uFEFF${readFileSync(profile, "utf8")}`);
  assert.equal(resolveHardware(withMark).name, resolveHardware("rtx3090").name);
});

test("standard input is read with the same limit", () => {
  const module = fileURLToPath(new URL("../../core/read-input-file.js", import.meta.url));
  const script = `import { readInputText } from ${JSON.stringify(module)};
    try { process.stdout.write(readInputText("-", { maxBytes: 16 })); } catch (e) { process.stdout.write("ERR " + e.message); }`;
  const run = (input: string) =>
    spawnSync(process.execPath, ["--input-type=module", "-e", script], { input, encoding: "utf8" }).stdout;
  assert.equal(run("\uFEFFsmall"), "small");
  assert.equal(run("x".repeat(17)), "ERR <stdin>: more than 16 bytes; an input file may hold at most 16 bytes");
});

test("a Mixtral weights folder's config.json is read like any input: errors name the file and field", () => {
  const weights = join(dir, "mixtral");
  mkdirSync(weights);
  writeFileSync(join(weights, "config.json"), '{"model_type": "opt"}');
  assert.throws(
    () => readMixtralConfig(weights),
    (e: unknown) => e instanceof InputError && /config\.json: model_type: expected "mixtral"/.test(e.message),
  );
  writeFileSync(join(weights, "config.json"), '{"model_type": "mixtral", "hidden_size": "64"}');
  assert.throws(
    () => readMixtralConfig(weights),
    (e: unknown) => e instanceof InputError && /config\.json: hidden_size: expected a number/.test(e.message),
  );
});
