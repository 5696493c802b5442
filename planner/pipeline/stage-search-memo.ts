/**
 * A pipeline search's memo of stage policy searches. The single-GPU search (searchSpillway) is a pure
 * function of its inputs, and the pipeline search asks it the same question many times: the heaviest
 * stage with nb = M x k GPU batches recurs for every (M, k) of equal product, and a first and a last
 * stage of equal layer count are the same model (stageModel), as are stages re-searched with the same
 * batch by other candidates. The memo hands back the policy found the first time, so a plan made with it
 * is, to the last bit, the plan made without it; only the search counters (LPs solved, exact
 * evaluations) count fewer, as fewer searches run. Scoped to one pipeline search: one workload,
 * schedule and solvers; the hardware rates are keyed by tensor-parallel size (the only way they vary
 * within a pipeline search).
 */
import type { ModelSpec } from "../../core/model-spec.js";
import type { Policy } from "../../core/policy.js";

/** What fixes a stage search's answer within one pipeline search. */
export interface StageSearchKey {
  readonly tensorParallelSize: number;
  readonly model: ModelSpec;
  readonly fixed: { readonly gbs?: number; readonly nb: number };
  readonly maxGbs: number | undefined;
}

/** The key's text: the model by value, as equal stage models may be distinct objects. */
export function stageSearchKeyText(key: StageSearchKey): string {
  return JSON.stringify([key.tensorParallelSize, key.model, key.fixed.gbs ?? null, key.fixed.nb, key.maxGbs ?? null]);
}

export class StageSearchMemo {
  private readonly found = new Map<string, Policy | undefined>();

  /** `search(key)`'s policy, searched once per distinct key (undefined when nothing fits). */
  policy(key: StageSearchKey, search: () => Policy | undefined): Policy | undefined {
    const text = stageSearchKeyText(key);
    if (this.found.has(text)) return this.found.get(text);
    const policy = search();
    this.found.set(text, policy);
    return policy;
  }
}
