#pragma once
// CUDA softmax and log-softmax along one dim (kernels/cuda/softmax.cu): the
// same entry points and semantics as kernels/softmax.h, float32 only.
#include <cstdint>

#include "core/tensor.h"

namespace ssm::kernels::cuda {

Tensor softmax_forward(const Tensor& x, std::int64_t dim);
Tensor softmax_backward(const Tensor& grad, const Tensor& y, std::int64_t dim);
Tensor log_softmax_forward(const Tensor& x, std::int64_t dim);
Tensor log_softmax_backward(const Tensor& grad, const Tensor& y, std::int64_t dim);

}  // namespace ssm::kernels::cuda
