#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job. Until the training
# command lands this is the end-to-end demo: a 2-layer MLP trained with SGD on
# a generated classification problem, printing its accuracy.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install_deps.sh
cmake -S . -B build -G Ninja >/dev/null
cmake --build build -j "$(nproc)"
exec build/bin/mlp_demo "$@"
