#pragma once
// Normalization kernels: layer norm, RMS norm and batch norm, forward and
// backward. Raw compute; the differentiable ops live in autograd/ops/norm.h.
//
// Layer and RMS norm view x as (M, N) rows: N is the number of elements of
// the normalized (trailing) dims, M the number of rows. Batch norm views x as
// (N, C, L): C channels, L the product of the dims after the channel dim
// (1 for a (N, C) input).
//
// Statistics are accumulated in double for float32 and float64 inputs; the
// saved mean / rstd have x's dtype. The reductions over rows that give the
// weight and bias gradients run over a fixed partition of the rows (it does
// not depend on the thread count) and are combined in a fixed order: the
// results are bitwise reproducible on any number of threads.
#include <cstdint>

#include "core/tensor.h"

namespace ssm::kernels {

// What a normalization forward returns: the output and the per-row (layer
// and RMS norm) or per-channel (batch norm) statistics that backward needs.
// mean is undefined for RMS norm.
struct NormForward {
  Tensor y;
  Tensor mean;
  Tensor rstd;
};

// Gradients of a normalization; an entry is undefined when it was not asked for.
struct NormGrads {
  Tensor gx;
  Tensor gweight;
  Tensor gbias;
};

// ---------------------------------------------------------------- layer norm

// Per row: mean = sum x / N, var = sum (x - mean)^2 / N (biased),
// rstd = 1 / sqrt(var + eps), y = (x - mean) * rstd * weight + bias.
// weight and bias (N elements each) may be undefined (then 1 and 0).
// mean and rstd have shape x.shape()[:-k] where k = normalized dims.
NormForward layer_norm_forward(const Tensor& x, std::int64_t normalized_dims, const Tensor& weight,
                               const Tensor& bias, double eps);
NormGrads layer_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& mean,
                              const Tensor& rstd, const Tensor& weight, bool need_x,
                              bool need_weight, bool need_bias);

// ---------------------------------------------------------------- RMS norm

// Per row: rstd = 1 / sqrt(sum x^2 / N + eps), y = x * rstd * weight.
NormForward rms_norm_forward(const Tensor& x, std::int64_t normalized_dims, const Tensor& weight,
                             double eps);
NormGrads rms_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& rstd,
                            const Tensor& weight, bool need_x, bool need_weight);

// ---------------------------------------------------------------- batch norm

// x (N, C, L...). training: mean and biased var per channel over (N, L...),
// and, when running_mean / running_var are defined, the in-place update
//   running_mean = (1 - momentum) running_mean + momentum mean
//   running_var  = (1 - momentum) running_var  + momentum var * m / (m - 1)
// (m = N * L, the unbiased variance, as PyTorch). Eval: mean = running_mean,
// var = running_var. Then y = (x - mean) * rstd * weight + bias per channel,
// rstd = 1 / sqrt(var + eps). The returned mean / rstd (C) are the ones used.
NormForward batch_norm_forward(const Tensor& x, const Tensor& running_mean,
                               const Tensor& running_var, const Tensor& weight, const Tensor& bias,
                               bool training, double momentum, double eps);
// training: the statistics depend on x; eval: y is an affine map of x.
NormGrads batch_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& mean,
                              const Tensor& rstd, const Tensor& weight, bool training, bool need_x,
                              bool need_weight, bool need_bias);

}  // namespace ssm::kernels
