// bench_ops: forward + backward time of the core CPU ops, the C++ half of
// bench/run_ops.py (which runs the same cases in PyTorch and writes
// bench/results/ops_cpu.json). Prints one JSON object per case:
//   {"op": ..., "shape": ..., "median_ms": ..., "min_ms": ..., "runs": ...}
// Usage: bench_ops [--runs N] [--warmup N] [--only NAME]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "apps/omp_defaults.h"
#include "kernels/common.h"
#include "ssm.h"

using namespace ssm;

namespace {

struct Case {
  std::string op, shape;
  std::function<void()> setup;  // builds fresh inputs (not timed)
  std::function<void()> step;   // forward + backward (timed)
};

double now_ms() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  ssm::use_passive_omp_threads(argv);
  int runs = 20, warmup = 3;
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--runs")
      runs = std::stoi(argv[i + 1]);
    else if (a == "--warmup")
      warmup = std::stoi(argv[i + 1]);
    else if (a == "--only")
      only = argv[i + 1];
    else {
      std::fprintf(stderr, "bench_ops: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  Generator gen(0);
  Tensor a, b, x, w, bias, target;  // re-bound by each case's setup
  auto leaf = [&](const Shape& s) {
    Tensor t = randn(s, DType::Float32, Device::cpu(), gen);
    t.set_requires_grad(true);
    return t;
  };
  std::vector<Case> cases = {
      {"matmul", "1024x1024 @ 1024x1024",
       [&] {
         a = leaf({1024, 1024});
         b = leaf({1024, 1024});
       },
       [&] {
         backward(sum(matmul(a, b)));
         a.zero_grad();
         b.zero_grad();
       }},
      {"layer_norm", "(8192, 512)",
       [&] {
         x = leaf({8192, 512});
         w = leaf({512});
         bias = leaf({512});
       },
       [&] {
         backward(sum(layer_norm(x, {512}, w, bias)));
         x.zero_grad();
         w.zero_grad();
         bias.zero_grad();
       }},
      {"softmax_cross_entropy", "(4096, 1000)",
       [&] {
         x = leaf({4096, 1000});
         // targets uniform over the 1000 classes
         const auto u = rand({4096}, DType::Float32, Device::cpu(), gen).to_vector<float>();
         std::vector<std::int64_t> idx(u.size());
         for (std::size_t i = 0; i < u.size(); ++i) {
           idx[i] = static_cast<std::int64_t>(u[i] * 1000) % 1000;
         }
         target = Tensor::from_vector<std::int64_t>(idx, {4096});
       },
       [&] {
         backward(cross_entropy(x, target));
         x.zero_grad();
       }},
      {"causal_conv1d_silu", "x (8, 512, 1024), w (512, 4)",
       [&] {
         x = leaf({8, 512, 1024});
         w = leaf({512, 4});
         bias = leaf({512});
       },
       [&] {
         backward(sum(causal_conv1d(x, w, bias, /*silu=*/true)));
         x.zero_grad();
         w.zero_grad();
         bias.zero_grad();
       }},
      {"conv2d", "x (16, 32, 32, 32), w (64, 32, 3, 3), pad 1",
       [&] {
         x = leaf({16, 32, 32, 32});
         w = leaf({64, 32, 3, 3});
         bias = leaf({64});
       },
       [&] {
         backward(sum(conv2d(x, w, bias, 1, 1)));
         x.zero_grad();
         w.zero_grad();
         bias.zero_grad();
       }},
      {"gelu", "(8192, 512)",
       [&] {
         x = leaf({8192, 512});
       },
       [&] {
         backward(sum(gelu(x)));
         x.zero_grad();
       }},
  };
  for (auto& c : cases) {
    if (!only.empty() && c.op != only) continue;
    c.setup();
    for (int i = 0; i < warmup; ++i) c.step();
    std::vector<double> times;
    for (int i = 0; i < runs; ++i) {
      const double t0 = now_ms();
      c.step();
      times.push_back(now_ms() - t0);
    }
    std::sort(times.begin(), times.end());
    std::printf(
        "{\"op\": \"%s\", \"shape\": \"%s\", \"median_ms\": %.4f, \"min_ms\": %.4f, "
        "\"runs\": %d, \"threads\": %d}\n",
        c.op.c_str(), c.shape.c_str(), times[times.size() / 2], times.front(), runs,
        kernels::num_threads());
    std::fflush(stdout);
  }
  return 0;
}
