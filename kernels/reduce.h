#pragma once
// Reductions over a set of dims (empty = all dims), with keepdim.
#include <vector>

#include "core/tensor.h"

namespace ssm::kernels {

// sum_{reduced dims} x
Tensor sum_forward(const Tensor& x, const std::vector<std::int64_t>& dims, bool keepdim);
// The gradient of a sum: grad broadcast back over the reduced dims.
Tensor sum_backward(const Tensor& grad, const Shape& x_shape, const std::vector<std::int64_t>& dims,
                    bool keepdim);

// max over dims: values and, per output element, the flat index (within the
// reduced block, row-major over the reduced dims) of the first maximum.
std::pair<Tensor, Tensor> max_forward(const Tensor& x, const std::vector<std::int64_t>& dims,
                                      bool keepdim);
// The gradient of max: grad routed to the first maximum of each block.
Tensor max_backward(const Tensor& grad, const Tensor& argmax, const Shape& x_shape,
                    const std::vector<std::int64_t>& dims, bool keepdim);

// log sum_{reduced dims} exp(x), computed as m + log sum exp(x - m), m = max.
Tensor logsumexp_forward(const Tensor& x, const std::vector<std::int64_t>& dims, bool keepdim);
// grad * exp(x - out), out broadcast back over the reduced dims.
Tensor logsumexp_backward(const Tensor& grad, const Tensor& x, const Tensor& out,
                          const std::vector<std::int64_t>& dims, bool keepdim);

// Resolves dims (negative, repeated, empty = all) into a sorted unique list.
std::vector<std::int64_t> normalize_dims(const std::vector<std::int64_t>& dims, std::int64_t ndim,
                                         const char* op);
// The shape of a reduction's output.
Shape reduced_shape(const Shape& shape, const std::vector<std::int64_t>& dims, bool keepdim);

}  // namespace ssm::kernels
