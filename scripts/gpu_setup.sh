#!/usr/bin/env bash
# Run THERE (the GPU machine, no package registry), in the repository root,
# after scripts/gpu_bundle.sh ran here and .gpu was carried along:
#   source scripts/gpu_setup.sh
# unpacks the .deb files into .gpu/prefix (never into /) and exports the
# variables CMake and the loader need; then build with
#   cmake -S . -B build -G Ninja $SSM_GPU_CMAKE_ARGS && cmake --build build
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
export LD_LIBRARY_PATH="$blas_dir:$prefix/usr/lib/x86_64-linux-gnu:$prefix/usr/lib/x86_64-linux-gnu/hdf5/serial:${LD_LIBRARY_PATH:-}"
export CPATH="$prefix/usr/include:$prefix/usr/include/x86_64-linux-gnu:${CPATH:-}"
export SSM_GPU_CMAKE_ARGS="-DSSM_BLAS_LIBRARY=$blas_dir/libopenblas.so -DSSM_CBLAS_INCLUDE=$prefix/usr/include/x86_64-linux-gnu/openblas-openmp -DCatch2_DIR=$prefix/usr/lib/cmake/Catch2"
set +e +u +o pipefail
