// bench_ops: forward + backward time of the core ops, the C++ half of
// bench/run_ops.py (which runs the same cases in PyTorch, bench/ops_torch.py,
// and writes bench/results/ops_<device>[_<preset>].json). Prints one JSON
// object per case:
//   {"op", "shape", "device", "median_ms", "min_ms", "runs", "threads", "bytes"}
// where bytes is the least memory traffic of the case's forward + backward
// (every input read once, every output written once), from which run_ops.py
// derives the achieved bandwidth.
// Usage: bench_ops [--runs N] [--warmup N] [--only NAME] [--device cpu|cuda]
//                  [--preset core|mamba130m] [--rows R] [--vocab V]
// Presets: core, the CPU set below; mamba130m, the memory-bound ops of a
// 130M-parameter Mamba (d_model 768, batch 16 x length 2048 = 32768 rows,
// vocabulary 50280, AdamW over its 129M parameters); --rows shrinks the rows
// (e.g. for a CPU run). On CUDA every timed step ends with a device
// synchronize.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "apps/omp_defaults.h"
#include "core/cuda/runtime.h"
#include "kernels/common.h"
#include "ssm.h"
#include "train/optim.h"

using namespace ssm;

namespace {

struct Case {
  std::string op, shape;
  std::function<void()> setup;  // builds fresh inputs (not timed)
  std::function<void()> step;   // forward + backward (timed)
  double bytes = 0;             // least memory traffic of one step (0: not memory-bound)
};

// The parameter shapes of Mamba-130M (24 layers, d_model 768, d_inner 1536,
// d_state 16, dt_rank 48, vocabulary 50280 with a tied head).
std::vector<Shape> mamba130m_shapes(std::int64_t vocab) {
  std::vector<Shape> s = {{vocab, 768}, {768}};
  for (int l = 0; l < 24; ++l) {
    for (const Shape& p : std::vector<Shape>{{3072, 768},
                                             {1536, 1, 4},
                                             {1536},
                                             {80, 1536},
                                             {1536, 48},
                                             {1536},
                                             {1536, 16},
                                             {1536},
                                             {768, 1536},
                                             {768}}) {
      s.push_back(p);
    }
  }
  return s;
}

double now_ms() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  ssm::use_passive_omp_threads(argv);
  int runs = 20, warmup = 3;
  std::string only, preset = "core", device_name = "cpu";
  std::int64_t rows = 16 * 2048, vocab = 50280;
  try {
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string a = argv[i];
      if (a == "--runs")
        runs = std::stoi(argv[i + 1]);
      else if (a == "--warmup")
        warmup = std::stoi(argv[i + 1]);
      else if (a == "--only")
        only = argv[i + 1];
      else if (a == "--preset")
        preset = argv[i + 1];
      else if (a == "--device")
        device_name = argv[i + 1];
      else if (a == "--rows")
        rows = std::stoll(argv[i + 1]);
      else if (a == "--vocab")
        vocab = std::stoll(argv[i + 1]);
      else {
        std::fprintf(stderr, "bench_ops: unknown argument %s\n", a.c_str());
        return 2;
      }
    }
    SSM_CHECK(preset == "core" || preset == "mamba130m", "bench_ops",
              "--preset must be core or mamba130m, got '", preset, "'");
    SSM_CHECK(runs >= 1 && warmup >= 0 && rows >= 1 && vocab >= 2, "bench_ops",
              "expected --runs >= 1, --warmup >= 0, --rows >= 1, --vocab >= 2");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_ops: %s\n", e.what());
    return 2;
  }
  const Device device = device_name == "cuda" ? Device::cuda() : Device::cpu();
  if (device_name != "cpu" && device_name != "cuda") {
    std::fprintf(stderr, "bench_ops: --device must be cpu or cuda, got %s\n", device_name.c_str());
    return 2;
  }
  if (device.is_cuda() && !cuda_available()) {
    std::fprintf(stderr, "bench_ops: --device cuda but no CUDA GPU is visible\n");
    return 2;
  }
  Generator gen(0);
  Tensor a, b, x, w, bias, target, g, z;  // re-bound by each case's setup
  std::vector<NamedParameter> params;
  std::unique_ptr<Optimizer> opt;
  auto leaf = [&](const Shape& s) {
    Tensor t = randn(s, DType::Float32, device, gen);
    t.set_requires_grad(true);
    return t;
  };
  auto constant = [&](const Shape& s) { return randn(s, DType::Float32, device, gen); };
  auto tokens = [&](std::int64_t n, std::int64_t classes) {
    const auto u = rand({n}, DType::Float32, Device::cpu(), gen).to_vector<float>();
    std::vector<std::int64_t> idx(u.size());
    for (std::size_t i = 0; i < u.size(); ++i) {
      idx[i] = static_cast<std::int64_t>(u[i] * static_cast<float>(classes)) % classes;
    }
    return Tensor::from_vector<std::int64_t>(idx, {n}).to(device);
  };
  const std::int64_t R = rows, D = 768, V = vocab;
  const std::string rd = std::string("(").append(std::to_string(R)).append(", 768)");
  std::vector<Case> mamba = {
      {"layer_norm", rd,
       [&] {
         x = leaf({R, D});
         w = leaf({D});
         bias = leaf({D});
         g = constant({R, D});
       },
       [&] {
         backward(layer_norm(x, {D}, w, bias), g);
         x.zero_grad();
         w.zero_grad();
         bias.zero_grad();
       },
       5.0 * 4 * R * D},
      {"rms_norm", rd,
       [&] {
         x = leaf({R, D});
         w = leaf({D});
         g = constant({R, D});
       },
       [&] {
         backward(rms_norm(x, {D}, w), g);
         x.zero_grad();
         w.zero_grad();
       },
       5.0 * 4 * R * D},
      {"softmax_cross_entropy",
       std::string("(")
           .append(std::to_string(R))
           .append(", ")
           .append(std::to_string(V))
           .append(")"),
       [&] {
         x = leaf({R, V});
         target = tokens(R, V);
       },
       [&] {
         backward(cross_entropy(x, target));
         x.zero_grad();
       },
       3.0 * 4 * R * V},
      {"elementwise_chain",
       std::string("silu(x) * z + x, (").append(std::to_string(R)).append(", 1536)"),
       [&] {
         x = leaf({R, 2 * D});
         z = leaf({R, 2 * D});
         g = constant({R, 2 * D});
       },
       [&] {
         backward(add(mul(silu(x), z), x), g);
         x.zero_grad();
         z.zero_grad();
       },
       8.0 * 4 * R * 2 * D},
      {"embedding",
       std::string("weight (")
           .append(std::to_string(V))
           .append(", 768), ")
           .append(std::to_string(R))
           .append(" tokens"),
       [&] {
         w = leaf({V, D});
         target = tokens(R, V);
         g = constant({R, D});
       },
       [&] {
         backward(embedding(target, w), g);
         w.zero_grad();
       },
       4.0 * (3 * R * D + V * D)},
      {"adamw", "Mamba-130M parameters",
       [&] {
         params.clear();
         std::int64_t n = 0;
         for (const Shape& s : mamba130m_shapes(V)) {
           Tensor p = leaf(s);
           p.set_grad(constant(s));
           params.push_back({std::string("p").append(std::to_string(params.size())), p, {}});
           n += p.numel();
         }
         OptimizerConfig c;
         c.name = "adamw";
         c.lr = 1e-3;
         c.weight_decay = 0.1;
         opt = make_optimizer(params, c);
         (void)n;
       },
       [&] { opt->step(); }, 0.0},
  };
  {
    std::int64_t n = 0;
    for (const Shape& s : mamba130m_shapes(V)) n += shape_numel(s);
    mamba.back().shape = std::to_string(n).append(" parameters (Mamba-130M)");
    mamba.back().bytes = 7.0 * 4 * static_cast<double>(n);  // read p g m v, write p m v
  }
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
         target = Tensor::from_vector<std::int64_t>(idx, {4096}).to(device);
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
  if (preset == "mamba130m") cases = mamba;
  try {
    for (auto& c : cases) {
      if (!only.empty() && c.op != only) continue;
      c.setup();
      for (int i = 0; i < warmup; ++i) c.step();
      if (device.is_cuda()) cuda::synchronize();
      std::vector<double> times;
      for (int i = 0; i < runs; ++i) {
        const double t0 = now_ms();
        c.step();
        if (device.is_cuda()) cuda::synchronize();
        times.push_back(now_ms() - t0);
      }
      std::sort(times.begin(), times.end());
      std::printf(
          "{\"op\": \"%s\", \"shape\": \"%s\", \"device\": \"%s\", \"median_ms\": %.4f, "
          "\"min_ms\": %.4f, \"runs\": %d, \"threads\": %d, \"bytes\": %.0f}\n",
          c.op.c_str(), c.shape.c_str(), device.str().c_str(), times[times.size() / 2],
          times.front(), runs, kernels::num_threads(), c.bytes);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_ops: %s\n", e.what());
    return 2;
  }
  return 0;
}
