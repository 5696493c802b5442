/**
 * A text Gantt chart of one layer's window of a simulated schedule: one lane per resource, one letter
 * per kind of task, so the overlap (or the stalls) of a schedule can be read in a terminal.
 */
import { RESOURCE_SHORT_NAMES, RESOURCES, type Resource } from "../core/resources.js";
import type { Task, TaskKind } from "./task.js";

const LETTER: Partial<Record<TaskKind, string>> = {
  "load-weights": "W",
  "read-weights": "W",
  "dequantize-weights": "Q",
  "read-cache": "K",
  "load-cache": "K",
  "store-cache": "S",
  "write-cache": "S",
  "read-hidden": "H",
  "load-hidden": "H",
  "store-hidden": "h",
  "write-hidden": "h",
  compute: "C",
  "compute-pre": "C",
  "compute-post": "C",
  "cpu-attention": "A",
  "send-qkv": "q",
  "return-attention": "a",
  "lm-head": "L",
  "load-head": "E",
  "read-head": "E",
  "store-tokens": "t",
};

export interface TimelineSpan {
  readonly resource: Resource;
  readonly kind: TaskKind;
  readonly batch: number;
  readonly layer: number;
  readonly start: number;
  readonly end: number;
}

/** Collects the tasks around one (token, layer) while a simulation runs. */
export class TimelineRecorder {
  readonly spans: TimelineSpan[] = [];

  constructor(
    readonly token: number,
    readonly layer: number,
  ) {}

  record(task: Task): void {
    if (task.resource === "none" || task.token !== this.token || Math.abs(task.layer - this.layer) > 1) return;
    this.spans.push({
      resource: task.resource,
      kind: task.kind,
      batch: task.batch,
      layer: task.layer,
      start: task.start,
      end: task.end,
    });
  }

  render(width = 96): string {
    const own = this.spans.filter((s) => s.layer === this.layer && s.resource === "gpu");
    if (own.length === 0) return "";
    const from = Math.min(...own.map((s) => s.start));
    const to = Math.max(...own.map((s) => s.end));
    const span = Math.max(to - from, 1e-12);
    const lines = [
      `Timeline of layer ${this.layer}, token ${this.token} (${((to - from) * 1e3).toFixed(2)} ms across; digits = GPU batch of that layer's compute)`,
    ];
    for (const resource of RESOURCES) {
      const lane = new Array<string>(width).fill(".");
      let any = false;
      for (const s of this.spans) {
        if (s.resource !== resource || s.end <= from || s.start >= to) continue;
        any = true;
        const a = Math.max(0, Math.floor(((s.start - from) / span) * width));
        const b = Math.min(width, Math.max(a + 1, Math.ceil(((s.end - from) / span) * width)));
        const letter =
          s.kind.startsWith("compute") && s.layer === this.layer && s.batch >= 0 && s.batch < 10
            ? String(s.batch)
            : (LETTER[s.kind] ?? "#");
        for (let i = a; i < b; i++) lane[i] = letter;
      }
      if (any) lines.push(`${RESOURCE_SHORT_NAMES[resource].padEnd(12)}|${lane.join("")}|`);
    }
    lines.push(
      "W weights  Q dequantise  K KV load  S KV store  H/h hidden load/store  C compute (other layers)  A CPU attention  q/a q,k,v down / output up  L LM head",
    );
    return lines.join("\n");
  }
}
