#pragma once
// CUDA RTF kernels (kernels/cuda/rtf.cu): the entry points of kernels/rtf.h
// for CUDA tensors, with the same arguments and results, float32 only.
#include <cstdint>

#include "core/tensor.h"
#include "kernels/rtf.h"

namespace ssm::kernels::cuda {

Tensor rtf_kernel_forward(const Tensor& a, const Tensor& b, const Tensor& h0, std::int64_t L);

RtfGrads rtf_kernel_backward(const Tensor& grad, const Tensor& a, const Tensor& b, bool need_a,
                             bool need_b, bool need_h0);

// Computed on the host (the CPU kernel, in float64) and copied back: a
// setup-time call of n^3 log L work per feature.
Tensor rtf_state_space_C(const Tensor& a, const Tensor& b, std::int64_t L);

Tensor rtf_step(const Tensor& a, const Tensor& C, const Tensor& h0, const Tensor& u_t,
                Tensor& state);

}  // namespace ssm::kernels::cuda
