#pragma once
// Optimizers over parameter groups, gradient clipping, and their state for
// checkpoints.
//
// Groups follow the S4 recipe (build_param_groups): parameters tagged "ssm"
// take optimizer.ssm_lr (default lr) and optimizer.ssm_weight_decay (default
// 0); parameters tagged "no_decay" (biases, norm weights) and every 1-d
// parameter take no weight decay; the rest take lr and weight_decay. A
// scheduler scales each group's base_lr by the same factor.
//
// Update rules (PyTorch's, checked against torch.optim by a golden test):
//   SGD:   g += wd p; b = mu b + g (b = g at the first step); g = nesterov ? g + mu b : b;
//          p -= lr g
//   Adam:  g += wd p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
//          p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
//   AdamW: p *= 1 - lr wd; then Adam without the wd term.
// Steps run without recording on the tape; a parameter whose .grad is
// undefined is left alone (and its step count does not advance).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"
#include "train/config.h"

namespace ssm {

struct ParamGroup {
  std::string name;  // "default", "ssm" or "no_decay"
  std::vector<NamedParameter> params;
  double base_lr = 0.0;  // lr before the scheduler's factor
  double lr = 0.0;       // lr of the next step
  double weight_decay = 0.0;
};

std::vector<ParamGroup> build_param_groups(const std::vector<NamedParameter>& params,
                                           const OptimizerConfig& config);

// The optimizer's state for a checkpoint: per-parameter tensors by key
// ("<param name>/exp_avg", "<param name>/exp_avg_sq", "<param name>/momentum_buffer")
// and per-parameter step counts ("<param name>/step").
struct OptimizerState {
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::vector<std::pair<std::string, std::int64_t>> counters;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void step() = 0;  // one update of every parameter with a gradient
  void zero_grad();         // drops every parameter's .grad
  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  // Sets each group's lr to base_lr * factor.
  void set_lr_factor(double factor);
  virtual OptimizerState state() const = 0;
  // Restores state(); throws ssm::Error naming the key when an entry is
  // missing, unexpected, or of the wrong shape.
  virtual void load_state(const OptimizerState& state) = 0;

 protected:
  explicit Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {}
  std::vector<ParamGroup> groups_;
};

// Builds the optimizer config.name names over the groups of `params`.
std::unique_ptr<Optimizer> make_optimizer(const std::vector<NamedParameter>& params,
                                          const OptimizerConfig& config);

// Global L2 norm of every gradient (undefined grads count as zero), computed
// in float64. When max_norm > 0 and the norm exceeds it, scales every
// gradient by max_norm / (norm + 1e-6) (PyTorch's clip_grad_norm_). Returns
// the norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// The learning-rate factor of scheduler.name at optimizer step `step`
// (0-based) of `total_steps`:
//   warmup: (step + 1) / warmup_steps while step < warmup_steps, then
//   constant: 1
//   cosine:   min_lr_ratio + (1 - min_lr_ratio) (1 + cos(pi s / S)) / 2 with
//             s = step - warmup_steps, S = total_steps - warmup_steps
//   step:     gamma ^ floor((step - warmup_steps) / step_size)
double lr_factor(const SchedulerConfig& scheduler, std::int64_t step, std::int64_t total_steps);

}  // namespace ssm
