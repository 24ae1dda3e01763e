#pragma once
// CUDA normalization kernels (kernels/cuda/norm.cu): the same entry points
// and semantics as kernels/norm.h, float32 only.
#include <cstdint>

#include "core/tensor.h"
#include "kernels/norm.h"

namespace ssm::kernels::cuda {

NormForward layer_norm_forward(const Tensor& x, std::int64_t normalized_dims, const Tensor& weight,
                               const Tensor& bias, double eps);
NormGrads layer_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& mean,
                              const Tensor& rstd, const Tensor& weight, bool need_x,
                              bool need_weight, bool need_bias);

NormForward rms_norm_forward(const Tensor& x, std::int64_t normalized_dims, const Tensor& weight,
                             double eps);
NormGrads rms_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& rstd,
                            const Tensor& weight, bool need_x, bool need_weight);

NormForward batch_norm_forward(const Tensor& x, const Tensor& running_mean,
                               const Tensor& running_var, const Tensor& weight, const Tensor& bias,
                               bool training, double momentum, double eps);
NormGrads batch_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& mean,
                              const Tensor& rstd, const Tensor& weight, bool training, bool need_x,
                              bool need_weight, bool need_bias);

}  // namespace ssm::kernels::cuda
