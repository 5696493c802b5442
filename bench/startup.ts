/**
 * CLI startup, side by side: `spillway --help`, `models`, `hardware` and `devices` against a script that
 * only imports yargs and prints a help (the floor any yargs CLI pays), and node starting with nothing to
 * do for scale. Fresh processes, interleaved, the median of several; the target is within 1.5x of the floor.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../cli/main.js", import.meta.url));
const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const YARGS_ONLY = 'import yargs from "yargs"; yargs(process.argv.slice(1)).scriptName("x").help().parse();';
const RUNS = 7;
const TARGET_RATIO = 1.5;

/**
 * The floor's arguments: `--` ends node's own options, so `--help` reaches the script. Without it node
 * takes `--help` itself and prints its own help without ever loading yargs (the floor before 2026-12-03
 * was that: node's help, about half the time of a real yargs start).
 */
const FLOOR_ARGS = ["--input-type=module", "-e", YARGS_ONLY, "--", "--help"];
/** What yargs' own help prints and node's help does not: proof the floor ran yargs. */
const YARGS_HELP_LINE = /--version\s+Show version number/;

function wallMs(args: string[], expectStdout?: RegExp): number {
  const started = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: PACKAGE_ROOT, encoding: "utf8" });
  const ms = performance.now() - started;
  if (r.status !== 0) throw new Error(`${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
  if (expectStdout && !expectStdout.test(r.stdout))
    throw new Error(`${args.join(" ")}: expected its output to match ${expectStdout}, got ${r.stdout.slice(0, 200)}`);
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function benchStartup(): void {
  const cases: [string, string[], RegExp?][] = [
    ["yargs only (floor)", FLOOR_ARGS, YARGS_HELP_LINE],
    ["spillway --help", [CLI, "--help"]],
    ["spillway models", [CLI, "models"]],
    ["spillway hardware", [CLI, "hardware"]],
    ["spillway devices", [CLI, "devices"]],
    ["node alone", ["-e", "0"]],
  ];
  const samples = cases.map(() => [] as number[]);
  for (let run = 0; run < RUNS; run++) cases.forEach(([, args, expect], i) => samples[i]!.push(wallMs(args, expect)));
  const floor = median(samples[0]!);
  console.log(
    `CLI startup (fresh processes, median of ${RUNS}, interleaved; target within ${TARGET_RATIO}x of the floor)`,
  );
  cases.forEach(([name], i) => {
    const ms = median(samples[i]!);
    const ratio = ms / floor;
    console.log(
      `  ${name.padEnd(20)} ${ms.toFixed(0).padStart(5)} ms  ${ratio.toFixed(2)}x${name.startsWith("spillway") ? (ratio <= TARGET_RATIO ? "  ok" : "  OVER TARGET") : ""}`,
    );
  });
}
