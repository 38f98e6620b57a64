#!/usr/bin/env bash
#! CI check of the CUDA path on a machine without a GPU (issue 6): builds the CUDA code
#! (`--features cuda`: cudarc loads CUDA at run time, so no toolkit is needed), runs the CUDA
#! agreement tests, which on such a machine assert the clean refusal instead, and checks
#! that `satkit train --device cuda` ends with the refusal message and a non-zero exit code,
#! never a panic (exit code 101), with and without the feature. Where a GPU is present the
#! tests compare against the CPU instead, and the refusal checks are skipped.
#!   train/scripts/gpu/ci_cuda_refusal.sh        (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo test -p satkit-train --features cuda --test cuda
expect_refusal() {
  local bin=$1 want=$2 out rc
  set +e
  out=$("$bin" train --device cuda --epochs 1 --train-limit 64 2>&1)
  rc=$?
  set -e
  echo "$bin train --device cuda -> exit $rc: $out"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 101 ] || { echo "FAIL: expected a clean non-zero exit, got $rc"; exit 1; }
  grep -q -- "$want" <<<"$out" || { echo "FAIL: expected the message '$want'"; exit 1; }
}
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  CARGO_TARGET_DIR=target-cuda cargo build -p satkit --features cuda
  expect_refusal target-cuda/debug/satkit "no CUDA device 0: .*; rerun with --device cpu"
  cargo build -p satkit
  expect_refusal target/debug/satkit "built without CUDA support"
fi
echo "CUDA refusal checks passed"
