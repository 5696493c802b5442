/** One timed measurement of `spillway profile`, one row of its samples CSV. */
export interface ProfileSample {
  /** h2d, d2h, diskWrite, diskRead, gemm, attention, memcpy, launch, streamTriad, firstTouch, date, ... */
  readonly measurement: string;
  /** Bytes moved, or FLOPs for compute, or values converted (see each measurement). */
  readonly size: number;
  readonly shape: string;
  readonly seconds: number;
}
