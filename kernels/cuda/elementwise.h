#pragma once
// CUDA versions of the elementwise kernels (kernels/elementwise.h), float32
// only. kernels/cpu/elementwise.cpp dispatches to them for CUDA tensors.
// sum_to has no CUDA version: it is a sum_forward (which dispatches) and a
// reshape of its fresh contiguous result.
#include <utility>

#include "core/tensor.h"
#include "kernels/elementwise.h"

namespace ssm::kernels::cuda {

Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b);
std::pair<Tensor, Tensor> binary_backward(BinaryOp op, const Tensor& grad, const Tensor& a,
                                          const Tensor& b, const Tensor& out, bool need_a,
                                          bool need_b);
Tensor unary_forward(UnaryOp op, const Tensor& x, UnaryParams params = {});
Tensor unary_backward(UnaryOp op, const Tensor& grad, const Tensor& x, const Tensor& y,
                      UnaryParams params = {});
Tensor where_forward(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor where_backward(const Tensor& cond, const Tensor& grad, bool branch_a, const Shape& shape);

}  // namespace ssm::kernels::cuda
