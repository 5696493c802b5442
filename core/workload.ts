/** What the user wants to run: prompt length and number of generated tokens per sequence. */
export interface Workload {
  readonly promptLen: number;
  readonly genLen: number;
}
