// bench_mamba: forward + backward time of the selective scan or of a whole
// Mamba block, the C++ half of bench/run_mamba.py (which runs the same cases
// in PyTorch, bench/mamba_torch.py, and writes bench/results/mamba_cpu.json).
// Prints one JSON object: {"case", sizes..., "threads", "runs_ms", "median_ms"}.
// Usage: bench_mamba --case scan|block [--B 8 --D 512 --N 16 --L 1024]
//                    [--d_model 256 --batch 8 --seq 1024] [--runs 10] [--warmup 2] [--threads 2]
// scan: input-dependent B and C (one group), z, D, delta_bias, softplus, float32.
// block: Mamba(d_model) (expand 2, d_state 16, d_conv 4), x (batch, seq, d_model).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/omp_defaults.h"
#include "autograd/ops/selective_scan.h"
#include "kernels/common.h"
#include "layers/ssm/mamba.h"
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
  CLI::App app{"Times forward + backward of the selective scan or of a Mamba block.",
               "bench_mamba"};
  std::string which;
  std::int64_t B = 8, D = 512, N = 16, L = 1024, d_model = 256, batch = 8, seq = 1024;
  int runs = 10, warmup = 2, threads = 2;
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "bench_mamba: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    kernels::set_num_threads(threads);
    Generator gen(0);
    auto leaf = [&](const Shape& s, double scale = 1.0) {
      Tensor t = mul(randn(s, DType::Float32, Device::cpu(), gen), scale);
      t.set_requires_grad(true);
      return t;
    };
    std::function<void()> step;
    nlohmann::json out = {{"case", which}, {"threads", threads}};
    Tensor u, delta, A, Bm, Cm, Dv, z, bias, x, r;
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
      r = randn({B, D, L}, DType::Float32, Device::cpu(), gen);
      step = [&] {
        const Tensor An = neg(exp(A));
        backward(sum(selective_scan(u, delta, An, Bm, Cm, Dv, z, bias, true).y * r));
      };
      out.update({{"B", B}, {"D", D}, {"N", N}, {"L", L}});
    } else {
      MambaOptions o;
      block = std::make_shared<Mamba>(d_model, o, gen);
      x = leaf({batch, seq, d_model});
      r = randn({batch, seq, d_model}, DType::Float32, Device::cpu(), gen);
      leaves = block->parameters();
      leaves.push_back(x);
      step = [&] { backward(sum(block->forward(x) * r)); };
      out.update(
          {{"d_model", d_model}, {"batch", batch}, {"seq", seq}, {"d_state", 16}, {"expand", 2}});
    }
    auto timed = [&] {
      const double t0 = now_ms();
      step();
      const double t = now_ms() - t0;
      for (auto& t_ : leaves) t_.zero_grad();
      return t;
    };
    for (int i = 0; i < warmup; ++i) timed();
    std::vector<double> times;
    for (int i = 0; i < runs; ++i) times.push_back(timed());
    out["runs_ms"] = times;
    std::sort(times.begin(), times.end());
    out["median_ms"] = times[times.size() / 2];
    std::printf("%s\n", out.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_mamba: %s\n", e.what());
    return 2;
  }
  return 0;
}
