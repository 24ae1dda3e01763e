#pragma once
// CUDA LSSL kernels (kernels/cuda/lssl.cu): the entry points of kernels/lssl.h
// for CUDA tensors, with the same arguments, checks and results, float32 only
// (the discretizations compute in float64 inside, as the CPU does).
#include <cstdint>

#include "core/tensor.h"
#include "kernels/lssl.h"

namespace ssm::kernels::cuda {

// The largest state size of krylov_kernel_* and dense_ssm_step (their state
// vectors live in shared memory). The discretizations have no limit.
constexpr std::int64_t kLsslMaxState = 2048;

Discretized gbt_discretize_forward(const Tensor& A, const Tensor& B, const Tensor& dt,
                                   double alpha);
DiscretizeGrads gbt_discretize_backward(const Tensor& grad_dA, const Tensor& grad_dB,
                                        const Tensor& A, const Tensor& B, const Tensor& dt,
                                        double alpha, const Tensor& dA, const Tensor& dB,
                                        bool need_A, bool need_B, bool need_dt);

Discretized zoh_discretize_dense_forward(const Tensor& A, const Tensor& B, const Tensor& dt);
DiscretizeGrads zoh_discretize_dense_backward(const Tensor& grad_dA, const Tensor& grad_dB,
                                              const Tensor& A, const Tensor& B, const Tensor& dt,
                                              bool need_A, bool need_B, bool need_dt);

KrylovResult krylov_kernel_forward(const Tensor& dA, const Tensor& dB, const Tensor& C,
                                   std::int64_t L);
KrylovGrads krylov_kernel_backward(const Tensor& grad, const Tensor& dA, const Tensor& C,
                                   const Tensor& X, bool need_dA, bool need_dB, bool need_C);

Tensor dense_ssm_step(const Tensor& dA, const Tensor& dB, const Tensor& C, const Tensor& u_t,
                      Tensor& state);

}  // namespace ssm::kernels::cuda
