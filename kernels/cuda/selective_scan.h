#pragma once
// CUDA selective scan (kernels/cuda/selective_scan.cu): the entry points of
// kernels/selective_scan.h for CUDA tensors, with the same arguments, options
// and results (checkpoints included), float32 only.
#include <cstdint>

#include "core/tensor.h"
#include "kernels/selective_scan.h"

namespace ssm::kernels::cuda {

SelectiveScanForward selective_scan_forward(const Tensor& u, const Tensor& delta, const Tensor& A,
                                            const Tensor& B, const Tensor& C, const Tensor& D_skip,
                                            const Tensor& z, const Tensor& delta_bias,
                                            bool delta_softplus, const Tensor& initial_state,
                                            std::int64_t chunk);

SelectiveScanGrads selective_scan_backward(const Tensor& grad_y, const Tensor& grad_last_state,
                                           const Tensor& u, const Tensor& delta, const Tensor& A,
                                           const Tensor& B, const Tensor& C, const Tensor& D_skip,
                                           const Tensor& z, const Tensor& delta_bias,
                                           bool delta_softplus, const Tensor& initial_state,
                                           const SelectiveScanForward& fwd,
                                           const SelectiveScanNeeds& needs);

Tensor selective_state_update(Tensor& state, const Tensor& u_t, const Tensor& delta_t,
                              const Tensor& A, const Tensor& B_t, const Tensor& C_t,
                              const Tensor& D_skip, const Tensor& z_t, const Tensor& delta_bias,
                              bool delta_softplus);

}  // namespace ssm::kernels::cuda
