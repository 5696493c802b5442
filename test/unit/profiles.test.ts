import assert from "node:assert/strict";
import { test } from "node:test";
import type { Quantity } from "../../core/hardware-profile.js";
import { loadShippedProfile, shippedProfileNames } from "../../core/resolve-hardware.js";
import { runCli } from "../helpers.js";

const REQUIRED = ["t4", "v100", "rtx3060", "rtx3090", "rtx4090", "l4", "a100-80g", "h100"];

test("every required profile ships and validates, with a source on every number", () => {
  assert.deepEqual(
    REQUIRED.filter((n) => !shippedProfileNames().includes(n)),
    [],
  );
  for (const name of shippedProfileNames()) {
    const p = loadShippedProfile(name);
    assert.equal(p.name, name);
    const quantities: [string, Quantity][] = [
      ["gpu.memoryBandwidth", p.gpu.memoryBandwidthBytesPerSecond],
      ["gpu.fp16Matmul", p.gpu.fp16MatmulFlopsPerSecond],
      ["cpu.fp32", p.cpu.fp32FlopsPerSecond],
      ["cpu.memoryBandwidth", p.cpu.memoryBandwidthBytesPerSecond],
      ["h2d", p.hostToDevice.pinnedBytesPerSecond],
      ["d2h", p.deviceToHost.pinnedBytesPerSecond],
      ["diskRead", p.disk.readBytesPerSecond],
      ["diskWrite", p.disk.writeBytesPerSecond],
    ];
    for (const [what, q] of quantities) {
      for (const v of [q.datasheet, q.measured])
        if (v) assert.ok(v.source.length > 10, `${name} ${what} needs a source`);
      // A measurement never beats the datasheet peak.
      if (q.datasheet && q.measured)
        assert.ok(q.measured.value <= q.datasheet.value, `${name} ${what}: measured above datasheet`);
    }
  }
});

test("the T4 keeps datasheet, measured and FlexGen-fitted values apart", () => {
  const t4 = loadShippedProfile("t4");
  assert.ok(t4.hostToDevice.pinnedBytesPerSecond.datasheet && t4.hostToDevice.pinnedBytesPerSecond.measured);
  assert.equal(t4.hostToDevice.pinnedBytesPerSecond.measured.value, 12.0e9);
  assert.equal(t4.flexgenFitted?.ctogBandwidthGiBPerSecond, 12.89);
  assert.equal(t4.flexgenFitted?.dtocBandwidthGiBPerSecond, 0.473);
  assert.equal(t4.capacityBytes.gpu.value, 15 * 2 ** 30);
});

test("spillway hardware lists the shipped profiles", () => {
  const out = runCli(["hardware", "--json"]);
  assert.equal(out.status, 0, out.stderr);
  const names = (JSON.parse(out.stdout) as { name: string }[]).map((r) => r.name);
  for (const n of REQUIRED) assert.ok(names.includes(n), n);
});
