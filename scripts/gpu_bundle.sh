#!/usr/bin/env bash
# Run HERE (a machine with Debian's package registry): downloads the .deb
# files of ssmkit's libraries into .gpu/debs (ignored by git), so that a GPU
# machine without a package registry can unpack them with scripts/gpu_setup.sh.
# Pass `.gpu` in the device tool's carry list.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(catch2 libopenblas-openmp-dev libopenblas0-openmp libgfortran5 ninja-build
  libhdf5-dev libhdf5-103-1 libsz2 libaec0 libcurl4 libyaml-cpp-dev libyaml-cpp0.7
  libcli11-dev nlohmann-json3-dev zlib1g-dev libfftw3-dev libfftw3-single3 libfftw3-double3
  libeigen3-dev)
rm -rf .gpu/debs .gpu/prefix
mkdir -p .gpu/debs
cd .gpu/debs
apt-get download "${packages[@]}" >/dev/null
ls -1 *.deb | wc -l | xargs echo "gpu_bundle: .deb files in .gpu/debs:"
du -sh . | cut -f1 | xargs echo "gpu_bundle: size"
