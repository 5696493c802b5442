/** csv-parse's own errors (an unterminated quote, a bad record) name the file and the line: FILE:LINE: ... */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { csvInputError } from "../../core/csv-input-error.js";
import { InputError } from "../../core/input-error.js";
import { parseRunsCsv } from "../../engines/measured-runs.js";
import { parseRoutingCsv } from "../../routing/routing-csv.js";
import { samplesFromCsv } from "../../runtime/profile-cpu.js";
import { CliWorker } from "../fuzz/cli-worker.js";

const ROUTING =
  "# spillway-routing-trace model=mixtral-8x7b num_layers=32 num_experts=8 experts_per_token=2\n" +
  "request,token,phase,layer,rank,expert,gate_weight\n" +
  "0,0,decode,0,0,0,0.6\n";

test("a routing CSV with an unterminated quote: FILE:LINE: not valid CSV", () => {
  assert.throws(
    () => parseRoutingCsv(`${ROUTING}"0,0,decode,0,1,1,0.4\n`, "t.csv"),
    (e: unknown) => e instanceof InputError && /^t\.csv:4: not valid CSV: Quote Not Closed/.test(e.message),
  );
  // The record callback's own errors keep their wording.
  assert.throws(
    () => parseRoutingCsv(`${ROUTING}0,0,decode,0,1,9,0.4\n`, "t.csv"),
    (e: unknown) => e instanceof InputError && /^t\.csv: line 4, column expert/.test(e.message),
  );
});

test("runs and samples CSVs: csv-parse errors name the file and the line", () => {
  const header = "engine,model,flags,prompt_len,gen_len,tokens_per_second\n";
  assert.throws(
    () => parseRunsCsv(`${header}spillway,opt-1.3b,"--gbs 8,128,16,900\n`, "runs.csv"),
    (e: unknown) => e instanceof InputError && /^runs\.csv:2: not valid CSV: /.test(e.message),
  );
  assert.throws(
    () => samplesFromCsv('measurement,size,shape,seconds\nh2d,1,"x"y,1\n', "s.csv"),
    (e: unknown) => e instanceof InputError && /^s\.csv:2: not valid CSV: /.test(e.message),
  );
});

test("csvInputError: one line; an error without a line names the file", () => {
  const withLine = Object.assign(new Error("Bad\nthing"), { lines: 7 });
  assert.equal(csvInputError(withLine, "f.csv").message, "f.csv:7: not valid CSV: Bad; thing");
  assert.equal(csvInputError(new Error("odd"), "f.csv").message, "f.csv: not valid CSV: odd");
  const own = new InputError("f.csv", "line 2", "kept");
  assert.equal(csvInputError(own, "f.csv"), own);
});

test("profile --from-samples with an empty or header-only file is refused (it does not measure this machine)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "spillway-samples-"));
  const worker = new CliWorker(20_000);
  after(() => {
    worker.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const [name, text] of [
    ["empty.csv", ""],
    ["header.csv", "measurement,size,shape,seconds\n"],
  ] as const) {
    const path = join(dir, name);
    writeFileSync(path, text);
    const result = await worker.run(["profile", "--from-samples", path, "--out", join(dir, "p.json"), "--quiet"]);
    assert.equal(result.status, 2, `${name}: ${result.stderr}`);
    assert.match(
      result.stderr,
      new RegExp(`^spillway: ${path.replaceAll(".", "\\.")}: no samples; expected the header`),
    );
  }
});
