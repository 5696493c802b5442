import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { gpuAddresses, gpuCount, linkBetween, parseClusterProfile } from "../../core/cluster-profile.js";
import { effective } from "../../core/hardware-profile.js";
import { InputError } from "../../core/input-error.js";
import { loadShippedCluster, resolveHardwareTarget, shippedClusterNames } from "../../core/resolve-cluster.js";
import { loadShippedProfile } from "../../core/resolve-hardware.js";
import { CLUSTERS_DIR, composedClusterFiles, unusedInterconnects } from "../../scripts/compose-clusters.js";

test("every committed cluster profile is exactly its composition from parts, and every interconnect part is used", () => {
  const files = composedClusterFiles();
  const committed = readdirSync(CLUSTERS_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort();
  assert.deepEqual(Object.keys(files).sort(), committed);
  for (const [name, text] of Object.entries(files))
    assert.equal(readFileSync(join(CLUSTERS_DIR, name), "utf8"), text, `profiles/clusters/${name} is stale`);
  assert.deepEqual(unusedInterconnects(), []);
});

test("the issue's four clusters ship, with their shapes and links, and --hardware resolves them", () => {
  const shapes: Record<string, [number, number, string | undefined, string | undefined]> = {
    "4x1-t4-gcp": [4, 1, undefined, "ethernet"],
    "1x4-t4": [1, 4, "pcie", undefined],
    "1x8-a100-80g": [1, 8, "nvlink", undefined],
    "2x8-h100": [2, 8, "nvlink", "infiniband"],
  };
  assert.deepEqual(shippedClusterNames(), Object.keys(shapes).sort());
  for (const [name, [nodes, gpus, intra, inter]] of Object.entries(shapes)) {
    const target = resolveHardwareTarget(name);
    assert.equal(target.kind, "cluster", name);
    const cluster = loadShippedCluster(name);
    assert.equal(cluster.nodes, nodes);
    assert.equal(cluster.gpusPerNode, gpus);
    assert.equal(cluster.intraNode?.kind, intra);
    assert.equal(cluster.interNode?.kind, inter);
    assert.equal(gpuAddresses(cluster).length, gpuCount(cluster));
    for (const link of [cluster.intraNode, cluster.interNode])
      for (const q of link ? [link.bytesPerSecond, link.latencySeconds] : [])
        for (const slot of [q.datasheet, q.measured]) if (slot) assert.ok(slot.source.length > 40, `${name}: a source`);
  }
  // A single-GPU name still resolves to a single GPU.
  assert.equal(resolveHardwareTarget("t4").kind, "gpu");
  assert.throws(
    () => resolveHardwareTarget("9x9-nope"),
    (e: unknown) => e instanceof InputError && /cluster name \(/.test(e.message),
  );
});

test("a GPU that shares its host gets its share; a GPU alone on its node gets the single-GPU profile", () => {
  const t4 = loadShippedProfile("t4");
  const shared = loadShippedCluster("1x4-t4").perGpu;
  assert.equal(shared.capacityBytes.cpu.value, t4.capacityBytes.cpu.value / 4);
  assert.equal(shared.capacityBytes.disk.value, t4.capacityBytes.disk.value / 4);
  assert.equal(shared.cpu.cores, t4.cpu.cores / 4);
  assert.equal(effective(shared.disk.readBytesPerSecond), effective(t4.disk.readBytesPerSecond) / 4);
  assert.match(shared.capacityBytes.cpu.source, /divided among the 4 GPUs/);
  // The GPU and its PCIe link are its own.
  assert.deepEqual(shared.gpu, t4.gpu);
  assert.deepEqual(shared.hostToDevice, t4.hostToDevice);
  const alone = loadShippedCluster("4x1-t4-gcp");
  assert.deepEqual({ ...alone.perGpu, name: "t4" }, t4);
  // Transfers between GPUs take the node's link or the network.
  const h100 = loadShippedCluster("2x8-h100");
  assert.equal(linkBetween(h100, { node: 0, index: 0 }, { node: 0, index: 1 }).interconnect.kind, "nvlink");
  assert.equal(linkBetween(h100, { node: 0, index: 7 }, { node: 1, index: 0 }).bytesPerSecond, 50e9);
});

test("a cluster file missing its network, or with an unknown link kind, is refused naming the field", () => {
  const good = JSON.parse(readFileSync(join(CLUSTERS_DIR, "2x8-h100.json"), "utf8"));
  const { interNode: _dropped, ...noNetwork } = good;
  assert.throws(
    () => parseClusterProfile(noNetwork, "c.json"),
    (e: unknown) => e instanceof InputError && /c\.json/.test(e.message) && /interNode/.test(e.message),
  );
  const badKind = { ...good, intraNode: { ...good.intraNode, kind: "carrier-pigeon" } };
  assert.throws(
    () => parseClusterProfile(badKind, "c.json"),
    (e: unknown) => e instanceof InputError && /intraNode\.kind/.test(e.message) && /nvlink/.test(e.message),
  );
  assert.throws(
    () => parseClusterProfile({ ...good, nodes: 0 }, "c.json"),
    (e: unknown) => e instanceof InputError && /nodes/.test(e.message),
  );
});
