#pragma once
// S4-family kernels: the diagonal discretization (ZOH / bilinear), the S4D
// Vandermonde kernel, the S4 DPLR kernel (Cauchy sums + Woodbury + inverse
// FFT), and the one-step recurrences of both. Raw compute; the
// differentiable ops live in autograd/ops/s4.h.
//
// Complex tensors are real tensors with a trailing dimension 2 (re, im).
// A diagonal (or diagonal plus low-rank) state matrix of size N is stored by
// one member of each conjugate pair: N2 = N / 2 values; the other half is the
// complex conjugate, and a kernel summed over both halves is 2 Re of the sum
// over the stored half. Every kernel computes in double internally (float32
// tensors in, float32 tensors out), so that powers of A-bar up to L = 4096
// and the Cauchy sums keep float32 accuracy.
//
// Shapes: dt (H); A / Lambda (H, N2, 2); B (H, N2, 2); P (R, H, N2, 2);
// C (C, H, N2, 2); kernels K (C, H, L).
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace ssm::kernels {

// ---------------------------------------------------------------- diag_discretize

// Diagonal discretization (S4D paper, Gu et al. 2022, eqs. for ZOH and bilinear),
// elementwise over (h, n) with z = dt[h] A[h, n]:
//   "zoh":      dA = exp(z),                  dB = (exp(z) - 1) / A   (= dt for A = 0)
//   "bilinear": dA = (1 + z/2) / (1 - z/2),   dB = dt / (1 - z/2)
// so that B-bar = dB * B. dt (H); A (H, N2, 2). Returns dA, dB (H, N2, 2).
struct DiagDiscrete {
  Tensor dA;  // (H, N2, 2)
  Tensor dB;  // (H, N2, 2)
};
DiagDiscrete diag_discretize_forward(const Tensor& dt, const Tensor& A, const std::string& method);

struct DiagDiscretizeGrads {
  Tensor dt;  // (H)
  Tensor A;   // (H, N2, 2)
};
// Gradients of diag_discretize_forward from the gradients of dA and dB (either
// may be undefined: zero). Inputs whose need_ flag is off get undefined.
DiagDiscretizeGrads diag_discretize_backward(const Tensor& grad_dA, const Tensor& grad_dB,
                                             const Tensor& dt, const Tensor& A,
                                             const std::string& method, bool need_dt, bool need_A);

// ---------------------------------------------------------------- s4d_kernel

// S4D Vandermonde kernel (S4D paper, section 3):
//   K[c, h, l] = 2 Re sum_{n<N2} C[c, h, n] dB[h, n] B[h, n] dA[h, n]^l,   l < L,
// with (dA, dB) = diag_discretize(dt, A, method). Fused: powers of dA are
// carried by repeated multiplication in double, no (H, N2, L) tensor exists.
// dt (H); A, B (H, N2, 2); C (C, H, N2, 2). Returns K (C, H, L).
Tensor s4d_kernel_forward(const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
                          std::int64_t L, const std::string& method);

struct S4DKernelGrads {
  Tensor dt;  // (H)
  Tensor A;   // (H, N2, 2)
  Tensor B;   // (H, N2, 2)
  Tensor C;   // (C, H, N2, 2)
};
// Gradients of s4d_kernel_forward from grad (C, H, L), for the inputs whose
// need_ flag is set (the others are undefined). With T = sum_l G_l dA^l and
// U = sum_l l G_l dA^(l-1) (transposed Vandermonde products, O(C H N2 L)):
//   gC = 2 conj(dB B T),  g(dB B) = 2 sum_c conj(C T),  g dA = 2 sum_c conj(C dB B U).
S4DKernelGrads s4d_kernel_backward(const Tensor& grad, const Tensor& dt, const Tensor& A,
                                   const Tensor& B, const Tensor& C, const std::string& method,
                                   bool need_dt, bool need_A, bool need_B, bool need_C);

// ---------------------------------------------------------------- s4_dplr_kernel

// S4's DPLR kernel (S4 paper, Gu et al. 2022, Algorithm 1; bilinear
// discretization). The state matrix over all N = 2 N2 states is
// A = diag(Lambda) - P P^* with Lambda, P, B, C extended by their conjugates;
// C is C-tilde = C (I - A-bar^L). At the nodes omega_k = exp(-2 pi i k / L),
// k = 0 .. L/2, with z_k = (2/dt)(1 - omega_k)/(1 + omega_k):
//   K^(omega) = 2/(1 + omega) [k_CB - k_CP (I + k_PP)^{-1} k_PB],
//   k_ab(z)   = sum_{n<N2} [a_n b_n / (z - Lambda_n) + conj(a_n b_n) / (z - conj Lambda_n)]
// with a in {C, conj P}, b in {B, P} (R x R Woodbury solve), and K = irfft(K^, L).
// Evaluated in the equivalent form (multiply numerator and denominator by 1 + omega):
//   K^ = 2 [s_CB - (1 + omega) s_CP (I + (1 + omega) s_PP)^{-1} s_PB],
//   s_ab = sum_n [a_n b_n / d_n + conj(a_n b_n) / d'_n],
//   d_n = (2/dt)(1 - omega) - (1 + omega) Lambda_n,  d'_n = the same with conj Lambda_n,
// which stays finite at omega = -1 (k = L/2), where z is infinite.
// dt (H); Lambda, B (H, N2, 2); P (R, H, N2, 2); C (C, H, N2, 2). Returns K (C, H, L).
Tensor s4_dplr_kernel_forward(const Tensor& dt, const Tensor& Lambda, const Tensor& P,
                              const Tensor& B, const Tensor& C, std::int64_t L);

struct S4DplrKernelGrads {
  Tensor dt;      // (H)
  Tensor Lambda;  // (H, N2, 2)
  Tensor P;       // (R, H, N2, 2)
  Tensor B;       // (H, N2, 2)
  Tensor C;       // (C, H, N2, 2)
};
// Gradients of s4_dplr_kernel_forward from grad (C, H, L): the adjoint of the
// irfft (an rfft of grad), then the chain rule through the Woodbury form and
// the Cauchy sums (Wirtinger calculus; the R x R system is solved with M^H).
// Inputs whose need_ flag is off get undefined.
S4DplrKernelGrads s4_dplr_kernel_backward(const Tensor& grad, const Tensor& dt,
                                          const Tensor& Lambda, const Tensor& P, const Tensor& B,
                                          const Tensor& C, bool need_dt, bool need_Lambda,
                                          bool need_P, bool need_B, bool need_C);

// ---------------------------------------------------------------- recurrent steps (no grad)

// One step of the diagonal complex recurrence (S4D), per batch b, feature h, state n:
//   x'[b, h, n] = dA[h, n] x[b, h, n] + dB[h, n] u[b, h]
//   y[b, c, h]  = 2 Re sum_n C[c, h, n] x'[b, h, n]
// dB is the full input vector B-bar (= dB B of diag_discretize). u_t (B, H);
// state (B, H, N2, 2), replaced by x'; dA, dB (H, N2, 2); C (C, H, N2, 2).
// Returns y_t (B, C, H). Starting from zero, stepping through u gives the
// causal convolution of u with s4d_kernel's K.
Tensor s4d_step(const Tensor& u_t, Tensor& state, const Tensor& dA, const Tensor& dB,
                const Tensor& C);

// One step of the dense recurrence of a conjugate-symmetric system (S4's
// DPLR A after bilinear discretization). The full N-state x_full = [x, conj x]
// keeps that form under the update, so only the stored half x is kept; the
// full matrix's first N2 rows act on it as
//   x'[b, h, i] = sum_j (dA[h, i, j] x[b, h, j] + dA_conj[h, i, j] conj(x[b, h, j]))
//                 + dB[h, i] u[b, h]
//   y[b, c, h]  = 2 Re sum_i C[c, h, i] x'[b, h, i]
// (dA, dA_conj: the blocks of A-bar_full that multiply x and conj x). u_t (B, H);
// state (B, H, N2, 2), replaced by x'; dA, dA_conj (H, N2, N2, 2); dB (H, N2, 2);
// C (C, H, N2, 2). Returns y_t (B, C, H).
Tensor s4_dense_step(const Tensor& u_t, Tensor& state, const Tensor& dA, const Tensor& dA_conj,
                     const Tensor& dB, const Tensor& C);

}  // namespace ssm::kernels
