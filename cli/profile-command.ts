/**
 * `spillway profile`: measure this machine for a backend (or rebuild from a samples CSV) and write a
 * hardware profile (JSON) and its raw samples (CSV).
 */
import type { Argv } from "yargs";
import { parseHardwareProfile } from "../core/hardware-profile.js";
import { InputError } from "../core/input-error.js";
import { readInputText } from "../core/read-input-file.js";
import { GIB } from "../core/units.js";
import { checkOutputPath, writeFileAtomic } from "../core/write-file-atomic.js";
import { cudaProfileFromSamples, measureCudaBackend } from "../runtime/cuda/profile-cuda.js";
import {
  defaultCapacities,
  measureCpuBackend,
  profileFromSamples,
  samplesFromCsv,
  samplesToCsv,
} from "../runtime/profile-cpu.js";
import { requireCuda } from "../runtime/run.js";
import { checkCudaAddonBuilt } from "./check-cuda-addon.js";
import { commandHead } from "./command-heads.js";
import { type ArgsOf, defineCommand } from "./command-module.js";
import { withProgressSync } from "./command-progress.js";
import { checkOffloadDir } from "./offload-dir-flag.js";
import { parseNumberFlag } from "./parse-flags.js";
import { EXIT_CODES_EPILOG, progressHelp } from "./terminal.js";

function profileOptions<T>(y: Argv<T>) {
  return y
    .option("backend", {
      choices: ["cpu", "cuda"] as const,
      default: "cpu" as const,
      describe: "the backend to measure (cuda: needs `npm run build:cuda` and a GPU)",
    })
    .option("quick", { type: "boolean", default: false, describe: "fewer sizes and shorter timings (under 30 s)" })
    .option("out", {
      type: "string",
      demandOption: true,
      describe: "profile JSON to write; the samples go beside it as .csv",
    })
    .option("gpu-mem", {
      type: "string",
      describe: "GPU capacity in GiB written to the profile (default: 1 for cpu, the device's free memory for cuda)",
    })
    .option("from-samples", { type: "string", describe: "rebuild the profile from a samples CSV instead of measuring" })
    .option("offload-dir", {
      type: "string",
      describe: "folder for the disk measurements (default: the OS temp folder)",
    })
    .option("quiet", {
      type: "boolean",
      default: false,
      describe: "no progress and no text but errors (--json still prints)",
    })
    .option("json", { type: "boolean", default: false, describe: "print a JSON summary of the files written" });
}

export type ProfileArgs = ArgsOf<ReturnType<typeof profileOptions>>;

function readSamplesFile(path: string): string {
  return readInputText(path, { expected: "a samples CSV (spillway profile's samples file)" });
}

export function runProfile(argv: ProfileArgs): void {
  const samplesPath = argv["from-samples"];
  // The outputs are checked before anything is measured: a bad --out fails at once, not after the work.
  const csvPath = argv.out.replace(/\.json$/, "") + ".csv";
  checkOutputPath(argv.out);
  if (samplesPath === undefined) checkOutputPath(csvPath);
  checkOffloadDir(argv["offload-dir"]);
  const samplesGiven =
    samplesPath !== undefined ? samplesFromCsv(readSamplesFile(samplesPath), samplesPath) : undefined;
  // An empty samples file is an error, not a request to measure this machine.
  if (samplesGiven?.length === 0)
    throw new InputError(
      samplesPath!,
      undefined,
      "no samples; expected the header measurement,size,shape,seconds and rows (spillway profile's samples file)",
    );
  const cuda = argv.backend === "cuda" || Boolean(samplesGiven?.some((x) => x.measurement === "deviceCopy"));
  if (cuda && !samplesGiven) checkCudaAddonBuilt("cuda");
  const native = cuda && !samplesGiven ? requireCuda() : undefined;
  native?.setDevice(0);
  const deviceName = native
    ? native.deviceProperties(0).name
    : (samplesGiven?.find((x) => x.measurement === "device")?.shape ?? "CUDA device");
  const gpuFlag = parseNumberFlag("gpu-mem", argv["gpu-mem"], { greaterThan: 0, unit: "GiB" });
  const gpuBytes = gpuFlag !== undefined ? gpuFlag * GIB : native ? native.memGetInfo().freeBytes : GIB;
  const capacity = defaultCapacities(gpuBytes, argv["offload-dir"]);
  let samples;
  if (samplesGiven) samples = samplesGiven;
  else {
    const offload = argv["offload-dir"] ? { offloadDir: argv["offload-dir"] } : {};
    samples = withProgressSync({ quiet: argv.quiet }, (listener) => {
      const onProgress = (done: number, total: number, what: string) =>
        listener({ phase: "profiling", done, total, detail: what });
      return native
        ? [
            { measurement: "device", size: 1, shape: deviceName.replace(/[,\n]/g, " "), seconds: 1 },
            ...measureCudaBackend(native, { quick: argv.quick, ...offload, onProgress }),
          ]
        : measureCpuBackend({ quick: argv.quick, gpuBytes, ...offload, onProgress });
    });
  }
  const profile = cuda ? cudaProfileFromSamples(samples, capacity, deviceName) : profileFromSamples(samples, capacity);
  parseHardwareProfile(JSON.parse(JSON.stringify(profile)), "measured profile");
  writeFileAtomic(argv.out, JSON.stringify(profile, null, 2) + "\n");
  if (!argv["from-samples"]) writeFileAtomic(csvPath, samplesToCsv(samples));
  if (argv.json) {
    process.stdout.write(
      JSON.stringify(
        {
          profile: argv.out,
          ...(argv["from-samples"] ? { fromSamples: argv["from-samples"] } : { samples: csvPath }),
          sampleCount: samples.length,
          name: profile.name,
          gpuBytes: profile.capacityBytes.gpu.value,
          cpuBytes: profile.capacityBytes.cpu.value,
          diskBytes: profile.capacityBytes.disk.value,
        },
        null,
        2,
      ) + "\n",
    );
  } else if (!argv.quiet)
    process.stdout.write(
      `Wrote ${argv.out}${argv["from-samples"] ? "" : ` and ${csvPath} (${samples.length} samples)`}\n`,
    );
}

export const profileCommand = defineCommand({
  ...commandHead("profile"),
  builder: (y) =>
    profileOptions(y)
      .epilog(`${progressHelp("measurements taken")}\n\n${EXIT_CODES_EPILOG}`)
      .example("$0 profile --backend cpu --quick --out cpu.json", "measure this machine in under 30 s")
      .example("$0 profile --backend cuda --out gpu.json", "measure this machine's GPU: copies, GEMMs, attention")
      .example("$0 profile --from-samples cpu.csv --out cpu.json --json", "rebuild a profile from its samples"),
  handler: (argv) => runProfile(argv),
});
