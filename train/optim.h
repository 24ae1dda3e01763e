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
// Update rules: torch.optim's (PyTorch 1.13, foreach=False), with its
// rounding: the same operations in the same order, in the parameter's dtype
// (float32 or float64; scalars such as lr are converted to it first), fused
// multiply-adds where PyTorch's kernels fuse them. A golden test replays
// torch.optim (scripts/reference/optim_reference.py). Per parameter:
//   SGD:   d = g + wd p; b = d at the parameter's first step, else b = mu b + d;
//          d = nesterov ? d + mu b : b; p = p - lr d
//   Adam:  g = g + wd p; t = the parameter's step count (1 at its first step);
//          m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
//          p = p - (lr / (1-b1^t)) m / (sqrt(v) / sqrt(1-b2^t) + eps)
//   AdamW: p = (1 - lr wd) p; then Adam without the wd term.
// Steps run without recording on the tape; a parameter whose .grad is
// undefined is left alone (and its step count does not advance). Parameters
// must live on the CPU for now: step() throws for a CUDA one.
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
// ("<param name>/exp_avg", "<param name>/exp_avg_sq" for Adam and AdamW,
// "<param name>/momentum_buffer" for SGD with momentum) and per-parameter
// step counts ("<param name>/step", every optimizer). A momentum buffer is
// unset until the parameter's first step and reads as zeros until then.
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
  // Sets each group's lr to base_lr * factor (factor finite and >= 0).
  void set_lr_factor(double factor);
  // A snapshot: CPU copies of the state tensors, in group and parameter order.
  virtual OptimizerState state() const = 0;
  // Restores state(): an optimizer built over identical parameters then
  // continues bit-identically. Throws ssm::Error naming every key that is
  // missing, unexpected, of the wrong shape or dtype, or a negative count,
  // and then loads nothing.
  virtual void load_state(const OptimizerState& state) = 0;

 protected:
  explicit Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {}
  std::vector<ParamGroup> groups_;
};

// Builds the optimizer config.name names ("adamw", "adam" or "sgd") over the
// groups of `params`; an unknown name or an invalid setting throws. Parameter
// names must be unique (they key the state).
std::unique_ptr<Optimizer> make_optimizer(const std::vector<NamedParameter>& params,
                                          const OptimizerConfig& config);

// Global L2 norm of every gradient (undefined grads count as zero), computed
// in float64. When max_norm > 0, scales every gradient in place by
// c = max_norm / (norm + 1e-6) when c < 1, i.e. when norm + 1e-6 > max_norm
// (PyTorch's clip_grad_norm_, which multiplies by min(c, 1)).
// Returns the norm before clipping; a NaN or infinite norm is returned as it
// is and scales nothing.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// The learning-rate factor of scheduler.name at optimizer step `step`
// (0-based) of `total_steps`:
//   warmup: (step + 1) / warmup_steps while step < warmup_steps, then
//   constant: 1
//   cosine:   min_lr_ratio + (1 - min_lr_ratio) (1 + cos(pi s / S)) / 2 with
//             s = min(step - warmup_steps, S), S = total_steps - warmup_steps
//             (min_lr_ratio from the end on, and whenever S <= 0)
//   step:     gamma ^ floor((step - warmup_steps) / step_size)
// Throws for an unknown name, a negative step, or step_size <= 0 ("step").
double lr_factor(const SchedulerConfig& scheduler, std::int64_t step, std::int64_t total_steps);

}  // namespace ssm
