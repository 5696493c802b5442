/**
 * A child process that runs fuzz cases through the CLI in-process (test/fuzz/cli-in-process.ts), one
 * at a time, for the fuzz test's pool: it gets `{ id, args, cwd }` messages and answers `{ id, result }`.
 * The parent kills it when a case runs past its time limit (a hang), and starts another.
 */
import { runCliInProcess } from "./cli-in-process.js";

interface CaseMessage {
  readonly id: number;
  readonly args: readonly string[];
  readonly cwd: string;
}

process.env.NO_COLOR = "1";
process.on("message", (message: CaseMessage) => {
  process.chdir(message.cwd);
  void runCliInProcess(message.args).then((result) => process.send?.({ id: message.id, result }));
});
process.send?.({ ready: true });
