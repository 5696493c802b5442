/**
 * How to load each `spillway` command. main.ts loads only the command a command line names (the help
 * lists the rest from cli/command-heads.ts), so a command pays for the modules it uses and no other:
 * `spillway models` does not load the LP solvers, vega or resvg.
 */
import type { CommandName } from "./command-heads.js";
import type { SpillwayCommand } from "./command-module.js";

export const COMMAND_LOADERS: Readonly<Record<CommandName, () => Promise<SpillwayCommand<never>>>> = {
  plan: async () => (await import("./plan-command.js")).planCommand as unknown as SpillwayCommand<never>,
  simulate: async () => (await import("./simulate-command.js")).simulateCommand as unknown as SpillwayCommand<never>,
  run: async () => (await import("./run-command.js")).runCommand as unknown as SpillwayCommand<never>,
  compare: async () => (await import("./compare-command.js")).compareCommand as unknown as SpillwayCommand<never>,
  sweep: async () => (await import("./sweep-command.js")).sweepCommand as unknown as SpillwayCommand<never>,
  calibrate: async () => (await import("./calibrate-command.js")).calibrateCommand as unknown as SpillwayCommand<never>,
  profile: async () => (await import("./profile-command.js")).profileCommand as unknown as SpillwayCommand<never>,
  "synth-weights": async () =>
    (await import("./synth-weights-command.js")).synthWeightsCommand as unknown as SpillwayCommand<never>,
  report: async () => (await import("./report-command.js")).reportCommand as unknown as SpillwayCommand<never>,
  trace: async () => (await import("./trace-command.js")).traceCommand as unknown as SpillwayCommand<never>,
  export: async () => (await import("./export-command.js")).exportCommand as unknown as SpillwayCommand<never>,
  devices: async () => (await import("./devices-command.js")).devicesCommand as unknown as SpillwayCommand<never>,
  models: async () => (await import("./list-commands.js")).modelsCommand as unknown as SpillwayCommand<never>,
  hardware: async () => (await import("./list-commands.js")).hardwareCommand as unknown as SpillwayCommand<never>,
};
