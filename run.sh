#!/usr/bin/env bash
# Installs what is missing, builds, and trains the default config
# (configs/default.yaml unless CONFIG says otherwise); extra arguments go to
# `train`, e.g. ./run.sh --resume auto, ./run.sh --set train.epochs=8.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install_deps.sh
cmake -S . -B build -G Ninja >/dev/null
cmake --build build -j "$(nproc)"
exec build/bin/train --config "${CONFIG:-configs/default.yaml}" "$@"
