import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseHardwareProfile } from "../../core/hardware-profile.js";
import { InputError } from "../../core/input-error.js";
import { loadShippedProfile, shippedProfileNames } from "../../core/resolve-hardware.js";
import { resolveRates } from "../../engines/kernel-rates.js";
import {
  COMPOSE_FILE,
  composedProfileFiles,
  composedValidationFiles,
  kernelRateNote,
  PARTS_DIR,
  PROFILES_DIR,
  readCompositionTable,
  unusedParts,
  VALIDATION_DIR,
} from "../../scripts/compose-profiles.js";

test("every committed profile is exactly its composition from parts (npm run profiles), and every part is used", () => {
  const files = composedProfileFiles();
  const committed = readdirSync(PROFILES_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort();
  assert.deepEqual(Object.keys(files).sort(), committed, "a profile without a row in compose.json, or the reverse");
  for (const [name, text] of Object.entries(files))
    assert.equal(
      readFileSync(join(PROFILES_DIR, name), "utf8"),
      text,
      `profiles/${name} is stale: run npm run profiles`,
    );
  assert.deepEqual(unusedParts(), []);
});

test("every validation machine (profiles/validation/) is exactly its composition from parts, parses, and is not shipped", () => {
  const files = composedValidationFiles();
  const committed = readdirSync(VALIDATION_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort();
  assert.deepEqual(Object.keys(files).sort(), committed, "a validation profile without a row in validation.json");
  for (const [name, text] of Object.entries(files)) {
    assert.equal(readFileSync(join(VALIDATION_DIR, name), "utf8"), text, `profiles/validation/${name} is stale`);
    const profile = parseHardwareProfile(JSON.parse(text), name);
    for (const [rate, use] of Object.entries(resolveRates(profile).uses))
      assert.ok(Number.isFinite(use.value) && use.source.length > 10, `${name} ${rate}`);
    assert.ok(!shippedProfileNames().includes(name.replace(/\.json$/, "")), `${name} is also shipped`);
  }
});

test("t4 and t4-colab share the T4 GPU part byte for byte; their hosts and disks differ", () => {
  const table = readCompositionTable();
  assert.equal(table.t4?.parts.gpu, "t4");
  assert.equal(table["t4-colab"]?.parts.gpu, "t4");
  const read = (name: string) => JSON.parse(readFileSync(join(PROFILES_DIR, `${name}.json`), "utf8"));
  const t4 = read("t4");
  const colab = read("t4-colab");
  assert.equal(JSON.stringify(colab.gpu), JSON.stringify(t4.gpu));
  assert.equal(JSON.stringify(colab.capacityBytes.gpu), JSON.stringify(t4.capacityBytes.gpu));
  assert.notEqual(JSON.stringify(colab.cpu), JSON.stringify(t4.cpu));
  assert.notEqual(JSON.stringify(colab.disk), JSON.stringify(t4.disk));
  // The Colab host is one physical core: 2 vCPUs and far less RAM than FlexGen's 208 GB machine.
  assert.equal(colab.cpu.cores, 2);
  assert.ok(colab.capacityBytes.cpu.value < 13 * 2 ** 30);
  // FlexGen's fitted constants describe FlexGen's own machine only.
  assert.ok(t4.flexgenFitted);
  assert.equal(colab.flexgenFitted, undefined);
});

test("every shipped profile parses, and its kernel-class rates resolve with the kind their source states", () => {
  assert.ok(shippedProfileNames().includes("t4-colab"));
  for (const name of shippedProfileNames()) {
    const profile = loadShippedProfile(name);
    for (const [rate, use] of Object.entries(resolveRates(profile).uses))
      assert.ok(Number.isFinite(use.value) && use.value >= 0 && use.source.length > 10, `${name} ${rate}`);
  }
  const t4 = resolveRates(loadShippedProfile("t4")).uses;
  // A measured elementwise add on a T4 (GPGPUCourse CI): 3 x 512 MiB in 6.272 ms, under the 320 GB/s datasheet bound.
  assert.equal(t4.gpuElementwiseBytesPerSecond.kind, "measured");
  assert.ok(Math.abs(t4.gpuElementwiseBytesPerSecond.value - (3 * 2 ** 29) / 0.006272) < 1e9);
  assert.ok(t4.gpuElementwiseBytesPerSecond.value < 320e9);
  // No strided-kernel measurement: half the (measured) memory bandwidth, marked derived.
  assert.equal(t4.gpuStridedBytesPerSecond.kind, "derived");
  assert.equal(t4.gpuStridedBytesPerSecond.value, 240e9 / 2);
  // STREAM for one Skylake-SP socket (199 GB/s for two), below the 6 x DDR4-2666 peak.
  assert.equal(t4.cpuStreamBytesPerSecond.kind, "measured");
  assert.equal(t4.cpuStreamBytesPerSecond.value, 199e9 / 2);
  assert.ok(t4.cpuStreamBytesPerSecond.value < 6 * 2666e6 * 8);
  // The conversion rate follows from STREAM by the stated rule (10 bytes of traffic per value).
  assert.equal(t4.cpuFp16ToFp32ValuesPerSecond.kind, "derived");
  assert.equal(t4.cpuFp16ToFp32ValuesPerSecond.value, 99.5e9 / 10);
  // First-touch writes, measured on another Skylake-SP Xeon (xoyowade/mmap_benchmark): 256 MiB of fresh tmpfs
  // mapping written in 129.806 ms by one thread. Far below the STREAM/2 fallback it replaces, and slower than the
  // same writes into already-faulted pages (48.127 ms), since each page is allocated and zeroed first.
  assert.equal(t4.cpuFirstTouchBytesPerSecond.kind, "measured");
  assert.ok(Math.abs(t4.cpuFirstTouchBytesPerSecond.value - 2 ** 28 / 0.129806) < 1e6);
  assert.ok(t4.cpuFirstTouchBytesPerSecond.value < 2 ** 28 / 0.048127);
  assert.ok(t4.cpuFirstTouchBytesPerSecond.value < t4.cpuStreamBytesPerSecond.value / 2);
  const colab = resolveRates(loadShippedProfile("t4-colab")).uses;
  // One core's STREAM figure is a typical value from another Xeon, kept as a datasheet-slot value, not a measurement.
  assert.equal(colab.cpuStreamBytesPerSecond.kind, "datasheet");
  assert.match(colab.cpuStreamBytesPerSecond.source, /^Typical value/);
  assert.ok(colab.cpuStreamBytesPerSecond.value < t4.cpuStreamBytesPerSecond.value);
  // The Cascade Lake hosts (a refresh of the Skylake-SP core) carry the same measurement; the Colab host (a
  // Broadwell VM) still derives its own.
  for (const name of ["l4", "a100-80g"]) {
    const host = resolveRates(loadShippedProfile(name)).uses.cpuFirstTouchBytesPerSecond;
    assert.equal(host.kind, "measured", name);
    assert.equal(host.value, t4.cpuFirstTouchBytesPerSecond.value, name);
    assert.match(host.source, /Cascade Lake is a refresh of the Skylake-SP core/);
  }
  assert.equal(colab.cpuFirstTouchBytesPerSecond.kind, "derived");
  assert.equal(colab.cpuFirstTouchBytesPerSecond.value, colab.cpuStreamBytesPerSecond.value / 2);
  // The shared GPU part gives both the same GPU rates.
  assert.deepEqual(colab.gpuElementwiseBytesPerSecond, t4.gpuElementwiseBytesPerSecond);
  assert.deepEqual(colab.h2dPinnedBytesPerSecond, t4.h2dPinnedBytesPerSecond);
});

test("a100-80g: the pinned host link is a measurement below the PCIe 4.0 datasheet figure, which stays beside it", () => {
  const profile = loadShippedProfile("a100-80g");
  const uses = resolveRates(profile).uses;
  for (const [rate, quantity] of [
    [uses.h2dPinnedBytesPerSecond, profile.hostToDevice.pinnedBytesPerSecond],
    [uses.d2hPinnedBytesPerSecond, profile.deviceToHost.pinnedBytesPerSecond],
  ] as const) {
    assert.equal(rate.kind, "measured");
    assert.match(rate.source, /bandwidthTest/);
    assert.equal(quantity.datasheet?.value, 31.5e9);
    assert.ok(rate.value < quantity.datasheet!.value);
  }
});

test("each profile's notes list its kernel-class rates by kind", () => {
  const t4 = JSON.parse(readFileSync(join(PROFILES_DIR, "t4.json"), "utf8"));
  assert.match(
    t4.notes,
    /measured: gpu\.elementwiseBytesPerSecond, cpu\.streamBytesPerSecond, cpu\.firstTouchBytesPerSecond, cpu\.singleThreadCopyBytesPerSecond;/,
  );
  assert.match(t4.notes, /typical values only: cpu\.eagerDispatchSeconds;/);
  assert.match(t4.notes, /absent, so engines derive them .*gpu\.stridedBytesPerSecond, gpu\.gemmCurve/);
  assert.equal(
    kernelRateNote({ gpu: {}, cpu: {}, disk: { mmapReadBytesPerSecond: { datasheet: { value: 1, source: "x" } } } }),
    "Kernel-class rates: measured: none; datasheet bounds or typical values only: disk.mmapReadBytesPerSecond; " +
      "absent, so engines derive them from the rates above (engines/kernel-rates.ts): gpu.elementwiseBytesPerSecond, " +
      "gpu.stridedBytesPerSecond, gpu.gemmCurve, cpu.streamBytesPerSecond, cpu.fp16ToFp32ValuesPerSecond, " +
      "cpu.firstTouchBytesPerSecond, cpu.pageableRelayBytesPerSecond, cpu.singleThreadCopyBytesPerSecond, cpu.eagerDispatchSeconds.",
  );
});

test("a part holding another kind's section, a missing part or a bad composed profile is refused with the file and field", () => {
  const dir = mkdtempSync(join(tmpdir(), "spillway-parts-"));
  try {
    cpSync(PARTS_DIR, dir, { recursive: true });
    const gpuPart = join(dir, "gpus", "t4.json");
    const original = JSON.parse(readFileSync(gpuPart, "utf8"));
    writeFileSync(gpuPart, JSON.stringify({ ...original, cpu: {} }));
    assert.throws(
      () => composedProfileFiles(dir),
      (e: unknown) =>
        e instanceof InputError &&
        e.message.includes(`${gpuPart}: cpu: unknown field; expected one of about, capacityBytes, gpu`),
    );
    writeFileSync(
      gpuPart,
      JSON.stringify({ ...original, gpu: { ...original.gpu, elementwiseBytesPerSecond: { measured: { value: -1 } } } }),
    );
    assert.throws(
      () => composedProfileFiles(dir),
      (e: unknown) =>
        e instanceof InputError &&
        /profile t4 \(parts: gpu t4/.test(e.message) &&
        /elementwiseBytesPerSecond/.test(e.message),
    );
    writeFileSync(gpuPart, JSON.stringify(original));
    const table = JSON.parse(readFileSync(COMPOSE_FILE, "utf8"));
    table.t4.parts.disk = "no-such-disk";
    writeFileSync(join(dir, "compose.json"), JSON.stringify(table));
    assert.throws(
      () => composedProfileFiles(dir),
      (e: unknown) => e instanceof InputError && e.message.includes(join(dir, "disks", "no-such-disk.json")),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a composed profile carries no reference to its parts: parsing it needs no other file", () => {
  for (const name of shippedProfileNames()) {
    const text = readFileSync(join(PROFILES_DIR, `${name}.json`), "utf8");
    assert.ok(!text.includes("profiles/parts"), `${name} names a part path`);
    assert.ok(!/"about"/.test(text), `${name} copied a part's about line`);
    parseHardwareProfile(JSON.parse(text), name);
  }
});
