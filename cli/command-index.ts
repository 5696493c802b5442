/**
 * Every \`spillway\` command by name: its usage line, its one-line description and how to load it. main.ts
 * loads only the command a command line names (help lists the rest from here), so a command pays for
 * the modules it uses and no other: \`spillway models\` does not load the LP solvers, vega or resvg.
 */
import type { SpillwayCommand } from "./command-module.js";

export interface CommandEntry {
  /** The usage line yargs reads: the name and its positionals. */
  readonly command: string;
  readonly describe: string;
  readonly load: () => Promise<SpillwayCommand<never>>;
}

export const COMMAND_NAMES = [
  "plan",
  "simulate",
  "run",
  "compare",
  "calibrate",
  "profile",
  "synth-weights",
  "report",
  "trace",
  "export",
  "devices",
  "models",
  "hardware",
] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

export const COMMAND_INDEX: Readonly<Record<CommandName, CommandEntry>> = {
  plan: {
    command: "plan",
    describe: "choose (or score) an offloading policy and predict its throughput",
    load: async () => (await import("./plan-command.js")).planCommand as unknown as SpillwayCommand<never>,
  },
  simulate: {
    command: "simulate <plan>",
    describe: "replay a plan's schedule stream by stream and check the planner's predictions",
    load: async () => (await import("./simulate-command.js")).simulateCommand as unknown as SpillwayCommand<never>,
  },
  run: {
    command: "run <plan>",
    describe: "execute a plan for real (CPU backend, or a GPU with --backend cuda) and compare measured with predicted",
    load: async () => (await import("./run-command.js")).runCommand as unknown as SpillwayCommand<never>,
  },
  compare: {
    command: "compare",
    describe: "plan, simulate and run side by side: predicted against measured",
    load: async () => (await import("./compare-command.js")).compareCommand as unknown as SpillwayCommand<never>,
  },
  calibrate: {
    command: "calibrate <runs..>",
    describe: "fit a hardware profile's kernel rates to measured runs and write the calibrated profile",
    load: async () => (await import("./calibrate-command.js")).calibrateCommand as unknown as SpillwayCommand<never>,
  },
  profile: {
    command: "profile",
    describe: "measure this machine for a backend and write a hardware profile (JSON) and its raw samples (CSV)",
    load: async () => (await import("./profile-command.js")).profileCommand as unknown as SpillwayCommand<never>,
  },
  "synth-weights": {
    command: "synth-weights",
    describe: "write a deterministic synthetic OPT checkpoint (safetensors, fp16) with its config.json",
    load: async () =>
      (await import("./synth-weights-command.js")).synthWeightsCommand as unknown as SpillwayCommand<never>,
  },
  report: {
    command: "report [inputs..]",
    describe:
      "charts (SVG, PNG, Vega-Lite) and an HTML page for a plan, traces and a comparison; with no inputs, for the default plan",
    load: async () => (await import("./report-command.js")).reportCommand as unknown as SpillwayCommand<never>,
  },
  trace: {
    command: "trace",
    describe:
      "routing traces of Mixture-of-Experts models: synthesise, summarise (LRU hit rates, popularity, repetition) and convert",
    load: async () => (await import("./trace-command.js")).traceCommand as unknown as SpillwayCommand<never>,
  },
  export: {
    command: "export <plan>",
    describe:
      "write a plan as another engine's configuration: FlexGen command line, llama.cpp flags, Accelerate device_map, DeepSpeed ZeRO-Inference config or vLLM flags",
    load: async () => (await import("./export-command.js")).exportCommand as unknown as SpillwayCommand<never>,
  },
  devices: {
    command: "devices",
    describe: "list the devices Spillway can run on: CUDA GPUs (or why none is usable) and the CPU backend",
    load: async () => (await import("./devices-command.js")).devicesCommand as unknown as SpillwayCommand<never>,
  },
  models: {
    command: "models",
    describe: "list the model catalogue",
    load: async () => (await import("./list-commands.js")).modelsCommand as unknown as SpillwayCommand<never>,
  },
  hardware: {
    command: "hardware",
    describe: "list the shipped hardware profiles",
    load: async () => (await import("./list-commands.js")).hardwareCommand as unknown as SpillwayCommand<never>,
  },
};

/** The usage line and description a command module spreads into itself. */
export function commandHead(name: CommandName): { command: string; describe: string } {
  const { command, describe } = COMMAND_INDEX[name];
  return { command, describe };
}
