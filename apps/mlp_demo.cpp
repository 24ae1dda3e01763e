// mlp_demo: trains a 2-layer MLP on a generated XOR problem and prints its
// accuracy. Usage: mlp_demo [--epochs N] [--seed S] [--lr X]
#include "train/mlp_demo.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "apps/omp_defaults.h"
#include "core/error.h"

int main(int argc, char** argv) {
  ssm::use_passive_omp_threads(argv);
  ssm::MlpDemoOptions o;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        std::printf(
            "usage: mlp_demo [--epochs N] [--seed S] [--lr X]\n"
            "Trains a 2-layer MLP with SGD on a generated XOR problem.\n");
        return 0;
      }
      SSM_CHECK(i + 1 < argc, "mlp_demo", "missing value after ", arg);
      const std::string value = argv[++i];
      std::size_t used = 0;
      if (arg == "--epochs") {
        o.epochs = std::stoll(value, &used);
      } else if (arg == "--seed") {
        o.seed = std::stoull(value, &used);
      } else if (arg == "--lr") {
        o.lr = std::stod(value, &used);
      } else {
        ssm::fail("mlp_demo", "unknown argument ", arg, " (see --help)");
      }
      SSM_CHECK(used == value.size(), "mlp_demo", "cannot parse '", value, "' for ", arg);
    }
    std::printf("mlp_demo: 2-layer MLP (2-%lld-2, ReLU), SGD lr %g, %lld samples, seed %llu\n",
                static_cast<long long>(o.hidden), o.lr, static_cast<long long>(o.samples),
                static_cast<unsigned long long>(o.seed));
    const auto r = ssm::run_mlp_demo(o, [&](std::int64_t epoch, double loss, double acc) {
      if ((epoch + 1) % 10 == 0 || epoch == 0) {
        std::printf("epoch %3lld  loss %.4f  accuracy %.1f%%\n", static_cast<long long>(epoch + 1),
                    loss, 100.0 * acc);
      }
    });
    std::printf("done: %lld steps, loss %.4f -> %.4f, training accuracy %.1f%%\n",
                static_cast<long long>(r.steps), r.initial_loss, r.final_loss, 100.0 * r.accuracy);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mlp_demo: %s\n", e.what());
    return 2;
  }
}
