/**
 * `spillway devices`: what this machine can run on — the CUDA backend's GPUs (or why there are none:
 * addon not built, no driver, no GPU) and the CPU backend. A missing GPU is a report, not an error.
 */
import { cpus, totalmem } from "node:os";
import { type CudaStatus, cudaStatus } from "../runtime/cuda/load-native.js";
import { commandHead } from "./command-heads.js";
import { defineCommand } from "./command-module.js";
import { EXIT_CODES_EPILOG } from "./terminal.js";

export interface DevicesReport {
  readonly cuda: CudaStatus;
  readonly cpu: {
    readonly available: true;
    readonly name: string;
    readonly cores: number;
    readonly memoryBytes: number;
  };
}

export function devicesReport(): DevicesReport {
  return {
    cuda: cudaStatus(),
    cpu: { available: true, name: cpus()[0]?.model ?? "unknown CPU", cores: cpus().length, memoryBytes: totalmem() },
  };
}

const GIB = 2 ** 30;

export function formatDevices(report: DevicesReport): string {
  const lines: string[] = [];
  const { cuda } = report;
  if (cuda.available) {
    lines.push(
      `CUDA: available (runtime ${cuda.runtimeVersion}${cuda.driverVersion ? `, driver ${cuda.driverVersion}` : ""})`,
    );
    for (const d of cuda.devices ?? []) {
      const link = d.pcieLink ? `, PCIe ${d.pcieLink.speed} x${d.pcieLink.width}` : "";
      lines.push(
        `  [${d.index}] ${d.name}: ${(d.memoryBytes / GIB).toFixed(1)} GiB, compute capability ${d.computeCapability}, ${d.multiprocessors} SMs, ${d.pciBusId}${link}`,
      );
    }
  } else lines.push(`CUDA: not available — ${cuda.reason}`);
  lines.push(
    `CPU backend: ${report.cpu.name}, ${report.cpu.cores} cores, ${(report.cpu.memoryBytes / GIB).toFixed(0)} GiB`,
  );
  return lines.join("\n");
}

export const devicesCommand = defineCommand({
  ...commandHead("devices"),
  builder: (d) =>
    d
      .option("json", {
        type: "boolean",
        default: false,
        describe: 'print {"cuda": {available, reason?, devices?}, "cpu": {...}} as JSON',
      })
      .option("quiet", { type: "boolean", default: false, describe: "print no text but errors (--json still prints)" })
      .epilog(EXIT_CODES_EPILOG)
      .example("$0 devices", "GPUs, their memory, compute capability and PCIe link")
      .example("$0 devices --json", "as JSON; cuda.available is false with a reason where no GPU can be used"),
  handler: (argv) => {
    const report = devicesReport();
    if (argv.json) process.stdout.write(JSON.stringify(report, null, 2) + "\n");
    else if (!argv.quiet) process.stdout.write(formatDevices(report) + "\n");
  },
});
