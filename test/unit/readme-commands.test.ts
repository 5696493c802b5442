/**
 * Every `spillway` command line the README shows (shell blocks, inline code, the command table and the
 * flag table under "### `spillway plan`") names a command that exists and only flags that command
 * defines, checked against the yargs definitions themselves. A shell line whose comment says it is an
 * error example ("exit 2", "refused", "error"), or a block after `<!-- error example -->`, is skipped.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import yargs, { type Argv } from "yargs";
import { COMMAND_NAMES, type CommandName } from "../../cli/command-heads.js";
import { COMMAND_LOADERS } from "../../cli/command-index.js";
import type { SpillwayCommand } from "../../cli/command-module.js";

const README = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");

interface Mention {
  readonly line: number;
  readonly text: string;
}

const ERROR_EXAMPLE = /#.*\b(exit 2|refused|error)\b/i;

/** The command lines of the README's shell blocks (continuations joined, comments dropped) and inline code. */
function readmeCommandLines(readme: string): Mention[] {
  const lines = readme.split("\n");
  const found: Mention[] = [];
  let fence: string | undefined;
  let skipBlock = false;
  let errorMarker = false;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const opening = /^```(\w*)/.exec(raw);
    if (opening) {
      if (fence === undefined) {
        fence = opening[1] ?? "";
        skipBlock = errorMarker;
        errorMarker = false;
      } else fence = undefined;
      continue;
    }
    if (fence === undefined) {
      if (/<!--\s*error example\s*-->/.test(raw)) errorMarker = true;
      // Inline code; a table cell writes | as \|.
      for (const span of raw.replaceAll("\\|", "\u0000").matchAll(/`((?:npx )?spillway [^`]+)`/g))
        found.push({ line: i + 1, text: span[1]!.replaceAll("\u0000", "|") });
      continue;
    }
    if (!["sh", "bash", "console", ""].includes(fence) || skipBlock) continue;
    let text = raw;
    const start = i;
    while (text.endsWith("\\") && i + 1 < lines.length) text = text.slice(0, -1) + lines[++i]!;
    if (ERROR_EXAMPLE.test(text)) continue;
    const command = text.replace(/\s#.*$/, "");
    for (const part of command.split(/&&|;|\|\|/))
      if (/(^|\s)(npx )?spillway\s/.test(part)) found.push({ line: start + 1, text: part.trim() });
  }
  return found;
}

/** The flags of the README's table under a "### `spillway CMD`" heading: [command, flag, line]. */
function flagTableMentions(readme: string): { command: string; flag: string; line: number }[] {
  const out: { command: string; flag: string; line: number }[] = [];
  let command: string | undefined;
  readme.split("\n").forEach((raw, index) => {
    const heading = /^#{2,4} `spillway ([a-z-]+)`/.exec(raw);
    if (heading) command = heading[1];
    else if (/^#{2,4} /.test(raw)) command = undefined;
    if (command === undefined || !raw.startsWith("| `--")) return;
    const firstCell = raw.split(" | ")[0]!;
    for (const flag of firstCell.matchAll(/`(--[a-z0-9-]+)/g)) out.push({ command, flag: flag[1]!, line: index + 1 });
  });
  return out;
}

interface Flags {
  readonly names: ReadonlySet<string>;
  readonly booleans: ReadonlySet<string>;
}

function flagsOf(y: Argv): Flags {
  const options = (y as unknown as { getOptions(): unknown }).getOptions() as {
    key: Record<string, unknown>;
    alias: Record<string, string[]>;
    boolean: string[];
  };
  const names = new Set(Object.keys(options.key));
  for (const [name, aliases] of Object.entries(options.alias)) for (const a of [name, ...aliases]) names.add(a);
  return { names, booleans: new Set(options.boolean) };
}

interface YargsInternals {
  getInternalMethods(): {
    getCommandInstance(): { getCommandHandlers(): Record<string, { builder: (y: Argv) => Argv | undefined }> };
  };
}

/** The flags a command (or `trace SUB`) defines, from its own yargs builder. */
async function commandFlags(command: CommandName, sub?: string): Promise<Flags> {
  const module = (await COMMAND_LOADERS[command]()) as unknown as SpillwayCommand<object>;
  const y = yargs([]);
  const builder = module.builder as ((y: Argv) => Argv | undefined) | undefined;
  const built = builder?.(y) ?? y;
  if (sub === undefined) return flagsOf(built);
  const handlers = (built as unknown as YargsInternals).getInternalMethods().getCommandInstance().getCommandHandlers();
  const handler = handlers[sub];
  assert.ok(handler, `spillway ${command} ${sub}: no such subcommand (${Object.keys(handlers).join(", ")})`);
  const y2 = yargs([]);
  return flagsOf(handler.builder(y2) ?? y2);
}

function flagProblem(flag: string, flags: Flags): string | undefined {
  if (flags.names.has(flag)) return undefined;
  if (flag.startsWith("no-") && flags.booleans.has(flag.slice(3))) return undefined;
  return `--${flag} is not a flag of this command`;
}

/** Tokens of a command line that are flags: `[--price NAME=DOLLARS` -> price, `--json]` -> json. */
function flagTokens(words: readonly string[]): string[] {
  return words
    .map((w) => w.replace(/^[[(]+/, "").replace(/[\]),.;:]+$/, ""))
    .filter((w) => w.startsWith("--") && w.length > 2 && !w.endsWith("…"))
    .map((w) => w.slice(2).split("=")[0]!);
}

test("the README's command-line scanner finds shell lines, continuations, inline code and skips error examples", () => {
  const sample = [
    "Run `spillway plan --gbs 4` or `npx spillway trace synth\\|stats`.",
    "```sh",
    "npx spillway plan --model m --out p.json && npx spillway simulate p.json   # check it",
    "npx spillway compare --weights w \\",
    "    --gpu-mem 1",
    "npx spillway plan --bogus   # exit 2: an unknown flag",
    "```",
    "<!-- error example -->",
    "```sh",
    "npx spillway plan --bogus",
    "```",
    "```text",
    "spillway plan --not-a-command-line",
    "```",
  ].join("\n");
  assert.deepEqual(
    readmeCommandLines(sample).map((m) => m.text),
    [
      "spillway plan --gbs 4",
      "npx spillway trace synth|stats",
      "npx spillway plan --model m --out p.json",
      "npx spillway simulate p.json",
      "npx spillway compare --weights w     --gpu-mem 1",
    ],
  );
});

test("every command and flag the README shows exists in the CLI's yargs definitions", async () => {
  const problems: string[] = [];
  const cache = new Map<string, Flags>();
  const flagsFor = async (command: CommandName, sub?: string) => {
    const key = `${command} ${sub ?? ""}`;
    if (!cache.has(key)) cache.set(key, await commandFlags(command, sub));
    return cache.get(key)!;
  };
  const mentions = readmeCommandLines(README);
  assert.ok(mentions.length > 40, `only ${mentions.length} command lines found: the scanner is broken`);
  for (const mention of mentions) {
    const words = mention.text.split(/\s+/).filter(Boolean);
    const at = words.indexOf("spillway");
    const command = words[at + 1];
    if (command === undefined || /^[<[]/.test(command) || command.startsWith("--")) continue;
    if (!(COMMAND_NAMES as readonly string[]).includes(command)) {
      problems.push(`README.md:${mention.line}: spillway ${command}: no such command`);
      continue;
    }
    const rest = words.slice(at + 2);
    const subs =
      command === "trace" && rest[0] && !rest[0].startsWith("-")
        ? rest[0].split("|")
        : [undefined as string | undefined];
    for (const sub of subs) {
      const flags = await flagsFor(command as CommandName, sub);
      for (const flag of flagTokens(sub === undefined ? rest : rest.slice(1))) {
        const problem = flagProblem(flag, flags);
        if (problem) problems.push(`README.md:${mention.line}: spillway ${command}${sub ? ` ${sub}` : ""}: ${problem}`);
      }
    }
  }
  const table = flagTableMentions(README);
  assert.ok(table.length > 20, `only ${table.length} flags in the README's plan table: the scanner is broken`);
  for (const { command, flag, line } of table) {
    const problem = flagProblem(flag.slice(2), await flagsFor(command as CommandName));
    if (problem) problems.push(`README.md:${line}: spillway ${command}: ${problem}`);
  }
  assert.deepEqual(problems, []);
});
