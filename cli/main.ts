#!/usr/bin/env node
/**
 * The `spillway` command line: a thin shell over the library, one module per command. Exit codes: 0 ok,
 * 1 failure (e.g. no policy fits), 2 bad input (flags, files).
 */

import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import yargs, { type Argv, type MiddlewareFunction } from "yargs";
import { hideBin } from "yargs/helpers";
import { InputError } from "../core/input-error.js";
import { EngineUnsupportedError } from "../engines/engine-unsupported-error.js";
import { PlanError } from "../planner/plan-error.js";
import {
  checkFlagSyntax,
  checkGlobalSwitches,
  type DeclaredFlags,
  restoreStdinArguments,
  STDIN_ARGUMENT,
} from "./check-flag-syntax.js";
import { COMMAND_HEADS, COMMAND_NAMES, type CommandName } from "./command-heads.js";
import { COMMAND_LOADERS } from "./command-index.js";
import type { SpillwayCommand } from "./command-module.js";
import { oneLine } from "./one-line.js";
import { EXIT_CODES_EPILOG } from "./terminal.js";
import { usageMessage } from "./usage-message.js";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_BAD_INPUT = 2;

class UsageError extends Error {}

/** The command a command line names (its first word that is not a flag), if it is one. */
function commandNamed(args: readonly string[]): CommandName | undefined {
  const first = args.find((a) => !a.startsWith("-"));
  return (COMMAND_NAMES as readonly string[]).includes(first ?? "") ? (first as CommandName) : undefined;
}

/** Whether a command line asks for help (`--help`, `-h`, or `help` in place of a command). */
function helpRequested(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  const flags = end === -1 ? args : args.slice(0, end);
  return flags.some((a) => a === "--help" || a === "-h" || a.startsWith("--help=")) || flags[0] === "help";
}

/**
 * The CLI for `args`: the command they name loaded in full, every other command as its usage line and
 * description only (for the top-level help), so a command loads no module another command needs.
 */
export async function buildCli(args: string[]): Promise<Argv> {
  const named = commandNamed(args);
  const loaded = named ? await COMMAND_LOADERS[named]() : undefined;
  let cli = yargs(args)
    .scriptName("spillway")
    .usage("$0 <command> [options]\n\nPlan, simulate and run large language models on GPUs too small for them.");
  for (const name of COMMAND_NAMES) {
    const { command, describe } = COMMAND_HEADS[name];
    const stub: SpillwayCommand<object> = { command, describe, handler: () => undefined };
    cli = cli.command((name === named ? loaded : stub) as SpillwayCommand<object>);
  }
  const built = cli
    .example(
      "$0 plan --model opt-30b --hardware rtx3090 --out p.json && $0 simulate p.json",
      "plan a model for a GPU, then check the plan by simulation",
    )
    .demandCommand(1, "Not enough non-option arguments: got 0, need at least 1")
    .strict()
    .help()
    .alias("help", "h")
    .version()
    .epilog(EXIT_CODES_EPILOG)
    // Only a help request shows the help text (errors are one line): only then is it wrapped to the
    // terminal, and laid out at all (skipHelpCache).
    .wrap(helpRequested(args) ? Math.min(110, process.stdout.columns || 100) : null)
    // yargs passes middleware its instance as a second argument (its typings omit it): the command's flags.
    .middleware(
      ((argv: Record<string, unknown>, y: { getOptions(): DeclaredFlags }) => {
        restoreStdinArguments(argv);
        checkFlagSyntax(args, argv, y.getOptions());
      }) as unknown as MiddlewareFunction,
      true,
    )
    .fail((message, error) => {
      if (error) throw error;
      throw new UsageError(message);
    });
  if (!helpRequested(args)) skipHelpCache(built);
  return built;
}

interface YargsInternals {
  getInternalMethods?(): { getUsageInstance(): { cacheHelpMessage(): void } };
}

/**
 * yargs lays out a command's whole help text after its handler starts (cacheHelpMessage), to show it on a
 * later failure: string-width over every flag, ~150 ms of a `plan` run even unwrapped. Spillway's failures
 * are one line and never show help, and yargs lays the help out afresh when it is shown, so the cache is
 * skipped unless help is asked for. (yargs' internal methods are untyped; without them nothing changes.)
 */
function skipHelpCache(cli: Argv): void {
  const usage = (cli as unknown as YargsInternals).getInternalMethods?.().getUsageInstance();
  if (usage) usage.cacheHelpMessage = () => undefined;
}

/**
 * `--flag -` means standard input; yargs would read a lone "-" as a positional, so join it to its flag.
 * A lone "-" positional (`simulate -`) becomes STDIN_ARGUMENT, which yargs keeps (it would make "-" an
 * empty string), and is turned back into "-" before any handler sees it.
 */
function joinStdinValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      out.push(...args.slice(i));
      break;
    }
    if (arg.startsWith("--") && !arg.includes("=") && args[i + 1] === "-") {
      out.push(`${arg}=-`);
      i++;
    } else out.push(arg === "-" ? STDIN_ARGUMENT : arg);
  }
  return out;
}

export async function main(args: string[]): Promise<number> {
  try {
    checkGlobalSwitches(args);
    await (await buildCli(joinStdinValues(args))).parseAsync();
    return EXIT_OK;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`spillway: ${oneLine(usageMessage(error.message.replaceAll(STDIN_ARGUMENT, "-"), args))}\n`);
      return EXIT_BAD_INPUT;
    }
    if (error instanceof InputError || error instanceof EngineUnsupportedError) {
      process.stderr.write(`spillway: ${oneLine(error.message)}\n`);
      return EXIT_BAD_INPUT;
    }
    if (error instanceof PlanError) {
      process.stderr.write(`spillway: ${error.message}\n`);
      return EXIT_FAILURE;
    }
    process.stderr.write(`spillway: internal error: ${oneLine((error as Error).message ?? String(error))}\n`);
    if (process.env.SPILLWAY_DEBUG) process.stderr.write(`${(error as Error).stack}\n`);
    return EXIT_FAILURE;
  }
}

/** Whether this module is the program node started (not imported, as the in-process tests do). */
function isEntryPoint(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntryPoint())
  main(hideBin(process.argv)).then((code) => {
    process.exitCode = code;
  });
