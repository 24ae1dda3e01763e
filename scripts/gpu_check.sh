#!/usr/bin/env bash
# Run THERE (the GPU machine, through the device tool, with .gpu carried; see
# scripts/gpu_bundle.sh), in the repository root:
#   bash scripts/gpu_check.sh            # every stage below
#   SSM_GPU_STAGES=tests,bench bash scripts/gpu_check.sh
# Uses the binaries of .gpu/prebuilt.tar.xz when they load there (else builds a
# CUDA tree for SSM_GPU_ARCH, default 90, in build-gpu). Stages:
#   bench      the GPU op benchmark against the PyTorch found there
#   tests      every [cuda] test, one process per test file, in parallel
#   memcheck   compute-sanitizer memcheck over the parity suite
#   racecheck  compute-sanitizer racecheck over the parity suite
#   scan       the selective-scan benchmark (bench/run_mamba.py --sweep) against
#              PyTorch's loop and parallel scans
#   s4         the S4D / S4 layer, kernel and FFT-convolution benchmark
#              (bench/run_ssm.py --sweep) against PyTorch (torch.fft)
#   profile    Nsight Compute kernel times of one bench_ops step per op
#              (SSM_GPU_PROFILE_OPS, at SSM_GPU_PROFILE_ROWS rows): which
#              kernels a step launches and how long each takes
# Each stage has a time limit (SSM_GPU_LIMIT_<STAGE> seconds). Prints one
# summary line per stage (also $OUT/summary.txt); the full logs come back as
# $OUT/logs.tgz and the bench JSON as $OUT/ops_cuda_mamba130m.json.
set -uo pipefail
out=${OUT:-$PWD/gpu_out}
mkdir -p "$out"
logs=/tmp/ssm_gpu_logs
rm -rf "$logs"
mkdir -p "$logs"
trap 'tar czf "$out/logs.tgz" -C /tmp ssm_gpu_logs' EXIT
stages=${SSM_GPU_STAGES:-bench,scan,s4,tests,memcheck,racecheck,profile}
has_stage() { [[ ",$stages," == *",$1,"* ]]; }
summary() { echo "gpu_check: $*" | tee -a "$out/summary.txt"; }
t0=$SECONDS
source scripts/gpu_setup.sh
summary "setup in $((SECONDS - t0)) s"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$logs/gpu.txt" 2>&1
summary "gpu $(tail -1 "$logs/gpu.txt")"
bdir=build-gpu
bin=$bdir/bin
t0=$SECONDS
prebuilt=0
if [[ -f .gpu/prebuilt.tar.xz && "${SSM_GPU_REBUILD:-0}" != 1 ]]; then
  mkdir -p "$bdir"
  tar xJf .gpu/prebuilt.tar.xz -C "$bdir"
  # The tests' compiled-in source and program paths point at the checkout
  # the binaries were built in: make that path lead here.
  src=$(cat "$bin/source_dir.txt")
  if [[ "$src" != "$PWD" && ! -e "$src" ]]; then
    mkdir -p "$(dirname "$src")"
    ln -s "$PWD" "$src"
  fi
  ssm_gpu_resolve "$bin"/*
  # (Catch2's exit status after --list-tests is the number of tests listed.)
  "$bin/ssm_tests" --list-tests "[cuda]" > "$logs/prebuilt.log" 2>&1
  if grep -q "matching test cases" "$logs/prebuilt.log"; then
    prebuilt=1
    summary "using the prebuilt binaries (built in $src)"
  else
    summary "prebuilt binaries do not run here: $(tail -2 "$logs/prebuilt.log" | tr '\n' ' ')"
    rm -rf "$bdir"
  fi
fi
if [[ $prebuilt == 0 ]]; then
  arch=${SSM_GPU_ARCH:-90}
  # shellcheck disable=SC2086
  if ! cmake -S . -B "$bdir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSSM_CUDA_ARCHS="$arch" \
    $SSM_GPU_CMAKE_ARGS > "$logs/cmake.log" 2>&1 ||
    ! cmake --build "$bdir" --target ssm_tests bench_ops bench_ssm bench_mamba train evaluate \
      > "$logs/build.log" 2>&1; then
    summary "build FAILED after $((SECONDS - t0)) s"
    tail -40 "$logs/cmake.log" "$logs/build.log"
    exit 1
  fi
  ssm_gpu_resolve "$bin"/*
  summary "build ok in $((SECONDS - t0)) s"
fi

# Runs the test binary once per test file matching $2 (one process each, so a
# crash or a sticky CUDA error stays in its file), all at once, each under
# `timeout $3` and the prefix command $4...; logs to $logs/$1_<file>.log.
run_files() {
  local label=$1 filter=$2 limit=$3
  shift 3
  local tags tag name pids=()
  tags=$("$bin/ssm_tests" -# --list-tags "$filter" | grep -o '\[#[A-Za-z0-9_]*\]')
  for tag in $tags; do
    name=${tag#[#}
    name=${name%]}
    (
      timeout "$limit" "$@" "$bin/ssm_tests" -# "$filter$tag" > "$logs/${label}_$name.log" 2>&1
      echo "exit status $?" >> "$logs/${label}_$name.log"
    ) &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  local failed=0 total=0
  for tag in $tags; do
    name=${tag#[#}
    name=${name%]}
    total=$((total + 1))
    local f="$logs/${label}_$name.log"
    if ! grep -q "^exit status 0" "$f"; then
      failed=$((failed + 1))
      summary "  $label $name: $(grep -E '^(test cases|All tests|exit status)|SUMMARY' "$f" | tr '\n' ' ')"
    fi
  done
  summary "$label: $((total - failed)) of $total files clean"
}

if has_stage bench; then
  t0=$SECONDS
  timeout "${SSM_GPU_LIMIT_BENCH:-180}" python3 bench/run_ops.py --build "$bdir" --device cuda \
    --preset mamba130m --runs 20 --repeats 3 --threads 16 --out "$out/ops_cuda_mamba130m.json" \
    > "$logs/bench.log" 2>&1
  summary "bench rc=$? in $((SECONDS - t0)) s"
  tail -12 "$logs/bench.log"
fi
if has_stage scan; then
  t0=$SECONDS
  timeout "${SSM_GPU_LIMIT_SCAN:-240}" python3 bench/run_mamba.py --build "$bdir" --device cuda \
    --sweep --threads 8 --deadline 200 --out "$out/mamba_cuda.json" > "$logs/scan_bench.log" 2>&1
  summary "scan bench rc=$? in $((SECONDS - t0)) s"
  tail -30 "$logs/scan_bench.log"
fi
if has_stage s4; then
  t0=$SECONDS
  timeout "${SSM_GPU_LIMIT_S4:-270}" python3 bench/run_ssm.py --build "$bdir" --device cuda \
    --sweep --out "$out/ssm_cuda.json" > "$logs/s4_bench.log" 2>&1
  summary "s4 bench rc=$? in $((SECONDS - t0)) s"
  tail -30 "$logs/s4_bench.log"
fi
if has_stage profile; then
  t0=$SECONDS
  ncu_bin=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
  for op in ${SSM_GPU_PROFILE_OPS:-elementwise_chain embedding softmax_cross_entropy layer_norm}; do
    timeout 60 "$ncu_bin" --clock-control none --metrics gpu__time_duration.sum --csv \
      --print-units base "$bin/bench_ops" --device cuda --preset mamba130m --only "$op" --runs 1 \
      --warmup 1 --rows "${SSM_GPU_PROFILE_ROWS:-8192}" > "$logs/ncu_$op.csv" 2> "$logs/ncu_$op.err"
    python3 scripts/ncu_summary.py "$logs/ncu_$op.csv" "$op" >> "$logs/profile.txt" 2>&1
  done
  summary "profile done in $((SECONDS - t0)) s"
  cat "$logs/profile.txt"
fi
# The tests and the two sanitizers run side by side (the GPU has room; the
# CPU oracle runs on 2 threads per process).
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
t0=$SECONDS
has_stage tests && run_files tests "[cuda]" "${SSM_GPU_LIMIT_TESTS:-200}" &
for tool in memcheck racecheck; do
  has_stage "$tool" || continue
  limit_var=SSM_GPU_LIMIT_${tool^^}
  run_files "$tool" "[cuda][parity]" "${!limit_var:-200}" \
    /usr/local/cuda/bin/compute-sanitizer --tool "$tool" --error-exitcode 3 --print-limit 20 &
done
wait
summary "tests and sanitizers done in $((SECONDS - t0)) s"
if has_stage tests; then
  grep -h -B2 -A6 -E "FAILED|threw" "$logs"/tests_*.log | head -100 > "$logs/tests_failures.txt"
  head -c 4000 "$logs/tests_failures.txt"
fi
