#!/usr/bin/env bash
# Run THERE (the GPU machine, through the device tool, with .gpu carried; see
# scripts/gpu_bundle.sh), in the repository root:
#   bash scripts/gpu_check.sh            # everything below, logs under $OUT
# Builds a CUDA tree for the GPU's architecture (SSM_GPU_ARCH, default 90),
# runs every [cuda] test (the parity suite, optimizer, training with
# --device cuda), the parity suite under compute-sanitizer memcheck and
# racecheck (SSM_GPU_SANITIZE=0 skips them), and the GPU op benchmark against
# the PyTorch found there (SSM_GPU_BENCH=0 skips it). Prints one summary line
# per stage; the full logs and bench JSON go to $OUT (default ./gpu_out).
set -uo pipefail
out=${OUT:-$PWD/gpu_out}
mkdir -p "$out"
source scripts/gpu_setup.sh
arch=${SSM_GPU_ARCH:-90}
summary() { echo "gpu_check: $*" | tee -a "$out/summary.txt"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
summary "gpu $(tail -1 "$out/gpu.txt")"
t0=$SECONDS
# shellcheck disable=SC2086
if ! cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSSM_CUDA_ARCHS="$arch" \
  $SSM_GPU_CMAKE_ARGS > "$out/cmake.log" 2>&1 || ! cmake --build build-gpu > "$out/build.log" 2>&1; then
  summary "build FAILED after $((SECONDS - t0)) s"
  tail -40 "$out/cmake.log" "$out/build.log"
  exit 1
fi
summary "build ok in $((SECONDS - t0)) s"
t0=$SECONDS
build-gpu/bin/ssm_tests "[cuda]" > "$out/cuda_tests.log" 2>&1
summary "[cuda] tests rc=$? in $((SECONDS - t0)) s: $(grep -E '^(All tests|test cases)' "$out/cuda_tests.log" | tr '\n' ' ')"
if [[ "${SSM_GPU_SANITIZE:-1}" == 1 ]]; then
  for tool in memcheck racecheck; do
    t0=$SECONDS
    /usr/local/cuda/bin/compute-sanitizer --tool "$tool" --error-exitcode 3 \
      build-gpu/bin/ssm_tests "[parity]" > "$out/$tool.log" 2>&1
    summary "compute-sanitizer $tool rc=$? in $((SECONDS - t0)) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/$tool.log" | tail -1)"
  done
fi
if [[ "${SSM_GPU_BENCH:-1}" == 1 ]]; then
  t0=$SECONDS
  python3 bench/run_ops.py --build build-gpu --device cuda --preset mamba130m --runs 20 \
    --repeats 3 --threads 16 --out "$out/ops_cuda_mamba130m.json" > "$out/bench.log" 2>&1
  summary "bench rc=$? in $((SECONDS - t0)) s"
  cat "$out/bench.log" | tail -8
fi
