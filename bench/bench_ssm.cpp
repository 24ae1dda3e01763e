// bench_ssm: forward + backward time, or peak memory, of one S4-family layer
// (S4Block around an s4d, s4, rtf or lssl kernel), the C++ half of
// bench/run_ssm.py (which runs the same layers in PyTorch, bench/ssm_torch.py,
// and writes bench/results/ssm_cpu.json). Prints one JSON object:
//   {"layer", "H", "N", "L", "B", "threads", "runs_ms": [...], "median_ms"}
// or, with --memory, {"layer", ..., "peak_bytes"}: the CPU allocator's peak
// of live tensor bytes during one forward + backward, above what was live
// before it (parameters, inputs); scratch outside tensors (FFT buffers, a few
// KiB per thread) is not counted.
// Usage: bench_ssm --layer s4d|s4|rtf|lssl [--H 128] [--N 64] [--L 1024] [--B 16]
//                  [--runs 10] [--warmup 2] [--threads 2] [--memory]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/omp_defaults.h"
#include "core/cpu_allocator.h"
#include "kernels/common.h"
#include "layers/models/s4_family.h"
#include "ssm.h"

using namespace ssm;

namespace {

double now_ms() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  ssm::use_passive_omp_threads(argv);
  CLI::App app{"Times forward + backward of one S4-family layer (or measures its peak memory).",
               "bench_ssm"};
  std::string layer;
  std::int64_t H = 128, N = 64, L = 1024, B = 16;
  int runs = 10, warmup = 2, threads = 2;
  bool memory = false;
  app.add_option("--layer", layer, "s4d, s4, rtf or lssl")
      ->required()
      ->check(CLI::IsMember({"s4d", "s4", "rtf", "lssl"}));
  app.add_option("--H", H, "features (d_model)")->check(CLI::Range(1, 1 << 16));
  app.add_option("--N", N, "state size")->check(CLI::Range(2, 4096));
  app.add_option("--L", L, "sequence length")->check(CLI::Range(1, 1 << 22));
  app.add_option("--B", B, "batch size")->check(CLI::Range(1, 1 << 16));
  app.add_option("--runs", runs, "timed runs")->check(CLI::Range(1, 100000));
  app.add_option("--warmup", warmup, "untimed runs first")->check(CLI::Range(0, 100000));
  app.add_option("--threads", threads, "CPU threads")->check(CLI::Range(1, 1024));
  app.add_flag("--memory", memory, "report the peak memory of one forward + backward instead");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "bench_ssm: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    kernels::set_num_threads(threads);
    ModelConfig config;
    config.name = layer;
    config.d_model = H;
    config.d_state = N;
    Generator gen(0);
    auto block = make_s4_block(config, gen, nullptr, DType::Float32);
    Tensor x = randn({B, L, H}, DType::Float32, Device::cpu(), gen);
    const Tensor r = randn({B, L, H}, DType::Float32, Device::cpu(), gen);
    x.set_requires_grad(true);
    const auto params = block->parameters();
    auto step = [&] {
      backward(sum(block->forward(x) * r));
      x.zero_grad();
      for (const auto& p : params) const_cast<Tensor&>(p).zero_grad();
    };
    nlohmann::json out = {{"layer", layer}, {"H", H}, {"N", N},
                          {"L", L},         {"B", B}, {"threads", threads}};
    if (memory) {
      step();  // first call: FFT plans and other one-time allocations
      const auto before = cpu::host_allocator_stats().current_bytes;
      cpu::reset_host_peak_stats();
      step();
      out["peak_bytes"] = cpu::host_allocator_stats().peak_bytes - before;
    } else {
      for (int i = 0; i < warmup; ++i) step();
      std::vector<double> times;
      for (int i = 0; i < runs; ++i) {
        const double t0 = now_ms();
        step();
        times.push_back(now_ms() - t0);
      }
      out["runs_ms"] = times;
      std::sort(times.begin(), times.end());
      out["median_ms"] = times[times.size() / 2];
    }
    std::printf("%s\n", out.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_ssm: %s\n", e.what());
    return 2;
  }
  return 0;
}
