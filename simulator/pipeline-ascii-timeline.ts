/**
 * A text chart of a pipeline's whole run: one lane per stage and per link, time across, each column
 * showing the micro-batch a stage (or link) serves then, or "." where it waits: the pipeline's fill,
 * drain and bubbles are the dots.
 */
import type { PipelineTimeline, TimelineItem } from "../planner/pipeline/pipeline-timeline.js";

export const PIPELINE_TIMELINE_COLUMNS = 100;

function lane(
  items: readonly TimelineItem[],
  laneIndex: number,
  total: number,
  columns: number,
  minShare: number,
): string {
  const cells = new Array<string>(columns).fill(".");
  const busy = new Array<number>(columns).fill(0);
  const largest = new Array<number>(columns).fill(0);
  const width = total / columns;
  for (const item of items) {
    if (item.lane !== laneIndex) continue;
    const first = Math.floor(item.start / width);
    const last = Math.min(columns - 1, Math.floor(Math.max(item.start, item.end - 1e-12) / width));
    for (let c = first; c <= last; c++) {
      const overlap = Math.min(item.end, (c + 1) * width) - Math.max(item.start, c * width);
      busy[c]! += overlap;
      if (overlap > largest[c]!) {
        largest[c] = overlap;
        cells[c] = String(item.microBatch % 10);
      }
    }
  }
  // A stage's column busy less than half the time is a dot (a bubble is not hidden by a sliver); a link's short transfers always show.
  for (let c = 0; c < columns; c++) if (busy[c]! === 0 || busy[c]! < width * minShare) cells[c] = ".";
  return cells.join("");
}

export function pipelineAsciiTimeline(
  timeline: PipelineTimeline,
  stages: number,
  columns = PIPELINE_TIMELINE_COLUMNS,
): string {
  const total = timeline.totalSeconds;
  const rows: string[] = [];
  for (let s = 0; s < stages; s++)
    rows.push(
      `stage ${s}    |${lane(timeline.stageItems ?? [], s, total, columns, 0.5)}| idle ${(100 * timeline.stageIdleFraction[s]!).toFixed(0)}%`,
    );
  const links = timeline.linkBusySeconds.length;
  for (let l = 0; l < links; l++)
    rows.push(`link ${l}->${(l + 1) % stages}   |${lane(timeline.linkItems ?? [], l, total, columns, 0)}|`);
  return [
    `Pipeline timeline, whole run (${total.toFixed(1)} s across; digits = micro-batch, "." = waiting)`,
    ...rows,
  ].join("\n");
}
