/**
 * The pipeline's schedule over stages and the links between them, as FlexGen's pipeline runs it
 * (flexgen/dist_flex_opt.py, generation_loop_*): for every token step, every micro-batch passes through
 * the stages in order; a stage takes its micro-batches in order (token, then micro-batch), each after
 * the previous stage's hidden states for it have arrived over the link between them; after the last
 * stage, the micro-batch's new token ids go back to the first stage for the next token step. Each stage
 * and each link serves one item at a time. The planner runs it with the cost model's stage times, the
 * simulator with the stage times it simulated: the same pure function, so where they differ is where
 * their stage times differ.
 */

/** What one stage takes for one micro-batch at token step i (0: the prompt). */
export interface StageStepTimes {
  readonly prefillSeconds: number;
  /** Per decode token step (index i - 1 for token step i >= 1): length genLen - 1. */
  readonly decodeSeconds: readonly number[];
}

/** A link between consecutive stages (or from the last stage back to the first). */
export interface TimelineLink {
  readonly bytesPerSecond: number;
  readonly latencySeconds: number;
}

export interface TimelineInput {
  readonly stages: readonly StageStepTimes[];
  /** links[s] carries stage s's output to stage s + 1; links[S - 1] carries token ids back to stage 0. Empty for one stage. */
  readonly links: readonly TimelineLink[];
  readonly microBatches: number;
  readonly genLen: number;
  /** Bytes one micro-batch's hidden states take at token step i (0: the prompt's). */
  readonly hiddenBytes: (tokenStep: number) => number;
  /** Bytes of one micro-batch's token ids returned to the first stage. */
  readonly tokenBytes: number;
  /** Record every item's interval (for timelines); off by default. */
  readonly record?: boolean;
}

/** One busy interval: stage (or link) `lane`, micro-batch, token step. */
export interface TimelineItem {
  readonly lane: number;
  readonly microBatch: number;
  readonly tokenStep: number;
  readonly start: number;
  readonly end: number;
}

export interface PipelineTimeline {
  readonly totalSeconds: number;
  /** When the last stage finished the prompt of the last micro-batch. */
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  readonly stageBusySeconds: readonly number[];
  readonly linkBusySeconds: readonly number[];
  readonly linkBytes: readonly number[];
  /** Per stage: the share of the run it is idle (fill, drain and bubbles). */
  readonly stageIdleFraction: readonly number[];
  readonly stageItems?: readonly TimelineItem[];
  readonly linkItems?: readonly TimelineItem[];
}

function stepSeconds(stage: StageStepTimes, tokenStep: number): number {
  return tokenStep === 0 ? stage.prefillSeconds : stage.decodeSeconds[tokenStep - 1]!;
}

export function pipelineTimeline(input: TimelineInput): PipelineTimeline {
  const S = input.stages.length;
  const M = input.microBatches;
  const n = input.genLen;
  const stageFree = new Array<number>(S).fill(0);
  const linkFree = new Array<number>(input.links.length).fill(0);
  const stageBusy = new Array<number>(S).fill(0);
  const linkBusy = new Array<number>(input.links.length).fill(0);
  const linkBytes = new Array<number>(input.links.length).fill(0);
  const stageItems: TimelineItem[] = [];
  const linkItems: TimelineItem[] = [];
  // When micro-batch m's token ids for the next step reach the first stage.
  const backAt = new Array<number>(M).fill(0);
  let prefillSeconds = 0;
  let end = 0;
  const send = (lane: number, ready: number, bytes: number, microBatch: number, tokenStep: number) => {
    const link = input.links[lane]!;
    const start = Math.max(linkFree[lane]!, ready);
    const seconds = link.latencySeconds + bytes / link.bytesPerSecond;
    linkFree[lane] = start + seconds;
    linkBusy[lane]! += seconds;
    linkBytes[lane]! += bytes;
    if (input.record) linkItems.push({ lane, microBatch, tokenStep, start, end: start + seconds });
    return start + seconds;
  };
  for (let i = 0; i < n; i++) {
    for (let m = 0; m < M; m++) {
      let ready = i === 0 ? 0 : backAt[m]!;
      for (let s = 0; s < S; s++) {
        const start = Math.max(stageFree[s]!, ready);
        const seconds = stepSeconds(input.stages[s]!, i);
        const done = start + seconds;
        stageFree[s] = done;
        stageBusy[s]! += seconds;
        if (input.record) stageItems.push({ lane: s, microBatch: m, tokenStep: i, start, end: done });
        end = Math.max(end, done);
        if (s < S - 1) ready = send(s, done, input.hiddenBytes(i), m, i);
        else {
          if (i === 0) prefillSeconds = Math.max(prefillSeconds, done);
          if (S > 1 && i < n - 1) backAt[m] = send(S - 1, done, input.tokenBytes, m, i);
          else backAt[m] = done;
        }
      }
    }
  }
  return {
    totalSeconds: end,
    prefillSeconds,
    decodeSeconds: end - prefillSeconds,
    stageBusySeconds: stageBusy,
    linkBusySeconds: linkBusy,
    linkBytes,
    stageIdleFraction: stageBusy.map((b) => (end > 0 ? 1 - b / end : 0)),
    ...(input.record ? { stageItems, linkItems } : {}),
  };
}
