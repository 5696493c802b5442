/** The CUDA addon for `--backend cuda`, or a PlanError saying why it cannot be used here. */
import { PlanError } from "../../planner/plan-error.js";
import { usableCuda } from "./load-native.js";
import type { CudaNative } from "./native-api.js";

export function requireCuda(): CudaNative {
  const cuda = usableCuda();
  if ("reason" in cuda) throw new PlanError(`--backend cuda: ${cuda.reason}`);
  return cuda.native;
}
