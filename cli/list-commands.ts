/** `spillway models` and `spillway hardware`. */
import type { Argv } from "yargs";
import { effective } from "../core/hardware-profile.js";
import { activeParams, totalParams, totalWeightBytes } from "../core/model-spec.js";
import { loadShippedProfile, shippedProfileNames } from "../core/resolve-hardware.js";
import { formatBytes } from "../core/units.js";
import { MODEL_CATALOGUE } from "../models/catalogue.js";
import { commandHead } from "./command-heads.js";
import { defineCommand } from "./command-module.js";
import { EXIT_CODES_EPILOG } from "./terminal.js";

const billions = (x: number) => (x >= 1e9 ? `${(x / 1e9).toFixed(2)}B` : `${(x / 1e6).toFixed(0)}M`);

export function listModels(json: boolean): string {
  const rows = MODEL_CATALOGUE.map((m) => ({
    name: m.name,
    family: m.family,
    layers: m.numLayers,
    hiddenSize: m.hiddenSize,
    heads: m.numHeads,
    kvHeads: m.numKvHeads,
    params: totalParams(m),
    activeParams: activeParams(m),
    fp16Bytes: totalWeightBytes(m),
    ...(m.moe ? { experts: m.moe.numExperts, expertsPerToken: m.moe.expertsPerToken } : {}),
  }));
  if (json) return JSON.stringify(rows, null, 2);
  const header = `${"name".padEnd(19)}${"family".padEnd(11)}${"layers".padStart(7)}${"hidden".padStart(8)}${"heads".padStart(8)}${"params".padStart(10)}${"active".padStart(10)}${"fp16 weights".padStart(14)}`;
  return [
    header,
    ...rows.map(
      (r) =>
        `${r.name.padEnd(19)}${r.family.padEnd(11)}${String(r.layers).padStart(7)}${String(r.hiddenSize).padStart(8)}${`${r.heads}/${r.kvHeads}`.padStart(8)}${billions(r.params).padStart(10)}${billions(r.activeParams).padStart(10)}${formatBytes(r.fp16Bytes).padStart(14)}`,
    ),
  ].join("\n");
}

export function listHardware(json: boolean): string {
  const rows = shippedProfileNames().map((name) => {
    const p = loadShippedProfile(name);
    return {
      name,
      gpu: p.gpu.name,
      host: p.host,
      gpuBytes: p.capacityBytes.gpu.value,
      cpuBytes: p.capacityBytes.cpu.value,
      diskBytes: p.capacityBytes.disk.value,
      h2dBytesPerSecond: effective(p.hostToDevice.pinnedBytesPerSecond),
      gpuFlopsPerSecond: effective(p.gpu.fp16MatmulFlopsPerSecond),
      measured: Boolean(p.hostToDevice.pinnedBytesPerSecond.measured),
      flexgenFitted: Boolean(p.flexgenFitted),
    };
  });
  if (json) return JSON.stringify(rows, null, 2);
  // The GPU column fits the longest name whole (the H100's is 28 characters).
  const gpuWidth = Math.max(3, ...rows.map((r) => r.gpu.length)) + 2;
  const header = `${"name".padEnd(10)}${"GPU".padEnd(gpuWidth)}${"GPU mem".padStart(11)}${"CPU mem".padStart(12)}${"disk".padStart(12)}${"PCIe h2d".padStart(11)}${"fp16".padStart(11)}  numbers`;
  return [
    header,
    ...rows.map(
      (r) =>
        `${r.name.padEnd(10)}${r.gpu.padEnd(gpuWidth)}${formatBytes(r.gpuBytes).padStart(11)}${formatBytes(r.cpuBytes).padStart(12)}${formatBytes(r.diskBytes).padStart(12)}${`${(r.h2dBytesPerSecond / 1e9).toFixed(1)} GB/s`.padStart(11)}${`${(r.gpuFlopsPerSecond / 1e12).toFixed(0)} TF/s`.padStart(11)}  ${r.measured ? "measured" : "datasheet"}${r.flexgenFitted ? " + FlexGen fitted" : ""}`,
    ),
  ].join("\n");
}

function listOptions<T>(y: Argv<T>) {
  return y
    .option("json", { type: "boolean", default: false, describe: "print the list as JSON" })
    .option("quiet", { type: "boolean", default: false, describe: "print nothing but errors (--json still prints)" })
    .epilog(EXIT_CODES_EPILOG);
}

export const modelsCommand = defineCommand({
  ...commandHead("models"),
  builder: (y) =>
    listOptions(y).example("$0 models", "names, families and sizes").example("$0 models --json", "as JSON"),
  handler: (argv) => {
    if (argv.json || !argv.quiet) process.stdout.write(listModels(argv.json) + "\n");
  },
});

export const hardwareCommand = defineCommand({
  ...commandHead("hardware"),
  builder: (y) =>
    listOptions(y).example("$0 hardware", "names, GPUs and capacities").example("$0 hardware --json", "as JSON"),
  handler: (argv) => {
    if (argv.json || !argv.quiet) process.stdout.write(listHardware(argv.json) + "\n");
  },
});
