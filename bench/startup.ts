/**
 * CLI startup, side by side: `spillway --help`, `models`, `hardware` and `devices` against a script that
 * only imports yargs and prints a help (the floor any yargs CLI pays). Fresh processes, interleaved, the
 * median of several; the target is within 1.5x of the floor.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../cli/main.js", import.meta.url));
const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const YARGS_ONLY = 'import yargs from "yargs"; yargs(process.argv.slice(1)).scriptName("x").help().parse();';
const RUNS = 7;
const TARGET_RATIO = 1.5;

function wallMs(args: string[]): number {
  const started = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: PACKAGE_ROOT, encoding: "utf8" });
  const ms = performance.now() - started;
  if (r.status !== 0) throw new Error(`${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function benchStartup(): void {
  const cases: [string, string[]][] = [
    ["yargs only (floor)", ["--input-type=module", "-e", YARGS_ONLY, "--help"]],
    ["spillway --help", [CLI, "--help"]],
    ["spillway models", [CLI, "models"]],
    ["spillway hardware", [CLI, "hardware"]],
    ["spillway devices", [CLI, "devices"]],
  ];
  const samples = cases.map(() => [] as number[]);
  for (let run = 0; run < RUNS; run++) cases.forEach(([, args], i) => samples[i]!.push(wallMs(args)));
  const floor = median(samples[0]!);
  console.log(
    `CLI startup (fresh processes, median of ${RUNS}, interleaved; target within ${TARGET_RATIO}x of the floor)`,
  );
  cases.forEach(([name], i) => {
    const ms = median(samples[i]!);
    const ratio = ms / floor;
    console.log(
      `  ${name.padEnd(20)} ${ms.toFixed(0).padStart(5)} ms  ${ratio.toFixed(2)}x${i > 0 ? (ratio <= TARGET_RATIO ? "  ok" : "  OVER TARGET") : ""}`,
    );
  });
}
