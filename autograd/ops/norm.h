#pragma once
// Differentiable normalization ops (layer norm, RMS norm, batch norm) and
// dropout, with PyTorch semantics. Hand-written forward and backward kernels
// in kernels/cpu/norm.cpp and kernels/cpu/dropout.cpp.
#include "core/rng.h"
#include "core/tensor.h"

namespace ssm {

// F.layer_norm: normalizes over the trailing dims given by normalized_shape
// (which must equal x's trailing dims) with the biased variance:
//   y = (x - mean) / sqrt(var + eps) * weight + bias
// weight and bias (shape normalized_shape) are optional.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

// RMS norm (Zhang & Sennrich 2019) over the trailing dims normalized_shape:
//   y = x / sqrt(mean(x^2) + eps) * weight
// eps defaults to 1e-6 (LLaMA's and T5's choice; torch.nn.RMSNorm's default
// is the dtype's machine epsilon, so pass eps to match it exactly).
Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                double eps = 1e-6);

// F.batch_norm for x of shape (N, C) or (N, C, L...) (BatchNorm1d / 2d / 3d).
// training: normalizes with the batch mean and biased variance per channel,
// and updates running_mean / running_var in place (no gradient) with the
// unbiased variance: running = (1 - momentum) running + momentum stat. The
// running stats may be undefined in training (no tracking).
// eval: normalizes with running_mean / running_var (required).
// weight and bias (C) are optional.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum = 0.1,
                  double eps = 1e-5);

// Inverted dropout: in training, each element is kept with probability 1 - p
// (a Bernoulli mask drawn from gen) and scaled by 1 / (1 - p); identity when
// !training or p == 0 (nothing is drawn); zeros when p == 1. p must lie in [0, 1].
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen = default_generator());

}  // namespace ssm
