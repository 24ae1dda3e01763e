#pragma once
// CUDA versions of the convolution kernels (kernels/conv.h), float32 on the
// GPU. kernels/cpu/conv.cpp dispatches here for CUDA tensors
// (SSM_CUDA_DISPATCH).
#include <array>
#include <cstdint>

#include "core/tensor.h"
#include "kernels/conv.h"

namespace ssm::kernels::cuda {

Tensor causal_conv1d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, bool silu);
CausalConv1dGrads causal_conv1d_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                                         const Tensor& bias, bool silu, bool need_x,
                                         bool need_weight, bool need_bias);
Tensor causal_conv1d_update(const Tensor& x_t, Tensor& conv_state, const Tensor& weight,
                            const Tensor& bias, bool silu);

Tensor conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                      std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding);
Conv2dGrads conv2d_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                            std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding,
                            bool need_x, bool need_weight, bool need_bias);

Tensor glu_forward(const Tensor& x, std::int64_t dim);
Tensor glu_backward(const Tensor& grad, const Tensor& x, std::int64_t dim);

}  // namespace ssm::kernels::cuda
