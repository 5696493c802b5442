import type { CudaNative } from "../runtime/cuda/native-api.js";

/** `base` with every call counted by function name (the runtime's calls, as a test reads them). */
export function countingNative(base: CudaNative): { readonly native: CudaNative; readonly calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const native = new Proxy(base, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== "function" || typeof key !== "string") return value;
      return (...args: unknown[]) => {
        calls.set(key, (calls.get(key) ?? 0) + 1);
        return value.apply(target, args);
      };
    },
  }) as CudaNative;
  return { native, calls };
}
