/**
 * The discrete-event engine. Each resource serves one task at a time; among the tasks that are ready
 * when it frees up it takes the one issued first (lowest id), as a stream would. Completions are
 * processed in (time, id) order, so equal timestamps always resolve the same way. Tasks may be added
 * while running (the schedule is generated a token ahead); a task added after its dependencies have
 * finished counts as a late addition, which the builder is designed never to cause.
 */

import { RESOURCES, type Resource } from "../core/resources.js";
import { MinHeap } from "./event-queue.js";
import type { Task } from "./task.js";

export interface EngineObserver {
  onStart?(task: Task): void;
  onEnd?(task: Task): void;
}

const EMPTY: Task[] = [];

export class Engine {
  now = 0;
  tasksRun = 0;
  lateAdditions = 0;
  private readonly ready = new Map<Resource, MinHeap<Task>>();
  private readonly busy = new Map<Resource, Task | undefined>();
  private readonly completions = new MinHeap<Task>((a, b) => a.end < b.end || (a.end === b.end && a.id < b.id));
  private readonly instant: Task[] = [];

  constructor(private readonly observer: EngineObserver = {}) {
    for (const r of RESOURCES) {
      this.ready.set(r, new MinHeap<Task>((a, b) => a.id < b.id));
      this.busy.set(r, undefined);
    }
  }

  /** Adds a task whose dependencies were all added before it. */
  add(task: Task): void {
    task.pending = 0;
    let latestDependency = 0;
    for (const dep of task.deps) {
      if (!dep.done) {
        task.pending++;
        dep.dependents.push(task);
      } else latestDependency = Math.max(latestDependency, dep.end);
    }
    if (task.pending === 0) {
      if (task.deps.length > 0 && latestDependency < this.now) this.lateAdditions++;
      this.makeReady(task);
    }
  }

  private makeReady(task: Task): void {
    if (task.resource === "none") this.instant.push(task);
    else this.ready.get(task.resource)!.push(task);
  }

  private startIdle(): void {
    for (;;) {
      while (this.instant.length > 0) {
        const task = this.instant.shift()!;
        task.start = this.now;
        task.end = this.now;
        this.observer.onStart?.(task);
        this.finish(task);
      }
      let started = false;
      for (const r of RESOURCES) {
        if (this.busy.get(r)) continue;
        const task = this.ready.get(r)!.pop();
        if (!task) continue;
        task.start = this.now;
        task.end = this.now + task.seconds;
        this.busy.set(r, task);
        this.completions.push(task);
        this.observer.onStart?.(task);
        started = true;
      }
      if (!started && this.instant.length === 0) return;
    }
  }

  private finish(task: Task): void {
    this.tasksRun++;
    task.done = true;
    this.observer.onEnd?.(task);
    const dependents = task.dependents;
    for (let i = 0; i < dependents.length; i++) {
      const dependent = dependents[i]!;
      if (--dependent.pending === 0) this.makeReady(dependent);
    }
    task.dependents = EMPTY;
    // Finished tasks are only read for their end time: drop references so old tokens can be collected.
    task.deps = EMPTY;
  }

  /** Runs until no task is left. Returns the makespan in seconds. */
  run(): number {
    this.startIdle();
    for (;;) {
      const task = this.completions.pop();
      if (!task) break;
      this.now = task.end;
      this.busy.set(task.resource as Resource, undefined);
      this.finish(task);
      this.startIdle();
    }
    return this.now;
  }

  /** Tasks still waiting (dependencies never finished): a schedule bug if non-zero after run(). */
  waiting(): number {
    let n = 0;
    for (const heap of this.ready.values()) n += heap.size;
    return n + this.completions.size;
  }
}

/** Creates tasks with ids in issue order, starting from zero for each simulation. */
export class TaskFactory {
  private next = 0;

  make(fields: Omit<Task, "id" | "pending" | "dependents" | "start" | "end" | "done">): Task {
    // One fixed object shape for every task keeps the engine's property accesses monomorphic.
    return {
      id: this.next++,
      kind: fields.kind,
      resource: fields.resource,
      seconds: fields.seconds,
      bytes: fields.bytes,
      token: fields.token,
      layer: fields.layer,
      batch: fields.batch,
      deps: fields.deps,
      allocate: fields.allocate,
      free: fields.free,
      pending: 0,
      dependents: [],
      start: NaN,
      end: NaN,
      done: false,
    };
  }
}
