/**
 * Every `spillway` command's usage line and one-line description, by name: what the top-level help
 * lists without loading the commands (cli/command-index.ts loads them), and what each command module
 * spreads into itself.
 */

export const COMMAND_NAMES = [
  "plan",
  "simulate",
  "run",
  "compare",
  "sweep",
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

export interface CommandHead {
  /** The usage line yargs reads: the name and its positionals. */
  readonly command: string;
  readonly describe: string;
}

export const COMMAND_HEADS: Readonly<Record<CommandName, CommandHead>> = {
  plan: {
    command: "plan",
    describe: "choose (or score) an offloading policy and predict its throughput",
  },
  simulate: {
    command: "simulate <plan>",
    describe: "replay a plan's schedule stream by stream and check the planner's predictions",
  },
  run: {
    command: "run <plan>",
    describe: "execute a plan for real (CPU backend, or a GPU with --backend cuda) and compare measured with predicted",
  },
  compare: {
    command: "compare",
    describe: "plan, simulate and run side by side: predicted against measured",
  },
  sweep: {
    command: "sweep",
    describe:
      "plan one model and workload over many hardware and cluster profiles: throughput and cost per million tokens",
  },
  calibrate: {
    command: "calibrate <runs..>",
    describe: "fit a hardware profile's kernel rates to measured runs and write the calibrated profile",
  },
  profile: {
    command: "profile",
    describe: "measure this machine for a backend and write a hardware profile (JSON) and its raw samples (CSV)",
  },
  "synth-weights": {
    command: "synth-weights",
    describe:
      "write a deterministic synthetic checkpoint (safetensors, fp16) with its config.json: OPT, Mixtral or Qwen2-MoE",
  },
  report: {
    command: "report [inputs..]",
    describe:
      "charts (SVG, PNG, Vega-Lite) and an HTML page for a plan, traces and a comparison; with no inputs, for the default plan",
  },
  trace: {
    command: "trace",
    describe:
      "routing traces of Mixture-of-Experts models: synthesise, summarise (LRU hit rates, popularity, repetition) and convert",
  },
  export: {
    command: "export <plan>",
    describe:
      "write a plan as another engine's configuration: FlexGen command line, llama.cpp flags, Accelerate device_map, DeepSpeed ZeRO-Inference config or vLLM flags",
  },
  devices: {
    command: "devices",
    describe: "list the devices Spillway can run on: CUDA GPUs (or why none is usable) and the CPU backend",
  },
  models: {
    command: "models",
    describe: "list the model catalogue",
  },
  hardware: {
    command: "hardware",
    describe: "list the shipped hardware profiles",
  },
};

/** The usage line and description a command module spreads into itself. */
export function commandHead(name: CommandName): CommandHead {
  return COMMAND_HEADS[name];
}
