#pragma once
// CUDA versions of the reductions (kernels/reduce.h), float32 only.
// kernels/cpu/reduce.cpp dispatches to them for CUDA tensors. normalize_dims
// and reduced_shape are shape arithmetic and serve both devices.
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "kernels/reduce.h"

namespace ssm::kernels::cuda {

Tensor sum_forward(const Tensor& x, const std::vector<std::int64_t>& dims, bool keepdim);
Tensor sum_backward(const Tensor& grad, const Shape& x_shape, const std::vector<std::int64_t>& dims,
                    bool keepdim);
std::pair<Tensor, Tensor> max_forward(const Tensor& x, const std::vector<std::int64_t>& dims,
                                      bool keepdim);
Tensor max_backward(const Tensor& grad, const Tensor& argmax, const Shape& x_shape,
                    const std::vector<std::int64_t>& dims, bool keepdim);
Tensor logsumexp_forward(const Tensor& x, const std::vector<std::int64_t>& dims, bool keepdim);
Tensor logsumexp_backward(const Tensor& grad, const Tensor& x, const Tensor& out,
                          const std::vector<std::int64_t>& dims, bool keepdim);

}  // namespace ssm::kernels::cuda
