#!/usr/bin/env bash
# Run HERE (a machine with Debian's package registry): downloads the .deb
# files of ssmkit's libraries into .gpu/debs (ignored by git), so that a GPU
# machine without a package registry can unpack them with scripts/gpu_setup.sh.
# Pass `.gpu` in the device tool's carry list.
set -euo pipefail
cd "$(dirname "$0")/.."
# The libraries to build with, and every shared library the binaries load
# (the closure `ldd build/bin/ssm_tests` shows, less glibc, libstdc++ and
# CUDA's own), so that binaries built here also run there: gpu_setup.sh
# points the loader only at those the GPU machine lacks.
packages=(catch2 libopenblas-openmp-dev libopenblas0-openmp libgfortran5 libquadmath0 libgomp1
  ninja-build libhdf5-dev libhdf5-103-1 libsz2 libaec0 libcurl4 libyaml-cpp-dev libyaml-cpp0.7
  libcli11-dev nlohmann-json3-dev zlib1g-dev zlib1g libfftw3-dev libfftw3-single3
  libfftw3-double3 libeigen3-dev libbrotli1 libcom-err2 libffi8 libgmp10 libgnutls30
  libgssapi-krb5-2 libhogweed6 libidn2-0 libk5crypto3 libkeyutils1 libkrb5-3 libkrb5support0
  libldap-2.5-0 libnettle8 libnghttp2-14 libp11-kit0 libpsl5 librtmp1 libsasl2-2 libssh2-1
  libssl3 libtasn1-6 libunistring2 libzstd1)
rm -rf .gpu/debs .gpu/prefix
mkdir -p .gpu/debs
cd .gpu/debs
apt-get download "${packages[@]}" >/dev/null
ls -1 *.deb | wc -l | xargs echo "gpu_bundle: .deb files in .gpu/debs:"
du -sh . | cut -f1 | xargs echo "gpu_bundle: size"
# --with-binaries: also build the CUDA tree here (build-gpu, SSM_GPU_ARCH or
# 90) and pack its stripped programs into .gpu/prebuilt.tar.xz, so that the GPU
# run skips its build (gpu_check.sh uses them when they load there).
if [[ "${1:-}" == --with-binaries ]]; then
  cd ../..
  arch=${SSM_GPU_ARCH:-90}
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSSM_CUDA_ARCHS="$arch" >/dev/null
  cmake --build build-gpu --target ssm_tests bench_ops bench_ssm bench_mamba train evaluate
  stage=$(mktemp -d)
  mkdir -p "$stage/bin"
  for b in ssm_tests bench_ops bench_ssm bench_mamba train evaluate; do
    strip -o "$stage/bin/$b" "build-gpu/bin/$b"
  done
  # Tests find configs and programs through paths compiled in: this checkout's.
  pwd > "$stage/bin/source_dir.txt"
  tar cJf .gpu/prebuilt.tar.xz -C "$stage" bin
  rm -rf "$stage"
  du -h .gpu/prebuilt.tar.xz | cut -f1 | xargs echo "gpu_bundle: prebuilt binaries"
fi
