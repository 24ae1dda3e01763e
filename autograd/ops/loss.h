#pragma once
// Differentiable softmax, log-softmax and losses, with PyTorch's semantics
// (torch.softmax, log_softmax, nn.functional.cross_entropy, nll_loss,
// mse_loss). Each op is a hand-written kernel pair (kernels/softmax.h,
// kernels/loss.h), not a composition: cross_entropy is fused.
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace ssm {

// exp(x - max) / sum exp(x - max) along dim (any dim, negative counts from the end).
Tensor softmax(const Tensor& x, std::int64_t dim = -1);
// x - max - log sum exp(x - max) along dim.
Tensor log_softmax(const Tensor& x, std::int64_t dim = -1);

struct CrossEntropyOptions {
  // Targets equal to it contribute 0 and are left out of the mean.
  std::int64_t ignore_index = -100;
  // eps in [0, 1]: loss = (1 - eps) nll + eps mean_c(-log p_c).
  double label_smoothing = 0.0;
  // "mean" (over non-ignored targets; NaN when all are ignored), "sum" or "none".
  std::string reduction = "mean";
};

// logits (N, C) or (N, C, d1, ..., dk), classes along dim 1 (or (C) for one
// sample); target int32/int64 class indices (N) or (N, d1, ..., dk) (or ()).
// Returns () for mean / sum, the target's shape for none. Only logits get a
// gradient. A target outside [0, C) that is not ignore_index throws.
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     const CrossEntropyOptions& options = {});

// The negative log-likelihood of log-probabilities (shaped as the logits of
// cross_entropy): -log_probs[n, target, ...], reduced as cross_entropy.
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, std::int64_t ignore_index = -100,
                const std::string& reduction = "mean");

// (input - target)^2 elementwise, then "mean", "sum" or "none". input and target
// must have the same shape (no broadcasting) and dtype; both get gradients.
Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction = "mean");

}  // namespace ssm
