import type { TopLevelSpec } from "vega-lite";

/** A chart of a report before rendering: its file name stem, heading, caption and Vega-Lite spec. */
export interface ChartToRender {
  readonly name: string;
  readonly heading: string;
  readonly caption: string;
  readonly spec: TopLevelSpec;
}
