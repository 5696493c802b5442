#!/usr/bin/env bash
# Spillway's GPU checks in one command, for a machine with an NVIDIA GPU (issue 8's measurements):
#   1. spillway devices --json
#   2. the CUDA kernel suite and the runtime correctness matrix on the real GPU (node --test)
#   3. spillway profile --backend cuda (the profile the planner needs)
#   4. npm run bench:cuda: predicted vs measured throughput on a synthetic OPT checkpoint with a GPU
#      capacity that forces offloading, h2d bandwidth while streaming weights vs the pinned peak,
#      spillway vs flexgen schedule
#   5. the same checkpoint compared slice by slice (compare --slices: each kind of trace slice, simulated
#      against measured, for one offloaded 4-bit policy) -> slices.json
#   6. an MoE plan on the GPU: spillway compare --backend cuda on a synthetic mixtral-tiny checkpoint
#      (4-bit experts and attention, LRU cache of 2, speculative prefetch): predicted, simulated and
#      measured throughput and expert figures, matchesReference (the runtime matrix in 2. also runs the
#      eight MoE rows on the GPU)
#   7. npm run bench:setup on the same model: run()'s setup before its first layer, phase by phase in
#      seconds per GiB (read, convert, quantise; the old fp32 round trip beside; 4-bit on every core's
#      thread against the main thread); host work only, but the many-core host is the one to measure
# Everything is logged under $OUT (default ./gpu-out). Where the machine has no Node.js or network,
# pack first on a build machine (scripts/pack-device.sh) and carry .device/.
# Usage: bash scripts/gpu-session.sh [--model opt-1.3b] [--gpu-mem GiB] [--quick]
# Each step runs under a time limit in seconds (a hung step must not take the session's GPU time with it):
#   GPU_SESSION_TESTS_S (default 600), GPU_SESSION_PROFILE_S (600), GPU_SESSION_FIDELITY_S (1200),
#   GPU_SESSION_SLICES_S (600), GPU_SESSION_MOE_S (600), GPU_SESSION_SETUP_S (300).
# A step cut off at its limit is logged as such and the session goes on to the next one (exit status 1).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
MODEL=opt-1.3b; GPU_MEM=""; QUICK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --gpu-mem) GPU_MEM="--gpu-mem $2"; shift 2 ;;
    --quick) QUICK="--quick"; shift ;;
    *) echo "gpu-session: unknown flag $1" >&2; exit 2 ;;
  esac
done
if ! command -v node >/dev/null; then
  [ -f .device/node.xz ] || { echo "gpu-session: no node on PATH and no .device/node.xz (run scripts/pack-device.sh on a build machine and carry .device)" >&2; exit 2; }
  mkdir -p /tmp/spillway-node && xz -dc .device/node.xz > /tmp/spillway-node/node && chmod +x /tmp/spillway-node/node
  export PATH="/tmp/spillway-node:$PATH"
fi
[ -d node_modules ] || tar -xJf .device/node_modules.tar.xz
[ -f dist/cli/main.js ] || tar -xJf .device/built.tar.xz
# A fresh addon for this machine's GPU where nvcc is here; else the carried one (all targets).
if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then node scripts/build-cuda.mjs 2>&1 | tee "$OUT/build-cuda.log"; fi
nvidia-smi --query-gpu=name,memory.total,pcie.link.gen.current,pcie.link.width.current,clocks.sm,clocks.mem --format=csv 2>&1 | tee "$OUT/nvidia-smi.csv"
node dist/cli/main.js devices --json | tee "$OUT/devices.json"
status=0
# step SECONDS COMMAND...: COMMAND under a time limit; a cut-off (exit status 124 or 137) is said on stderr.
step() {
  local seconds=$1; shift
  local rc=0
  timeout --kill-after=10 "$seconds" "$@" || rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "gpu-session: cut off after ${seconds} s: $*" >&2; fi
  return "$rc"
}
START=$SECONDS
step "${GPU_SESSION_TESTS_S:-600}" node --test --test-reporter=spec dist/test/integration/cuda-kernels.test.js dist/test/integration/runtime.test.js 2>&1 | tee "$OUT/tests.log" | grep -E "^(✔|✖|ℹ)|cuda\]|# (pass|fail|skip)" | tail -60 || status=1
grep -q "^ℹ fail 0" "$OUT/tests.log" || status=1
echo "gpu-session: tests took $((SECONDS - START)) s"; START=$SECONDS
step "${GPU_SESSION_PROFILE_S:-600}" node dist/cli/main.js profile --backend cuda $QUICK --out "$OUT/profile.json" --quiet 2>&1 | tee "$OUT/profile.log"
echo "gpu-session: profile took $((SECONDS - START)) s"; START=$SECONDS
KEEP="$(mktemp -d)"
step "${GPU_SESSION_FIDELITY_S:-1200}" node dist/bench/cuda-fidelity.js --profile "$OUT/profile.json" --model "$MODEL" $GPU_MEM --keep "$KEEP" --out "$OUT/fidelity.json" 2>&1 | tee "$OUT/fidelity.log"
echo "gpu-session: fidelity bench took $((SECONDS - START)) s"; START=$SECONDS
if [ -f "$KEEP/$MODEL/config.json" ]; then
  step "${GPU_SESSION_SLICES_S:-600}" node dist/cli/main.js compare --model "$KEEP/$MODEL" --weights "$KEEP/$MODEL" --hardware "$OUT/profile.json" \
    ${GPU_MEM:---gpu-mem 0.75} --prompt-len 256 --gen-len 8 --gbs 24 --nb 1 --percent 0 100 0 100 0 100 --compress-weight \
    --compress-cache --no-cpu-attention --backend cuda --slices --json --quiet > "$OUT/slices.json" 2>> "$OUT/fidelity.log" || status=1
  echo "gpu-session: slices took $((SECONDS - START)) s"; START=$SECONDS
fi
# The synthetic MoE checkpoint goes beside the logs' folder, not into it (\$OUT holds logs only).
MOE_DIR="$(mktemp -d)/mixtral-tiny"
node dist/cli/main.js synth-weights --model mixtral-tiny --out "$MOE_DIR" --quiet 2>&1 | tee "$OUT/moe.log"
step "${GPU_SESSION_MOE_S:-600}" node dist/cli/main.js compare --model "$MOE_DIR" --weights "$MOE_DIR" --hardware "$OUT/profile.json" \
  --gpu-mem 0.004 --prompt-len 8 --gen-len 8 --batch-size 2 --expert-cache 2 --expert-eviction lru --expert-compute gpu \
  --expert-bits 4 --attention-bits 4 --no-cpu-attention --prefetch-experts 2 --backend cuda --json --quiet \
  > "$OUT/moe-compare.json" 2>> "$OUT/moe.log" || status=1
echo "gpu-session: MoE compare took $((SECONDS - START)) s"; START=$SECONDS
SETUP_WEIGHTS=""; [ -f "$KEEP/$MODEL/config.json" ] && SETUP_WEIGHTS="--weights $KEEP/$MODEL"
step "${GPU_SESSION_SETUP_S:-300}" node dist/bench/setup-time.js --model "$MODEL" $SETUP_WEIGHTS 2>&1 | tee "$OUT/setup.log"
echo "gpu-session: setup bench took $((SECONDS - START)) s"
rm -rf "$KEEP"
exit $status
