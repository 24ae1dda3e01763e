#!/usr/bin/env bash
# Run THERE (the GPU machine, no package registry), in the repository root,
# after scripts/gpu_bundle.sh ran here and .gpu was carried along:
#   source scripts/gpu_setup.sh
# unpacks the .deb files into .gpu/prefix (never into /) and exports the
# variables CMake and the loader need; then build with
#   cmake -S . -B build -G Ninja $SSM_GPU_CMAKE_ARGS && cmake --build build
# The loader is pointed only at the libraries that machine lacks (symbolic
# links in .gpu/prefix/need), so that its own programs (PyTorch) keep their
# libraries; `ssm_gpu_resolve FILE...` adds what FILE still misses.
set -euo pipefail
root=$(pwd)
prefix="$root/.gpu/prefix"
if [[ ! -d "$prefix/usr" ]]; then
  for deb in "$root"/.gpu/debs/*.deb; do dpkg -x "$deb" "$prefix"; done
fi
# Debian's OpenBLAS ships its libraries under an alternatives directory.
# (CMake finds it there through CMAKE_PREFIX_PATH).
blas_dir="$prefix/usr/lib/x86_64-linux-gnu/openblas-openmp"
export PATH="$prefix/usr/bin:$PATH"
export CMAKE_PREFIX_PATH="$prefix/usr:${CMAKE_PREFIX_PATH:-}"
export CPATH="$prefix/usr/include:$prefix/usr/include/x86_64-linux-gnu:${CPATH:-}"
export SSM_GPU_CMAKE_ARGS="-DSSM_BLAS_LIBRARY=$blas_dir/libopenblas.so -DSSM_CBLAS_INCLUDE=$prefix/usr/include/x86_64-linux-gnu/openblas-openmp -DCatch2_DIR=$prefix/usr/lib/cmake/Catch2"
mkdir -p "$prefix/need"
export LD_LIBRARY_PATH="$prefix/need:${LD_LIBRARY_PATH:-}"
ssm_gpu_lib_dirs=("$blas_dir" "$prefix/usr/lib/x86_64-linux-gnu"
  "$prefix/usr/lib/x86_64-linux-gnu/hdf5/serial" "$prefix/lib/x86_64-linux-gnu"
  /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib)
ssm_gpu_resolve() {
  local round missing lib dir found
  for round in 1 2 3 4 5 6 7 8; do
    missing=$(ldd "$@" 2>/dev/null | awk '/not found/ {print $1}' | sort -u)
    [[ -z "$missing" ]] && return 0
    found=0
    for lib in $missing; do
      for dir in "${ssm_gpu_lib_dirs[@]}"; do
        if [[ -e "$dir/$lib" ]]; then
          ln -sf "$dir/$lib" "$prefix/need/$lib"
          found=1
          break
        fi
      done
    done
    [[ $found == 0 ]] && break
  done
  missing=$(ldd "$@" 2>/dev/null | awk '/not found/ {print $1}' | sort -u)
  [[ -z "$missing" ]] || echo "gpu_setup: still missing: $missing" >&2
}
# What a build links against, and what those libraries load.
ssm_gpu_resolve "$blas_dir"/libopenblas.so.0 \
  "$prefix"/usr/lib/x86_64-linux-gnu/hdf5/serial/libhdf5.so \
  "$prefix"/usr/lib/x86_64-linux-gnu/libyaml-cpp.so.0.7 \
  "$prefix"/usr/lib/x86_64-linux-gnu/libfftw3f.so.3
set +e +u +o pipefail
