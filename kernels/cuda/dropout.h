#pragma once
// CUDA dropout (kernels/cuda/dropout.cu): the same entry points and
// semantics as kernels/dropout.h, float32 only; the mask is bit for bit the
// CPU's for the same generator state.
#include <utility>

#include "core/rng.h"
#include "core/tensor.h"

namespace ssm::kernels::cuda {

std::pair<Tensor, Tensor> dropout_forward(const Tensor& x, double p, Generator& gen);
Tensor dropout_backward(const Tensor& grad, const Tensor& mask);

}  // namespace ssm::kernels::cuda
