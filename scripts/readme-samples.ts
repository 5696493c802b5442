/**
 * The README's sample outputs, generated from real runs so they cannot go stale.
 *
 * A sample in README.md is a fenced block right after a marker line `<!-- sample: ID -->`. Each ID is a
 * command below; `node dist/scripts/readme-samples.js` runs them and rewrites the blocks (README written
 * atomically), `--check` prints the blocks that differ and exits 1 (test/integration/readme-samples.test.ts
 * runs it). Numbers that vary by machine (search time; everything a measured run prints) are written
 * with a leading `~` and compared as "some number". Samples of measured runs (`measured: true`) need a
 * minute of real work, so they run only with `--measured`; without it their blocks are left as they are.
 * Samples that plan large models on clusters (`slow: true`: OPT-175B on four T4 nodes, a sweep over every
 * shipped profile) take minutes on two cores, so they run only with `--slow` (`npm run readme-samples --
 * --slow`), and the test's check leaves them out; they are generated all the same, never hand-copied.
 * A command's argument `{repo}/PATH` names a file of this repository (the commands run in a temporary folder).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "../core/write-file-atomic.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const MAIN = join(ROOT, "dist", "cli", "main.js");

export interface Sample {
  readonly id: string;
  /** Commands run in order in one temporary folder; the last one's stdout is the sample. */
  readonly commands: readonly (readonly string[])[];
  /** The part of the output the README shows (default: all of it). */
  readonly select?: (output: string) => string;
  /** Numbers that vary by machine: each match's numbers are written as ~N. */
  readonly varying?: readonly RegExp[];
  /** A measured run: every number varies, and it runs only with --measured. */
  readonly measured?: boolean;
  /** Minutes of planning on two cores: it runs only with --slow. */
  readonly slow?: boolean;
}

export const SAMPLES: readonly Sample[] = [
  { id: "plan-default", commands: [["plan"]], varying: [/in \d+ ms$/m] },
  {
    id: "simulate-default",
    commands: [
      ["plan", "--out", "plan.json", "--quiet"],
      ["simulate", "plan.json", "--timeline"],
    ],
  },
  {
    id: "plan-compare-default",
    commands: [["plan", "--compare"]],
    select: (output) => output.slice(output.indexOf("Baselines:")),
  },
  {
    id: "plan-pipeline",
    slow: true,
    commands: [["plan", "--model", "opt-175b", "--hardware", "4x1-t4-gcp"]],
    select: (output) => output.slice(output.indexOf("Pipeline")),
  },
  {
    id: "simulate-pipeline",
    slow: true,
    commands: [
      ["plan", "--model", "opt-175b", "--hardware", "4x1-t4-gcp", "--out", "p175.json", "--quiet"],
      ["simulate", "p175.json", "--timeline"],
    ],
  },
  {
    id: "plan-tensor-parallel",
    slow: true,
    commands: [["plan", "--model", "opt-66b", "--hardware", "1x8-a100-80g"]],
    select: (output) => output.slice(output.indexOf("Pipeline")),
  },
  {
    id: "sweep-opt-30b",
    slow: true,
    commands: [["sweep", "--model", "opt-30b", "--prices", "{repo}/docs/example-prices.csv"]],
  },
  {
    id: "compare-cpu",
    measured: true,
    commands: [
      ["profile", "--backend", "cpu", "--quick", "--out", "cpu.json", "--quiet"],
      ["synth-weights", "--model", "opt-125m", "--out", "w", "--quiet"],
      [
        "compare",
        "--model",
        "w",
        "--weights",
        "w",
        "--hardware",
        "cpu.json",
        "--gpu-mem",
        "0.5",
        "--prompt-len",
        "32",
        "--gen-len",
        "8",
        "--gbs",
        "4",
        "--nb",
        "2",
        "--percent",
        "0",
        "100",
        "0",
        "100",
        "100",
        "0",
      ],
    ],
  },
];

/** A number that is not part of a word (the 2 of "h2d" is not one). */
const NUMBER = /(?<![A-Za-z\d.])[-+]?\d+(?:\.\d+)?/g;

/** Marks the numbers inside every varying match (a measured sample: every number) with a leading ~. */
export function markVarying(text: string, sample: Pick<Sample, "varying" | "measured">): string {
  const mark = (s: string) => s.replace(NUMBER, (n) => `~${n}`);
  if (sample.measured)
    return text
      .split("\n")
      .map((line) => (/^\s*[a-z ()/]*$/i.test(line) ? line : mark(line)))
      .join("\n");
  let out = text;
  for (const pattern of sample.varying ?? [])
    out = out.replace(
      new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`),
      mark,
    );
  return out;
}

/** The text with every ~number replaced by ~N, for comparing outputs whose marked numbers may differ. */
export function maskVarying(text: string): string {
  return text.replace(/~[-+]?\d+(?:\.\d+)?/g, "~N");
}

/** The README's sample blocks by ID: the text between the fences after each marker, and where it sits. */
export function sampleBlocks(readme: string): Map<string, { start: number; end: number; text: string }> {
  const blocks = new Map<string, { start: number; end: number; text: string }>();
  const marker = /^<!-- sample: ([a-z0-9-]+) -->\n```[a-z]*\n/gm;
  for (let m = marker.exec(readme); m; m = marker.exec(readme)) {
    const start = m.index + m[0].length;
    const end = readme.indexOf("\n```", start - 1);
    if (end < 0) throw new Error(`README.md: the sample block ${m[1]} has no closing fence`);
    if (blocks.has(m[1]!)) throw new Error(`README.md: two sample blocks named ${m[1]}`);
    blocks.set(m[1]!, { start, end: end + 1, text: readme.slice(start, end + 1) });
  }
  return blocks;
}

/** Runs a sample's commands in a fresh folder and returns its README text (varying numbers marked). */
export function runSample(sample: Sample): string {
  const dir = mkdtempSync(join(tmpdir(), `spillway-sample-${sample.id}-`));
  try {
    let stdout = "";
    for (const args of sample.commands) {
      const argv = args.map((a) => (a.startsWith("{repo}/") ? join(ROOT, a.slice("{repo}/".length)) : a));
      const r = spawnSync(process.execPath, [MAIN, ...argv], {
        cwd: dir,
        encoding: "utf8",
        env: { ...process.env, NO_COLOR: "1" },
        maxBuffer: 64 << 20,
      });
      if (r.status !== 0 && !(r.status === 1 && args === sample.commands.at(-1)))
        throw new Error(`sample ${sample.id}: spillway ${args.join(" ")} exited ${r.status}: ${r.stderr.trim()}`);
      stdout = r.stdout;
    }
    const shown = (sample.select ?? ((s: string) => s))(stdout).replace(/\s+$/, "");
    if (shown === "") throw new Error(`sample ${sample.id}: the command printed nothing to show`);
    return `${markVarying(shown, sample)}\n`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The IDs whose README block differs from a fresh run (marked numbers compared as any number). */
export function staleSamples(readme: string, fresh: ReadonlyMap<string, string>): string[] {
  const blocks = sampleBlocks(readme);
  const stale: string[] = [];
  for (const [id, text] of fresh) {
    const block = blocks.get(id);
    if (!block || maskVarying(block.text) !== maskVarying(text)) stale.push(id);
  }
  return stale;
}

/** README with the blocks of `fresh` replaced. */
export function withSamples(readme: string, fresh: ReadonlyMap<string, string>): string {
  const blocks = [...sampleBlocks(readme)].filter(([id]) => fresh.has(id)).sort((a, b) => b[1].start - a[1].start);
  let out = readme;
  for (const [id, block] of blocks) out = out.slice(0, block.start) + fresh.get(id)! + out.slice(block.end);
  return out;
}

function main(argv: readonly string[]): number {
  const check = argv.includes("--check");
  const measured = argv.includes("--measured");
  const slow = argv.includes("--slow");
  const only = argv.find((a) => a.startsWith("--only="))?.slice("--only=".length);
  const readmePath = join(ROOT, "README.md");
  const readme = readFileSync(readmePath, "utf8");
  const blocks = sampleBlocks(readme);
  const chosen = SAMPLES.filter((s) => (measured || !s.measured) && (slow || !s.slow) && (!only || s.id === only));
  const missing = SAMPLES.filter((s) => !blocks.has(s.id)).map((s) => s.id);
  if (missing.length > 0) {
    process.stderr.write(`README.md has no sample block for ${missing.join(", ")}\n`);
    return 1;
  }
  const fresh = new Map(chosen.map((s) => [s.id, runSample(s)]));
  const stale = staleSamples(readme, fresh);
  if (check) {
    for (const id of stale)
      process.stderr.write(
        `README.md sample ${id} is stale (regenerate with: npm run readme-samples):\n--- README\n${blocks.get(id)!.text}--- now\n${fresh.get(id)}`,
      );
    return stale.length > 0 ? 1 : 0;
  }
  if (stale.length > 0) writeFileAtomic(readmePath, withSamples(readme, fresh));
  process.stdout.write(stale.length > 0 ? `Regenerated ${stale.join(", ")}\n` : "Every sample is current\n");
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  process.exitCode = main(process.argv.slice(2));
