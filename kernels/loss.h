#pragma once
// Loss kernels with PyTorch's semantics: fused cross-entropy (log-softmax +
// negative log-likelihood in one pass, with ignore_index and label
// smoothing), nll_loss and mse_loss. Raw compute; the differentiable ops live
// in autograd/ops/loss.h.
//
// Class-index losses take scores of shape (N, C) or (N, C, d1, ..., dk), the
// class dim being dim 1 (a 1-D (C) input is one sample), and int32/int64
// targets of shape (N) or (N, d1, ..., dk) (() for a 1-D input).
#include <cstdint>

#include "core/tensor.h"

namespace ssm::kernels {

// How per-element losses become the output: kept (shape of the target), summed,
// or averaged (over the non-ignored targets for class-index losses).
enum class Reduction { None, Mean, Sum };

struct ClassLossParams {
  std::int64_t ignore_index = -100;  // targets equal to it add nothing and count for nothing
  double label_smoothing = 0.0;      // eps in [0, 1] (cross-entropy only)
  Reduction reduction = Reduction::Mean;
};

// ---------------------------------------------------------------- cross-entropy

struct CrossEntropyResult {
  Tensor loss;  // () for mean / sum, the target's shape for none
  // What backward needs, per position (N * d1 * ... * dk): m = max_c x_c and
  // log_sum = log sum_c exp(x_c - m), so that log p_c = (x_c - m) - log_sum.
  Tensor max, log_sum;
  std::int64_t count = 0;  // the number of non-ignored targets
};

// Per position with target t != ignore_index, with lse = log sum_c exp(x_c):
//   loss = (1 - eps) (lse - x_t) + eps (lse - mean_c x_c)
// i.e. (1 - eps) nll + eps mean_c(-log p_c); ignored positions give 0.
// Mean divides the sum by count (0 / 0 = NaN when every target is ignored).
// A target outside [0, C) that is not ignore_index throws.
CrossEntropyResult cross_entropy_forward(const Tensor& logits, const Tensor& target,
                                         const ClassLossParams& params);
// gx_c = w (softmax_c - (1 - eps) [c == t] - eps / C), w = grad (sum), grad / count
// (mean) or grad at the position (none); 0 at ignored positions.
Tensor cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& target,
                              const CrossEntropyResult& saved, const ClassLossParams& params);

// ---------------------------------------------------------------- nll_loss

// loss = -log_probs[t] per non-ignored position, reduced like cross-entropy.
// Returns {loss, count}.
std::pair<Tensor, std::int64_t> nll_loss_forward(const Tensor& log_probs, const Tensor& target,
                                                 const ClassLossParams& params);
// gx = -w at the target class, 0 elsewhere (w as for cross-entropy).
Tensor nll_loss_backward(const Tensor& grad, const Shape& log_probs_shape, const Tensor& target,
                         std::int64_t count, const ClassLossParams& params);

// ---------------------------------------------------------------- mse_loss

// (input - target)^2 per element, kept, summed or averaged over all elements.
// input and target have the same shape and dtype.
Tensor mse_loss_forward(const Tensor& input, const Tensor& target, Reduction reduction);
// ginput = 2 w (input - target), gtarget = -ginput (w = grad, grad / numel or
// grad per element). Returns {ginput, gtarget}, each undefined unless needed.
std::pair<Tensor, Tensor> mse_loss_backward(const Tensor& grad, const Tensor& input,
                                            const Tensor& target, Reduction reduction,
                                            bool need_input, bool need_target);

}  // namespace ssm::kernels
