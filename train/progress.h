#pragma once
// Text pieces of the training display: durations, the progress bar, and the
// plain lines written when the output is not a terminal.
#include <cstdint>
#include <string>

namespace ssm {

// "0:07", "12:03", "1:02:03" (hours:minutes:seconds; "-" for negative or non-finite).
std::string format_duration(double seconds);

struct ProgressLine {
  std::int64_t epoch = 0, epochs = 0;  // 1-based epoch; epochs 0 when max_steps decides
  std::int64_t step = 0, total_steps = 0;
  std::int64_t epoch_step = 0, epoch_steps = 0;  // within the epoch (bar only)
  double loss = 0.0, accuracy = 0.0, lr = 0.0, samples_per_s = 0.0, eta_s = 0.0;
};

// "epoch 2/5 [########------------]  24/60 loss 0.4312 acc 0.875 lr 1.00e-03 2310 samples/s ETA
// 0:12"
std::string format_bar(const ProgressLine& p, int width = 20);
// "step 120/300 epoch 2 loss 0.4312 acc 0.875 lr 1.00e-03 2310 samples/s ETA 0:12"
std::string format_plain(const ProgressLine& p);

}  // namespace ssm
