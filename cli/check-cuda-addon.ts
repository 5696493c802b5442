/**
 * `--backend cuda` asked for an optional component: the CUDA addon. Where it is not built (or is out of
 * date, or built for another Node), that is something the user can fix, so it is bad input (exit 2, one
 * line saying how to build it), checked before any work. A built addon with no driver or GPU behind it
 * is a failure of this machine, reported later by requireCuda (exit 1), as the README says.
 */
import { InputError } from "../core/input-error.js";
import { loadNative } from "../runtime/cuda/load-native.js";

export function checkCudaAddonBuilt(backend: string | undefined): void {
  if (backend !== "cuda") return;
  const load = loadNative();
  if (!load.loaded) throw new InputError("--backend cuda", undefined, load.reason);
}
