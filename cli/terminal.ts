/**
 * Terminal conventions shared by the commands. Spillway prints no colour; the only escape sequences it
 * could write are the progress bar's cursor movements (cli-progress), so those are drawn only on an
 * interactive terminal that has not opted out: not when NO_COLOR is set to any non-empty value
 * (https://no-color.org), not under TERM=dumb, and never when the stream is a pipe or a file. Otherwise
 * progress is plain lines.
 */
export function plainTerminal(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env.NO_COLOR !== undefined && env.NO_COLOR !== "") || env.TERM === "dumb";
}

/** Whether a redrawing progress bar may be drawn on this stream. */
export function fancyProgress(stream: { readonly isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(stream.isTTY) && !plainTerminal(env);
}

/** The `--help` epilog every command shows. */
export const EXIT_CODES_EPILOG = [
  "Exit codes: 0 ok; 1 failure (no policy fits, a plan overflows, or a run's tokens differ from the reference); 2 bad input (unknown or malformed flags, unreadable or invalid files).",
  "--json prints the machine-readable result on stdout, even with --quiet; --quiet prints nothing else but errors (no text, no progress). No colour is ever printed; with NO_COLOR set, TERM=dumb or output that is not a terminal, progress is plain lines.",
].join("\n\n");

/** Seconds a usually quick phase (a plan search, a simulation) runs before its progress is shown. */
export const QUICK_PHASE_DELAY_SECONDS = 1.5;

/**
 * The sentence a command's `--help` gives on its progress: what it counts, and whether it shows only
 * once the work has lasted QUICK_PHASE_DELAY_SECONDS.
 */
export function progressHelp(counts: string, options: { readonly delayed?: boolean } = {}): string {
  return `Progress goes to stderr, never stdout (${counts})${options.delayed ? `, once the work has lasted ${QUICK_PHASE_DELAY_SECONDS} s` : ""}: a redrawing bar on a terminal, otherwise a line at every 10% and at most one every 5 s between; none with --quiet.`;
}
