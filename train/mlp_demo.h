#pragma once
// The end-to-end demo that ./run.sh runs until the training command exists:
// a 2-layer MLP (2 -> hidden -> 2, ReLU) trained with minibatch SGD on the
// generated XOR problem of data/toy.h, reporting loss and accuracy.
#include <cstdint>
#include <functional>

namespace ssm {

struct MlpDemoOptions {
  std::int64_t samples = 512;
  std::int64_t hidden = 32;
  std::int64_t batch = 64;
  std::int64_t epochs = 60;
  double lr = 0.2;
  std::uint64_t seed = 0;
};

struct MlpDemoResult {
  double initial_loss = 0.0;  // full-data loss before training
  double final_loss = 0.0;    // full-data loss after training
  double accuracy = 0.0;      // training accuracy after training, in [0, 1]
  std::int64_t steps = 0;
};

// on_epoch(epoch, loss, accuracy) is called after each epoch when set.
MlpDemoResult run_mlp_demo(const MlpDemoOptions& options,
                           const std::function<void(std::int64_t, double, double)>& on_epoch = {});

}  // namespace ssm
