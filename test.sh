#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test that fits in a few
# minutes on 2 cores (all but [slow]).
#   ./test.sh            default build (CUDA when nvcc is found; CUDA tests skip without a GPU)
#   ./test.sh --slow     also the [slow] tests
#   ./test.sh --cpu-only a -DSSM_CUDA=OFF build in build-cpu/
# Extra CMake arguments: SSM_CMAKE_ARGS="-DSSM_SANITIZE=ON" ./test.sh
set -euo pipefail
cd "$(dirname "$0")"

slow=0
build_dir=build
cmake_args=(${SSM_CMAKE_ARGS:-})
for arg in "$@"; do
  case "$arg" in
    --slow) slow=1 ;;
    --cpu-only) build_dir=build-cpu; cmake_args+=(-DSSM_CUDA=OFF) ;;
    *) echo "test.sh: unknown argument '$arg' (expected --slow or --cpu-only)" >&2; exit 2 ;;
  esac
done
build_dir=${SSM_BUILD_DIR:-$build_dir}

scripts/install_deps.sh
cmake -S . -B "$build_dir" -G Ninja "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"

ctest_args=(--test-dir "$build_dir" --output-on-failure -j "$(nproc)")
if [[ $slow -eq 0 ]]; then
  ctest_args+=(-LE slow)
fi
ctest "${ctest_args[@]}"
