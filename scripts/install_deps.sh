#!/usr/bin/env bash
# Installs the Debian packages ssmkit needs that are missing; a fast no-op
# when all are present.
#   scripts/install_deps.sh           build + test dependencies
#   scripts/install_deps.sh --bench   also python3-torch and python3-h5py (benchmarks' PyTorch
#                                     side, the golden-file scripts)
set -euo pipefail

packages=(cmake ninja-build g++ pkg-config catch2 libopenblas-openmp-dev libyaml-cpp-dev libhdf5-dev
  nlohmann-json3-dev libcli11-dev zlib1g-dev libfftw3-dev libeigen3-dev
  dataset-fashion-mnist)  # real data: the sFashion-MNIST loader's test reads it
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3-torch python3-numpy python3-h5py)
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install_deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install_deps: need root or sudo to install ${missing[*]}" >&2; exit 2; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
