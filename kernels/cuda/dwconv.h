#pragma once
// CUDA versions of the depthwise "same" convolutions (kernels/dwconv.h),
// float32 on the GPU. kernels/cpu/dwconv.cpp dispatches here for CUDA
// tensors (SSM_CUDA_DISPATCH).
#include "core/tensor.h"
#include "kernels/dwconv.h"

namespace ssm::kernels::cuda {

Tensor dwconv1d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias);
DwConvGrads dwconv1d_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                              bool need_x, bool need_weight, bool need_bias);

Tensor dwconv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias);
DwConvGrads dwconv2d_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                              bool need_x, bool need_weight, bool need_bias);

}  // namespace ssm::kernels::cuda
