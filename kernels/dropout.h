#pragma once
// Dropout kernels (inverted dropout). Raw compute; the differentiable op
// lives in autograd/ops/norm.h.
#include <utility>

#include "core/rng.h"
#include "core/tensor.h"

namespace ssm::kernels {

// Inverted dropout (Srivastava et al. 2014; PyTorch F.dropout in training):
//   keep ~ Bernoulli(1 - p) per element (bernoulli_ on gen),
//   mask = keep / (1 - p),  y = x * mask.
// p in [0, 1]; p == 1 gives zeros without drawing from gen. Returns {y, mask}:
// mask has x's shape and dtype and is what backward multiplies by.
std::pair<Tensor, Tensor> dropout_forward(const Tensor& x, double p, Generator& gen);
// grad * mask.
Tensor dropout_backward(const Tensor& grad, const Tensor& mask);

}  // namespace ssm::kernels
