/**
 * The command line's shape, checked against a command's declared flags before any work: yargs on its
 * own accepts a value-taking flag given twice (as an array no handler expects), a flag whose value is
 * missing (as ""), a switch given a value (`--json=2`) and words after `--`. Each is refused here as
 * an InputError naming the flag, so the CLI prints one line and exits 2.
 */
import { InputError } from "../core/input-error.js";

/** A lone "-" (standard input) as a positional argument, which yargs would turn into "" otherwise. */
export const STDIN_ARGUMENT = "\u0000-";

/** The flags a command declares, as yargs' getOptions() lists them. */
export interface DeclaredFlags {
  readonly boolean: readonly string[];
  readonly array: readonly string[];
  readonly count?: readonly string[];
  readonly key: Readonly<Record<string, unknown>>;
}

const SWITCH_VALUES = new Set(["true", "false"]);

/** A negative number is a value (`--gen-len -5`), not a flag; yargs reads it as one too. */
const isNegativeNumber = (arg: string) => /^-\d/.test(arg);

/** Switches every command has, checked before yargs acts on them (`--help=3` would print help). */
export function checkGlobalSwitches(args: readonly string[]): void {
  const end = args.indexOf("--");
  if (end >= 0 && end < args.length - 1)
    throw new InputError(
      "--",
      undefined,
      `expected nothing after it (Spillway takes no pass-through arguments), got ${JSON.stringify(args[end + 1])}`,
    );
  for (const arg of args.slice(0, end < 0 ? args.length : end)) {
    const match = /^--(help|version)=(.*)$/s.exec(arg);
    if (match) throw new InputError(`--${match[1]}`, undefined, `takes no value, got ${JSON.stringify(match[2])}`);
  }
}

/**
 * Refuses, for the command's `flags`: a flag that takes one value given more than once, a value-taking
 * flag with no value after it, and a switch given a value other than true or false.
 */
export function checkFlagSyntax(args: readonly string[], argv: Record<string, unknown>, flags: DeclaredFlags): void {
  const switches = new Set(flags.boolean);
  const lists = new Set(flags.array);
  const counts = new Set(flags.count ?? []);
  const declared = new Set(Object.keys(flags.key));
  const takesValue = (name: string) => declared.has(name) && !switches.has(name) && !counts.has(name);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") break;
    const withValue = /^--([^=]+)=(.*)$/s.exec(arg);
    if (withValue) {
      const [, written, value] = withValue;
      const name = switches.has(written!) ? written! : written!.replace(/^no-/, "");
      if (switches.has(name) && !SWITCH_VALUES.has(value!))
        throw new InputError(
          `--${written}`,
          undefined,
          `is a switch and takes no value (or true/false), got ${JSON.stringify(value)}`,
        );
      continue;
    }
    if (!arg.startsWith("--")) continue;
    const name = arg.slice(2);
    if (!takesValue(name)) continue;
    const next = args[i + 1];
    if (next === undefined || next === "--" || (next.startsWith("-") && next !== "-" && !isNegativeNumber(next)))
      throw new InputError(
        arg,
        undefined,
        `expected a value after it${next === undefined ? ", got the end of the command line" : `, got the flag ${next}`}`,
      );
  }
  for (const name of declared) {
    if (!takesValue(name) || lists.has(name) || /[A-Z]/.test(name)) continue;
    if (Array.isArray(argv[name]) && args.some((a) => a === `--${name}` || a.startsWith(`--${name}=`)))
      throw new InputError(`--${name}`, undefined, "given twice; expected it once");
  }
}

/** argv with every STDIN_ARGUMENT (a lone "-" positional) turned back into "-". */
export function restoreStdinArguments(argv: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(argv)) {
    if (value === STDIN_ARGUMENT) argv[key] = "-";
    else if (Array.isArray(value) && value.includes(STDIN_ARGUMENT))
      argv[key] = value.map((v) => (v === STDIN_ARGUMENT ? "-" : v));
  }
}
