#pragma once
// CUDA versions of the shape kernels (kernels/shape.h), float32 on the GPU;
// index tensors int32 or int64. kernels/cpu/shape.cpp dispatches here for
// CUDA tensors (SSM_CUDA_DISPATCH). pad_backward needs no CUDA version: it is
// pad_forward of the gradient with the pads negated, which dispatches.
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace ssm::kernels::cuda {

Tensor cat_forward(const std::vector<Tensor>& xs, std::int64_t dim);

Tensor pad_forward(const Tensor& x, const std::vector<std::int64_t>& pads, double value);

Tensor index_select_forward(const Tensor& x, std::int64_t dim, const Tensor& index);
Tensor index_select_backward(const Tensor& grad, const Shape& x_shape, std::int64_t dim,
                             const Tensor& index);

Tensor gather_forward(const Tensor& x, std::int64_t dim, const Tensor& index);
Tensor gather_backward(const Tensor& grad, const Shape& x_shape, std::int64_t dim,
                       const Tensor& index);

Tensor embedding_forward(const Tensor& indices, const Tensor& weight);
Tensor embedding_backward(const Tensor& grad, const Tensor& indices, std::int64_t num_embeddings,
                          std::int64_t padding_idx);

}  // namespace ssm::kernels::cuda
