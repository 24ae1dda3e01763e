// bench_ssm: forward + backward time, or peak memory, of one S4-family layer
// (S4Block around an s4d, s4, rtf or lssl kernel), of its kernel generation
// alone, or of the FFT convolution alone; the C++ half of bench/run_ssm.py
// (which runs the same cases in PyTorch, bench/ssm_torch.py, and writes
// bench/results/ssm_cpu.json or, with --device cuda, ssm_cuda.json).
// Prints one JSON object:
//   {"layer", "what", "device", "gpu", "H", "N", "L", "B", "threads", "inner",
//    "runs_ms": [...], "median_ms", "min_ms"}
// ("layer" and "N" are left out for --what fftconv, which has no layer), or,
// with --memory, {"layer", ..., "peak_bytes"}: the allocator's peak of live
// tensor bytes (the CPU allocator's, or with --device cuda the CUDA caching
// allocator's) during one step, above what was live before it (parameters,
// inputs); scratch outside tensors (FFT buffers and plans) is not counted.
// Usage: bench_ssm [--layer s4d|s4|rtf|lssl] [--what layer|kernel|fftconv]
//                  [--H 128] [--N 64] [--L 1024] [--B 16] [--runs 10] [--warmup 2]
//                  [--threads 2] [--device cpu|cuda] [--inner 1] [--memory]
// --what (one step is a forward and the backward of sum(y * r), r a fixed random
// tensor, seeded as backward(y, r): the same gradients without the product):
//   layer    (default) the whole S4Block: x (B, L, H) -> (B, L, H); gradients of x
//            and of every parameter.
//   kernel   the layer's kernel generation alone: K = kernel.forward(L) (1, H, L)
//            from the same parameters as the layer; gradients of the kernel's
//            parameters.
//   fftconv  the fft_conv op alone (autograd/ops/fftconv.h): u (B, H, L), k (1, H, L),
//            D (1, H) -> y (B, 1, H, L); gradients of u, k and D. --layer is not
//            needed (and ignored).
// --device cuda: the inputs and the layer's parameters are drawn on the CPU by the same
// generator as a CPU run, then moved to the GPU; every timed run ends with a device
// synchronize. "gpu" is the device's name ("" on the CPU); "gpu_peak_bytes" is the CUDA
// allocator's peak of live tensor bytes over the whole timed part (everything live).
// --inner K: a timed run is K steps back to back, then one synchronize; the time reported
// is per step. --inner 0: chosen after the warmup (which is then at least one step) from
// one synchronized step of t ms: K = ceil(20 / t) clamped to [1, 32].
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/omp_defaults.h"
#include "autograd/ops/fftconv.h"
#include "core/cpu_allocator.h"
#include "core/cuda/runtime.h"
#include "kernels/common.h"
#include "layers/models/s4_family.h"
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

// The name of the current CUDA device ("" in a build without CUDA).
std::string gpu_name() {
#if defined(SSM_WITH_CUDA)
  int dev = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    return "unknown CUDA device";
  }
  return prop.name;
#else
  return "";
#endif
}

}  // namespace

int main(int argc, char** argv) {
  ssm::use_passive_omp_threads(argv);
  CLI::App app{
      "Times forward + backward of one S4-family layer, of its kernel generation or of the "
      "FFT convolution (or measures its peak memory).",
      "bench_ssm"};
  std::string layer, what = "layer", device_name = "cpu";
  std::int64_t H = 128, N = 64, L = 1024, B = 16;
  int runs = 10, warmup = 2, threads = 2, inner = 1;
  bool memory = false;
  app.add_option("--layer", layer, "s4d, s4, rtf or lssl (not needed with --what fftconv)")
      ->check(CLI::IsMember({"s4d", "s4", "rtf", "lssl"}));
  app.add_option("--what", what,
                 "layer (the whole layer), kernel (kernel generation alone) or fftconv (the "
                 "FFT convolution alone)")
      ->check(CLI::IsMember({"layer", "kernel", "fftconv"}));
  app.add_option("--H", H, "features (d_model)")->check(CLI::Range(1, 1 << 16));
  app.add_option("--N", N, "state size")->check(CLI::Range(2, 4096));
  app.add_option("--L", L, "sequence length")->check(CLI::Range(1, 1 << 22));
  app.add_option("--B", B, "batch size")->check(CLI::Range(1, 1 << 16));
  app.add_option("--runs", runs, "timed runs")->check(CLI::Range(1, 100000));
  app.add_option("--warmup", warmup, "untimed steps first")->check(CLI::Range(0, 100000));
  app.add_option("--threads", threads, "CPU threads")->check(CLI::Range(1, 1024));
  app.add_option("--device", device_name, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--inner", inner, "steps per timed run (one synchronize per run); 0: auto")
      ->check(CLI::Range(0, 100000));
  app.add_flag("--memory", memory, "report the peak memory of one step instead");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "bench_ssm: %s (see --help)\n", e.what());
    return 2;
  }
  const bool conv_only = what == "fftconv";
  if (!conv_only && layer.empty()) {
    std::fprintf(stderr, "bench_ssm: --layer is required with --what %s (see --help)\n",
                 what.c_str());
    return 2;
  }
  const bool cuda = device_name == "cuda";
  if (cuda && !cuda::compiled()) {
    std::fprintf(stderr,
                 "bench_ssm: --device cuda, but this build has no CUDA backend (configured "
                 "with -DSSM_CUDA=OFF); use a build configured with -DSSM_CUDA=ON\n");
    return 2;
  }
  if (cuda && !cuda_available()) {
    std::fprintf(stderr, "bench_ssm: --device cuda, but no CUDA GPU is visible\n");
    return 2;
  }
  const Device device = cuda ? Device::cuda() : Device::cpu();
  try {
    kernels::set_num_threads(threads);
    Generator gen(0);
    // Drawn on the CPU (the same values as a CPU run), then moved.
    auto constant = [&](const Shape& s) {
      const Tensor t = randn(s, DType::Float32, Device::cpu(), gen);
      return cuda ? t.to(device) : t;
    };
    auto leaf = [&](const Shape& s) {
      Tensor t = constant(s);
      t.set_requires_grad(true);
      return t;
    };
    nlohmann::json out = {{"what", what},
                          {"device", device_name},
                          {"gpu", cuda ? gpu_name() : std::string()},
                          {"H", H},
                          {"L", L},
                          {"B", B},
                          {"threads", threads},
                          {"dtype", "float32"}};
    if (!conv_only) out.update({{"layer", layer}, {"N", N}});
    std::shared_ptr<S4Block> block;
    std::vector<Tensor> leaves;  // gradients dropped after each step
    Tensor x, u, k, D, r;
    std::function<Tensor()> forward;
    if (conv_only) {
      u = leaf({B, H, L});
      k = leaf({1, H, L});
      D = leaf({1, H});
      r = constant({B, 1, H, L});
      leaves = {u, k, D};
      forward = [&] { return fft_conv(u, k, D); };
    } else {
      ModelConfig config;
      config.name = layer;
      config.d_model = H;
      config.d_state = N;
      block = make_s4_block(config, gen, nullptr, DType::Float32);  // drawn on the CPU
      if (cuda) block->to(device);
      if (what == "layer") {
        x = leaf({B, L, H});
        r = constant({B, L, H});
        leaves = block->parameters();  // after the move: the device's tensors
        leaves.push_back(x);
        forward = [&] { return block->forward(x); };
      } else {
        SSMKernel& kernel = block->kernel();
        r = constant({kernel.channels(), H, L});
        leaves = kernel.parameters();
        forward = [&kernel, L] { return kernel.forward(L); };
      }
    }
    auto sync = [&] {
      if (cuda) cuda::synchronize();
    };
    auto zero = [&] {
      for (auto& t : leaves) t.zero_grad();
    };
    auto step = [&] { backward(forward(), r); };
    if (memory) {
      step();  // first call: FFT plans and other one-time allocations
      zero();
      sync();
      const std::size_t before =
          cuda ? cuda::allocator_stats().current_bytes : cpu::host_allocator_stats().current_bytes;
      if (cuda) {
        cuda::reset_peak_stats();
      } else {
        cpu::reset_host_peak_stats();
      }
      step();
      sync();
      const std::size_t peak =
          cuda ? cuda::allocator_stats().peak_bytes : cpu::host_allocator_stats().peak_bytes;
      out["peak_bytes"] = peak - before;
    } else {
      if (cuda) cuda::reset_peak_stats();
      const bool auto_inner = inner == 0;
      const int warmup_steps = auto_inner ? std::max(warmup, 1) : warmup;
      double last = 0;  // ms of the last warmup step, synchronized
      for (int i = 0; i < warmup_steps; ++i) {
        sync();
        const double t0 = now_ms();
        step();
        sync();
        last = now_ms() - t0;
        zero();
      }
      if (auto_inner) {
        inner = static_cast<int>(std::clamp(std::ceil(20.0 / std::max(last, 1e-3)), 1.0, 32.0));
      }
      // One timed run: inner steps, then a synchronize; per-step milliseconds. The
      // gradients of the last step are dropped after the clock stops (between steps,
      // inside it).
      auto timed = [&] {
        sync();
        const double t0 = now_ms();
        for (int i = 0; i < inner; ++i) {
          if (i > 0) zero();
          step();
        }
        sync();
        const double t = (now_ms() - t0) / inner;
        zero();
        return t;
      };
      std::vector<double> times;
      for (int i = 0; i < runs; ++i) times.push_back(timed());
      out["inner"] = inner;
      out["runs_ms"] = times;
      std::sort(times.begin(), times.end());
      out["median_ms"] = times[times.size() / 2];
      out["min_ms"] = times.front();
      if (cuda) out["gpu_peak_bytes"] = cuda::allocator_stats().peak_bytes;
    }
    std::printf("%s\n", out.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_ssm: %s\n", e.what());
    return 2;
  }
  return 0;
}
