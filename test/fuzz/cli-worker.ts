/**
 * A worker process that runs command lines through the CLI's entry function (test/fuzz/fuzz-worker.ts),
 * for tests: no spawn per command line, and the test process's own stdout (the test runner's channel)
 * is never touched. A command line that runs past its time limit gets the worker killed (a hang) and
 * the next one starts a fresh worker.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";

export interface WorkerOutcome {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
  /** No answer within the limit: the worker was killed. */
  readonly hung?: boolean;
}

const WORKER = fileURLToPath(new URL("./fuzz-worker.js", import.meta.url));

export class CliWorker {
  private child: ChildProcess | undefined;
  private ready: Promise<void> | undefined;
  private nextId = 0;

  constructor(private readonly limitMs = 30_000) {}

  private start(): Promise<void> {
    const child = fork(WORKER, [], { stdio: ["ignore", "ignore", "ignore", "ipc"] });
    this.child = child;
    return new Promise((resolve) => {
      child.once("message", () => resolve());
    });
  }

  /** Runs `args` with `cwd` as the working folder. */
  async run(args: readonly string[], cwd = process.cwd()): Promise<WorkerOutcome> {
    this.ready ??= this.start();
    await this.ready;
    const child = this.child!;
    const id = this.nextId++;
    return new Promise((resolve) => {
      const finish = (outcome: WorkerOutcome) => {
        clearTimeout(timer);
        child.off("message", onMessage);
        child.off("exit", onExit);
        resolve(outcome);
      };
      const onMessage = (message: { id?: number; result?: WorkerOutcome }) => {
        if (message.id === id && message.result) finish(message.result);
      };
      const onExit = (code: number | null, signal: string | null) => {
        this.ready = undefined;
        finish({ status: -1, stdout: "", stderr: `worker ended (code ${code}, signal ${signal})` });
      };
      const timer = setTimeout(() => {
        child.off("exit", onExit);
        child.kill("SIGKILL");
        this.ready = undefined;
        finish({ status: -1, stdout: "", stderr: "", hung: true });
      }, this.limitMs);
      child.on("message", onMessage);
      child.on("exit", onExit);
      child.send({ id, args, cwd });
    });
  }

  stop(): void {
    this.child?.kill("SIGKILL");
    this.ready = undefined;
  }
}
