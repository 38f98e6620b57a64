#!/usr/bin/env bash
#! The GPU session of issue 6 in one command, for the GPU machine (no Rust toolchain there):
#! the CUDA agreement tests (test binary built here with
#! `cargo test --release -p satkit-train --features cuda --test cuda --no-run`), a
#! CPU-vs-CUDA training run of a few epochs, and the comparison against PyTorch
#! (bench_vs_torch.py). Usage:
#!   train/scripts/gpu/run_gpu_checks.sh CARRY_DIR DATASET_DIR OUT_DIR
#! CARRY_DIR holds the stripped binaries `satkit` and `cuda-tests`; logs and JSON go to OUT_DIR.
set -u
carry=$1 data=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/cuda_env.sh"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
echo "== agreement tests" >&2
SATKIT_REQUIRE_GPU=1 "$carry/cuda-tests" --test-threads=1 2>&1 | tee "$out/tests.log"
echo "== refusal with an absent device ordinal is checked by the tests; CPU vs CUDA training" >&2
for dev in cuda cpu; do
  timeout 150 "$carry/satkit" train --device $dev --model lenet5 --method bdwp --nm 2:8 --epochs 3 \
    --dataset-dir "$data" --out "/tmp/train-$dev" --json > "$out/train-lenet5-bdwp-$dev.json" 2> "$out/train-lenet5-bdwp-$dev.log"
  tail -5 "$out/train-lenet5-bdwp-$dev.log"
done
"$carry/satkit" train --device cuda --model vgg-small --method bdwp --nm 2:8 --epochs 3 \
  --dataset-dir "$data" --out /tmp/train-vgg --json > "$out/train-vgg-small-bdwp-cuda.json" 2> "$out/train-vgg-small-bdwp-cuda.log"
tail -4 "$out/train-vgg-small-bdwp-cuda.log"
