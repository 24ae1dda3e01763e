#pragma once
// CUDA S4 family (kernels/cuda/s4.cu): the entry points of kernels/s4.h for
// CUDA tensors, with the same arguments, checks and results, float32 tensors
// only (every kernel computes in double internally, as the CPU code does).
#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "kernels/s4.h"

namespace ssm::kernels::cuda {

DiagDiscrete diag_discretize_forward(const Tensor& dt, const Tensor& A, const std::string& method);

DiagDiscretizeGrads diag_discretize_backward(const Tensor& grad_dA, const Tensor& grad_dB,
                                             const Tensor& dt, const Tensor& A,
                                             const std::string& method, bool need_dt, bool need_A);

Tensor s4d_kernel_forward(const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
                          std::int64_t L, const std::string& method);

S4DKernelGrads s4d_kernel_backward(const Tensor& grad, const Tensor& dt, const Tensor& A,
                                   const Tensor& B, const Tensor& C, const std::string& method,
                                   bool need_dt, bool need_A, bool need_B, bool need_C);

Tensor s4_dplr_kernel_forward(const Tensor& dt, const Tensor& Lambda, const Tensor& P,
                              const Tensor& B, const Tensor& C, std::int64_t L);

S4DplrKernelGrads s4_dplr_kernel_backward(const Tensor& grad, const Tensor& dt,
                                          const Tensor& Lambda, const Tensor& P, const Tensor& B,
                                          const Tensor& C, bool need_dt, bool need_Lambda,
                                          bool need_P, bool need_B, bool need_C);

Tensor s4d_step(const Tensor& u_t, Tensor& state, const Tensor& dA, const Tensor& dB,
                const Tensor& C);

Tensor s4_dense_step(const Tensor& u_t, Tensor& state, const Tensor& dA, const Tensor& dA_conj,
                     const Tensor& dB, const Tensor& C);

}  // namespace ssm::kernels::cuda
