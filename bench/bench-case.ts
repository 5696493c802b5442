/**
 * One bench section, run so that its failure is a printed line, not the end of the bench: a solver that
 * gives up on a busy machine, a CLI that exits non-zero or a missing build prints `  NAME: failed:
 * FIRST LINE OF THE ERROR` and the bench goes on to the next section.
 */
export async function runBenchCase(
  name: string,
  body: () => void | Promise<void>,
  print: (line: string) => void = (line) => console.log(line),
): Promise<boolean> {
  try {
    await body();
    return true;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const firstLine = message.split("\n").find((line) => line.trim() !== "") ?? "(no message)";
    print(`  ${name}: failed: ${firstLine.trim()}`);
    return false;
  }
}
