#!/usr/bin/env bash
# Packs what a GPU machine without Node.js or network needs to run Spillway's GPU checks
# (scripts/gpu-session.sh) into .device/ (git-ignored, about 40 MB): this machine's node binary (xz),
# the production node_modules (tar.xz, without typescript and @types), the compiled dist/ and the CUDA
# addon build/ (every target, built here with nvcc). Run after `npm ci && npm run build && npm run build:cuda`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/cli/main.js ] || { echo "pack-device: dist/ is missing: run npm run build first" >&2; exit 2; }
[ -f build/cuda/spillway_cuda.node ] || { echo "pack-device: build/cuda/spillway_cuda.node is missing: run npm run build:cuda first" >&2; exit 2; }
rm -rf .device.tmp && mkdir -p .device.tmp
xz -T0 -6 -c "$(readlink -f "$(command -v node)")" > .device.tmp/node.xz
tar -cJf .device.tmp/node_modules.tar.xz --exclude=node_modules/typescript --exclude=node_modules/@types node_modules
tar -cJf .device.tmp/built.tar.xz dist build
rm -rf .device && mv .device.tmp .device
du -sh .device/*
