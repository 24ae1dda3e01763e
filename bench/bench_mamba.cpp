// bench_mamba: forward (+ backward) time of the selective scan or of a whole
// Mamba block, the C++ half of bench/run_mamba.py (which runs the same cases
// in PyTorch, bench/mamba_torch.py, and writes bench/results/mamba_cpu.json or,
// with --device cuda, bench/results/mamba_cuda.json).
// Prints one JSON object: {"case", sizes..., "device", "mode", "gpu", "threads",
// "inner", "bytes" (scan only), "runs_ms", "median_ms", "min_ms"}.
// Usage: bench_mamba --case scan|block [--B 8 --D 512 --N 16 --L 1024]
//                    [--d_model 256 --batch 8 --seq 1024] [--runs 10] [--warmup 2] [--threads 2]
//                    [--device cpu|cuda] [--mode fwd|fwdbwd] [--inner 1]
// scan: input-dependent B and C (one group), z, D, delta_bias, softplus, float32.
// block: Mamba(d_model) (expand 2, d_state 16, d_conv 4), x (batch, seq, d_model).
// --mode fwdbwd (default): one step is the forward and the backward of sum(y * r), r a fixed
// random tensor (seeded as backward(y, r), as mamba_torch.py's y.backward(g)), gradients for
// every input (scan) or for x and every parameter (block). --mode fwd: the forward only, under
// NoGradGuard (nothing recorded for backward).
// --device cuda: the inputs (and the block's parameters) are drawn on the CPU by the same
// generator as a CPU run, then moved to the GPU; every timed run ends with a device
// synchronize. --inner K: a timed run is K steps back to back, then one synchronize; the
// time reported is per step (for short GPU steps, where one synchronize per step would
// weigh on the figure). "gpu" is the device's name ("" on the CPU).
// "bytes" (scan): the least memory traffic of one step, every big tensor read or written once
// (see scan_bytes); achieved bandwidth = bytes / time.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/omp_defaults.h"
#include "autograd/ops/selective_scan.h"
#include "core/cuda/runtime.h"
#include "kernels/common.h"
#include "layers/ssm/mamba.h"
#include "ssm.h"

#if defined(SSM_WITH_CUDA)
#include <cuda_runtime.h>
#endif

using namespace ssm;

namespace {

double now_ms() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count();
}

// The least memory traffic of one step of the scan case, in bytes (elem: bytes per element,
// 4 for float32). With G = 1 group, per element counts:
//   forward:  read u, delta, z (3 B D L), B, C (2 B N L), A (D N), D, delta_bias (2 D);
//             write y (B D L), last_state (B D N)
//             = 4 B D L + 2 B N L + D N + 2 D + B D N
//   backward: read u, delta, z, grad_y (4 B D L), B, C (2 B N L), A, D, delta_bias (D N + 2 D);
//             write du, ddelta, dz (3 B D L), dB, dC (2 B N L), dA, dD, ddelta_bias (D N + 2 D)
//             = 7 B D L + 4 B N L + 2 (D N + 2 D)
//   fwdbwd = forward + backward = 11 B D L + 6 B N L + 3 (D N + 2 D) + B D N.
// Not counted: the forward's state checkpoints (B D N L / 64, kept for the backward) and any
// re-read the kernel needs beyond one pass; mamba_torch.py uses the same formula.
double scan_bytes(std::int64_t B, std::int64_t D, std::int64_t N, std::int64_t L, bool backward,
                  double elem) {
  const double bdl = static_cast<double>(B) * D * L, bnl = static_cast<double>(B) * N * L;
  const double small = static_cast<double>(D) * N + 2.0 * D, bdn = static_cast<double>(B) * D * N;
  const double fwd = 4 * bdl + 2 * bnl + small + bdn;
  const double bwd = 7 * bdl + 4 * bnl + 2 * small;
  return elem * (backward ? fwd + bwd : fwd);
}

// The name of the current CUDA device, and its peak memory bandwidth in GB/s from the memory
// clock and bus width (0 when the runtime does not report them).
struct GpuInfo {
  std::string name;
  double peak_gbs = 0;
};

GpuInfo gpu_info() {
  GpuInfo info;
#if defined(SSM_WITH_CUDA)
  int dev = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    info.name = "unknown CUDA device";
    return info;
  }
  info.name = prop.name;
  int clock_khz = 0, bus_bits = 0;
  if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, dev) == cudaSuccess &&
      cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev) == cudaSuccess) {
    info.peak_gbs = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;  // double data rate
  }
#endif
  return info;
}

}  // namespace

int main(int argc, char** argv) {
  ssm::use_passive_omp_threads(argv);
  CLI::App app{"Times the forward (+ backward) of the selective scan or of a Mamba block.",
               "bench_mamba"};
  std::string which, device_name = "cpu", mode = "fwdbwd";
  std::int64_t B = 8, D = 512, N = 16, L = 1024, d_model = 256, batch = 8, seq = 1024;
  int runs = 10, warmup = 2, threads = 2, inner = 1;
  app.add_option("--case", which, "scan or block")
      ->required()
      ->check(CLI::IsMember({"scan", "block"}));
  app.add_option("--B", B, "scan: batch")->check(CLI::Range(1, 1 << 16));
  app.add_option("--D", D, "scan: channels")->check(CLI::Range(1, 1 << 16));
  app.add_option("--N", N, "scan: state size")->check(CLI::Range(1, 256));
  app.add_option("--L", L, "scan: length")->check(CLI::Range(1, 1 << 22));
  app.add_option("--d_model", d_model, "block: d_model")->check(CLI::Range(1, 1 << 16));
  app.add_option("--batch", batch, "block: batch")->check(CLI::Range(1, 1 << 16));
  app.add_option("--seq", seq, "block: length")->check(CLI::Range(1, 1 << 22));
  app.add_option("--runs", runs, "timed runs")->check(CLI::Range(1, 100000));
  app.add_option("--warmup", warmup, "untimed runs first")->check(CLI::Range(0, 100000));
  app.add_option("--threads", threads, "CPU threads")->check(CLI::Range(1, 1024));
  app.add_option("--device", device_name, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--mode", mode, "fwd (forward only) or fwdbwd (forward + backward)")
      ->check(CLI::IsMember({"fwd", "fwdbwd"}));
  app.add_option("--inner", inner, "steps per timed run (one synchronize per run)")
      ->check(CLI::Range(1, 100000));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "bench_mamba: %s (see --help)\n", e.what());
    return 2;
  }
  const bool cuda = device_name == "cuda";
  if (cuda && !cuda::compiled()) {
    std::fprintf(stderr,
                 "bench_mamba: --device cuda, but this build has no CUDA backend (configured "
                 "with -DSSM_CUDA=OFF); use a build configured with -DSSM_CUDA=ON\n");
    return 2;
  }
  if (cuda && !cuda_available()) {
    std::fprintf(stderr, "bench_mamba: --device cuda, but no CUDA GPU is visible\n");
    return 2;
  }
  const Device device = cuda ? Device::cuda() : Device::cpu();
  const bool with_backward = mode == "fwdbwd";
  try {
    kernels::set_num_threads(threads);
    Generator gen(0);
    // Drawn on the CPU (the same values as a CPU run), then moved.
    auto constant = [&](const Shape& s, double scale = 1.0) {
      Tensor t = randn(s, DType::Float32, Device::cpu(), gen);
      if (scale != 1.0) t = mul(t, scale);
      return cuda ? t.to(device) : t;
    };
    auto leaf = [&](const Shape& s, double scale = 1.0) {
      Tensor t = constant(s, scale);
      t.set_requires_grad(with_backward);
      return t;
    };
    const GpuInfo gpu = cuda ? gpu_info() : GpuInfo{};
    std::function<void()> step;
    nlohmann::json out = {{"case", which},     {"device", device_name}, {"mode", mode},
                          {"gpu", gpu.name},   {"threads", threads},    {"inner", inner},
                          {"dtype", "float32"}};
    if (cuda && gpu.peak_gbs > 0) out["gpu_peak_gbs_from_attributes"] = gpu.peak_gbs;
    Tensor u, delta, A, An_fixed, Bm, Cm, Dv, z, bias, x, r;
    std::shared_ptr<Mamba> block;
    std::vector<Tensor> leaves;
    if (which == "scan") {
      u = leaf({B, D, L});
      delta = leaf({B, D, L}, 0.5);
      A = leaf({D, N}, 0.5);
      Bm = leaf({B, 1, N, L});
      Cm = leaf({B, 1, N, L});
      Dv = leaf({D});
      z = leaf({B, D, L});
      bias = leaf({D}, 0.1);
      leaves = {u, delta, A, Bm, Cm, Dv, z, bias};
      r = constant({B, D, L});
      if (with_backward) {
        step = [&] {
          const Tensor An = neg(exp(A));
          backward(selective_scan(u, delta, An, Bm, Cm, Dv, z, bias, true).y, r);
        };
      } else {
        // A = -exp(A_log) once, outside the clock: only the scan is timed.
        An_fixed = neg(exp(A));
        step = [&] {
          NoGradGuard no_grad;
          (void)selective_scan(u, delta, An_fixed, Bm, Cm, Dv, z, bias, true);
        };
      }
      out.update({{"B", B},
                  {"D", D},
                  {"N", N},
                  {"L", L},
                  {"bytes", scan_bytes(B, D, N, L, with_backward, 4.0)}});
    } else {
      MambaOptions o;
      block = std::make_shared<Mamba>(d_model, o, gen);  // parameters drawn on the CPU
      if (cuda) block->to(device);
      x = leaf({batch, seq, d_model});
      r = constant({batch, seq, d_model});
      if (with_backward) {
        leaves = block->parameters();
        leaves.push_back(x);
        step = [&] { backward(block->forward(x), r); };
      } else {
        step = [&] {
          NoGradGuard no_grad;
          (void)block->forward(x);
        };
      }
      out.update(
          {{"d_model", d_model}, {"batch", batch}, {"seq", seq}, {"d_state", 16}, {"expand", 2}});
    }
    auto sync = [&] {
      if (cuda) cuda::synchronize();
    };
    auto zero = [&] {
      for (auto& t_ : leaves) t_.zero_grad();
    };
    // One timed run: inner steps, then a synchronize; per-step milliseconds. The gradients
    // of the last step are dropped after the clock stops (between steps, inside it).
    auto timed = [&] {
      sync();
      const double t0 = now_ms();
      for (int k = 0; k < inner; ++k) {
        if (k > 0) zero();
        step();
      }
      sync();
      const double t = (now_ms() - t0) / inner;
      zero();
      return t;
    };
    for (int i = 0; i < warmup; ++i) timed();
    std::vector<double> times;
    for (int i = 0; i < runs; ++i) times.push_back(timed());
    out["runs_ms"] = times;
    std::sort(times.begin(), times.end());
    out["median_ms"] = times[times.size() / 2];
    out["min_ms"] = times.front();
    std::printf("%s\n", out.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_mamba: %s\n", e.what());
    return 2;
  }
  return 0;
}
