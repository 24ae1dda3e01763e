#pragma once
// Differentiable S4-family ops: the diagonal discretization, the S4D
// Vandermonde kernel and the S4 DPLR (Cauchy + Woodbury) kernel, each a
// fused kernel with a hand-written backward (kernels/s4.h). The one-step
// recurrences (no gradient) are kernels::s4d_step and kernels::s4_dense_step.
//
// Complex tensors are real tensors with a trailing dimension 2 (re, im). A
// state of size N is stored by one member of each conjugate pair, N2 = N / 2
// values; the kernels sum over both halves (2 Re of the stored half's sum).
// All tensors of one call share dtype (float32 or float64) and device.
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace ssm {

struct DiagDiscretization {
  Tensor dA;  // (H, N2, 2)  A-bar
  Tensor dB;  // (H, N2, 2)  B-bar = dB * B
};

// Diagonal discretization (S4D), elementwise with z = dt[h] A[h, n]:
//   "zoh":      dA = exp(z),                 dB = (exp(z) - 1) / A
//   "bilinear": dA = (1 + z/2) / (1 - z/2),  dB = dt / (1 - z/2)
// dt (H); A (H, N2, 2). Differentiable in dt and A.
DiagDiscretization diag_discretize(const Tensor& dt, const Tensor& A,
                                   const std::string& method = "zoh");

// S4D kernel: K[c, h, l] = 2 Re sum_n C[c, h, n] dB[h, n] B[h, n] dA[h, n]^l, l < L,
// with (dA, dB) = diag_discretize(dt, A, method). dt (H); A, B (H, N2, 2);
// C (C, H, N2, 2). Returns K (C, H, L). Differentiable in dt, A, B, C.
Tensor s4d_kernel(const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
                  std::int64_t L, const std::string& method = "zoh");

// S4 DPLR kernel (S4 Algorithm 1, bilinear): the first L terms of the impulse
// response C A-bar^l B-bar of the N-state system A = diag(Lambda) - P P^*
// (Lambda, P, B, C extended by their conjugates), where the C given is
// C-tilde = C (I - A-bar^L). dt (H); Lambda, B (H, N2, 2); P (R, H, N2, 2);
// C (C, H, N2, 2). Returns K (C, H, L) (real). Differentiable in every input.
Tensor s4_dplr_kernel(const Tensor& dt, const Tensor& Lambda, const Tensor& P, const Tensor& B,
                      const Tensor& C, std::int64_t L);

}  // namespace ssm
