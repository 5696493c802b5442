/**
 * Latency-throughput frontier (as in the FlexGen paper): the planner's best policy for blocks of at
 * most 1, 2, 4, ... sequences, throughput against the time a block takes to finish (prefill + decode),
 * points labelled with the block size and connected in order of block size.
 */
import type { TopLevelSpec } from "vega-lite";
import type { Plan } from "../core/plan.js";
import { PlanError, type PlanRequest, plan } from "../planner/plan.js";
import { logPosition } from "./log-ticks.js";

export interface FrontierRow {
  /** The cap the planner was given. */
  readonly maxBlock: number;
  readonly gbs: number;
  readonly nb: number;
  readonly blockSequences: number;
  readonly throughputTokensPerSecond: number;
  /** Seconds for one block to finish: prefill + decode. */
  readonly latencySeconds: number;
  readonly label: string;
}

/** 1, 2, 4, ... below `block`, then `block` itself. */
export function frontierCaps(block: number): number[] {
  const caps: number[] = [];
  for (let b = 1; b < block; b *= 2) caps.push(b);
  caps.push(block);
  return caps;
}

/** Plans with each cap in turn (a cap at which nothing fits is left out). */
export async function frontierPlans(
  request: Omit<PlanRequest, "maxBlock" | "onCandidate">,
  block: number,
  onProgress?: (done: number, total: number, maxBlock: number) => void,
): Promise<{ maxBlock: number; plan: Plan }[]> {
  const caps = frontierCaps(block);
  const out: { maxBlock: number; plan: Plan }[] = [];
  for (let i = 0; i < caps.length; i++) {
    onProgress?.(i + 1, caps.length, caps[i]!);
    try {
      out.push({ maxBlock: caps[i]!, plan: await plan({ ...request, maxBlock: caps[i]! }) });
    } catch (error) {
      if (!(error instanceof PlanError)) throw error;
    }
  }
  return out;
}

/** One row per plan, sorted by block size; repeated blocks (a cap the planner did not use up) kept once. */
export function frontierRows(
  plans: readonly { maxBlock: number; plan: Pick<Plan, "policy" | "predicted"> }[],
): FrontierRow[] {
  const rows = plans.map(({ maxBlock, plan: p }) => {
    const blockSequences = p.policy.gpuBatchSize * p.policy.numGpuBatches;
    return {
      maxBlock,
      gbs: p.policy.gpuBatchSize,
      nb: p.policy.numGpuBatches,
      blockSequences,
      throughputTokensPerSecond: p.predicted.throughputTokensPerSecond,
      latencySeconds: p.predicted.prefillSeconds + p.predicted.decodeSeconds,
      label: `${blockSequences}`,
    };
  });
  rows.sort((a, b) => a.blockSequences - b.blockSequences || a.maxBlock - b.maxBlock);
  return rows.filter((r, i) => i === 0 || r.blockSequences !== rows[i - 1]!.blockSequences);
}

export function frontierChart(
  rows: readonly FrontierRow[],
  about: { model: string; hardware: string; promptLen: number; genLen: number },
): TopLevelSpec {
  const span = (values: number[]) => [Math.min(...values) / 1.15, Math.max(...values) * 1.15] as const;
  const [x0, x1] = span(rows.map((r) => r.latencySeconds));
  const [y0, y1] = span(rows.map((r) => r.throughputTokensPerSecond));
  const encoding = {
    x: logPosition("latencySeconds", x0, x1, "latency: seconds for a block to finish (prefill + decode, log scale)"),
    y: logPosition("throughputTokensPerSecond", y0, y1, "throughput (token/s, log scale)"),
  } as const;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: `Latency–throughput frontier: ${about.model} on ${about.hardware}`,
      subtitle: [
        `the best plan for blocks of at most 1, 2, 4, … sequences (labels: sequences per block)`,
        `prompt ${about.promptLen}, ${about.genLen} generated; up and to the left is better`,
      ],
    },
    width: 520,
    height: 320,
    data: { values: rows },
    layer: [
      {
        mark: { type: "line", color: "#3d3d3d", strokeWidth: 2, point: { filled: true, size: 50, color: "#3d3d3d" } },
        encoding: {
          ...encoding,
          order: { field: "blockSequences", type: "quantitative" },
          tooltip: [
            { field: "gbs" },
            { field: "nb" },
            { field: "throughputTokensPerSecond", format: ".3g", title: "token/s" },
            { field: "latencySeconds", format: ".3g", title: "seconds" },
          ],
        },
      },
      {
        mark: { type: "text", align: "left", dx: 7, dy: 10, fontSize: 11, color: "#333" },
        encoding: { ...encoding, text: { field: "label" } },
      },
    ],
  } as TopLevelSpec;
}
