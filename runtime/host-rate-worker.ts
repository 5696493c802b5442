/**
 * One worker thread of the host kernel-rate measurement: runs each command the measuring thread
 * starts (runtime/host-rate-kernels.ts) on its slice of the shared arrays and counts itself done.
 */
import { workerData } from "node:worker_threads";
import {
  COMMAND,
  CONTROL,
  type HostRateBuffers,
  type KernelCommand,
  runKernel,
  sliceOf,
  viewsOf,
} from "./host-rate-kernels.js";

const data = workerData as HostRateBuffers & { readonly index: number; readonly count: number };
const control = new Int32Array(data.control);
const views = viewsOf(data);
const [start, end] = sliceOf(views.a.length, data.index, data.count);

let seen = Atomics.load(control, CONTROL.generation);
Atomics.add(control, CONTROL.ready, 1);
Atomics.notify(control, CONTROL.ready);
for (;;) {
  Atomics.wait(control, CONTROL.generation, seen);
  seen = Atomics.load(control, CONTROL.generation);
  const command = Atomics.load(control, CONTROL.command);
  if (command === COMMAND.stop) break;
  runKernel(command as KernelCommand, views, start, end);
  Atomics.add(control, CONTROL.done, 1);
  Atomics.notify(control, CONTROL.done);
}
