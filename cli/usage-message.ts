/**
 * yargs' own usage errors as one line in Spillway's words (the CLI's contract: exit 2 with one line on
 * stderr), naming the flag and what was expected, and pointing at the command's own help.
 */
import { COMMAND_NAMES } from "./command-heads.js";

const COMMANDS = `${COMMAND_NAMES.slice(0, -1).join(", ")} or ${COMMAND_NAMES.at(-1)}`;

const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The command the arguments name (the first word that is not a flag), if any. */
function commandOf(args: readonly string[]): string | undefined {
  const first = args.find((a) => !a.startsWith("-"));
  return first && (COMMAND_NAMES as readonly string[]).includes(first) ? first : undefined;
}

function unknownArguments(list: string, args: readonly string[], command: string | undefined): string {
  const names = [...new Set(list.split(", ").map((n) => kebab(n.trim())))];
  // Each unknown name as the user wrote it (`--x`, `--x=v`, `-x`, `--no-x`), or undefined for a word.
  const written = (n: string) =>
    args.find((a) => a === `--${n}` || a.startsWith(`--${n}=`) || a === `-${n}` || a === `--no-${n}`)?.split("=")[0];
  const flags = names.flatMap((n) => written(n) ?? []);
  const words = names.filter((n) => written(n) === undefined);
  const parts: string[] = [];
  if (flags.length) parts.push(`unknown flag${flags.length > 1 ? "s" : ""} ${[...new Set(flags)].join(", ")}`);
  if (words.length)
    parts.push(
      command && !words.includes(command)
        ? `unexpected argument${words.length > 1 ? "s" : ""} ${words.join(", ")}`
        : `unknown command ${words[0]}; expected one of ${COMMANDS}`,
    );
  return parts.join("; ");
}

/** `message` (from yargs' fail handler) for `args` (the command line) as one line, without the "spillway: " prefix. */
export function usageMessage(message: string, args: readonly string[]): string {
  const command = commandOf(args);
  const help = command ? `spillway ${command} --help` : "spillway --help";
  let text: string;
  const unknown = /^Unknown arguments?: (.*)$/s.exec(message);
  const invalid = [...message.matchAll(/Argument: ([^,]+), Given: (.*?), Choices: (.*)$/gm)];
  const missing = /^Missing required arguments?: (.*)$/s.exec(message);
  const positional = /^Not enough non-option arguments: got (\d+), need at least (\d+)$/.exec(message);
  if (unknown) text = unknownArguments(unknown[1]!, args, command);
  else if (invalid.length)
    text = invalid
      .map(([, flag, given, choices]) => `--${flag}: expected one of ${choices!.replaceAll('"', "")}, got ${given}`)
      .join("; ");
  else if (missing)
    text = missing[1]!
      .split(", ")
      .map((f) => `--${f.trim()}: missing`)
      .join("; ");
  else if (positional && command) text = `${command}: missing its argument`;
  else if (positional) text = `name a command: ${COMMANDS}`;
  else text = message.replace(/\s*\n\s*/g, "; ");
  return `${text} (${help})`;
}
