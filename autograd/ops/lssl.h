#pragma once
// Differentiable LSSL ops (Gu et al. 2021, "Combining Recurrent,
// Convolutional, and Continuous-time Models with Linear State-Space Layers"):
// dense discretization (GBT, ZOH) and the Krylov convolution kernel, and the
// recurrent step (no gradient) for the layers. All tensors of one call share
// dtype (float32 or float64) and device.
#include <cstdint>

#include "core/tensor.h"

namespace ssm {

// A discrete system of H features.
struct DiscreteSSM {
  Tensor dA;  // (H, N, N)
  Tensor dB;  // (H, N)
};

// GBT(alpha): Ā_h = (I - alpha dt_h A_h)^{-1} (I + (1 - alpha) dt_h A_h),
// B̄_h = dt_h (I - alpha dt_h A_h)^{-1} B_h (alpha 0 forward Euler, 0.5 bilinear,
// 1 backward Euler). A (N, N) shared or (H, N, N); B (N) or (H, N); dt (H) > 0;
// alpha in [0, 1]. Differentiable in A, B and dt.
DiscreteSSM gbt_discretize(const Tensor& A, const Tensor& B, const Tensor& dt, double alpha);

// Zero-order hold: Ā_h = exp(dt_h A_h), B̄_h = A_h^{-1} (exp(dt_h A_h) - I) B_h, through the
// exponential of the augmented matrix dt_h [[A_h, B_h], [0, 0]] (A need not be
// invertible). Shapes as gbt_discretize. Differentiable in A, B and dt.
DiscreteSSM zoh_discretize_dense(const Tensor& A, const Tensor& B, const Tensor& dt);

// K[c, h, l] = C[c, h] Ā_h^l B̄_h for l < L. dA (H, N, N), dB (H, N), C (Cc, H, N).
// Returns K (Cc, H, L). Materialises the Krylov matrices (H, N, L), and keeps
// them for backward when a gradient is needed. Differentiable in dA, dB and C.
Tensor krylov_kernel(const Tensor& dA, const Tensor& dB, const Tensor& C, std::int64_t L);

// One recurrent step, not recorded (no gradient): x' = Ā_h x + B̄_h u, y[b, c, h] = C[c, h] x'.
// dA (H, N, N), dB (H, N), C (Cc, H, N), u_t (B, H); state (B, H, N) is replaced by x'
// in place. Returns y_t (B, Cc, H). From a zero state it reproduces krylov_kernel's
// convolution.
Tensor dense_ssm_step(const Tensor& dA, const Tensor& dB, const Tensor& C, const Tensor& u_t,
                      Tensor& state);

}  // namespace ssm
