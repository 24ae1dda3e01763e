#pragma once
// LSSL kernels (Gu et al. 2021, "Combining Recurrent, Convolutional, and
// Continuous-time Models with Linear State-Space Layers"): dense
// discretization of x' = A x + B u by the generalized bilinear transform
// (GBT) or by zero-order hold (matrix exponential), the Krylov convolution
// kernel K_l = C Ā^l B̄, and the dense recurrent step. Raw compute; the
// differentiable ops live in autograd/ops/lssl.h.
//
// Also the dense float64 helpers (LU with partial pivoting, matrix
// exponential) that the RTF kernels (kernels/rtf.h) reuse.
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace ssm::kernels {

// ---------------------------------------------------------------- discretization

// The discrete system of H features: Ā_h (H, N, N) and B̄_h (H, N).
struct Discretized {
  Tensor dA;  // (H, N, N)
  Tensor dB;  // (H, N)
};

struct DiscretizeGrads {
  Tensor A;   // A's shape: (N, N) or (H, N, N)
  Tensor B;   // B's shape: (N) or (H, N)
  Tensor dt;  // (H)
};

// GBT (LSSL eq. 4): with M = I - alpha dt_h A_h,
//   Ā_h = M^{-1} (I + (1 - alpha) dt_h A_h),   B̄_h = dt_h M^{-1} B_h.
// alpha 0: forward Euler, 0.5: bilinear, 1: backward Euler.
// A (N, N) shared by the H features or (H, N, N); B (N) or (H, N); dt (H),
// every value > 0; alpha in [0, 1]. Computed in float64 (LU with partial
// pivoting), returned in the inputs' dtype. Throws when M is singular.
Discretized gbt_discretize_forward(const Tensor& A, const Tensor& B, const Tensor& dt,
                                   double alpha);
// Gradients given grad_dA (H, N, N) and grad_dB (H, N). dA and dB are the
// forward's outputs. Only the gradients whose need_ flag is set are defined.
DiscretizeGrads gbt_discretize_backward(const Tensor& grad_dA, const Tensor& grad_dB,
                                        const Tensor& A, const Tensor& B, const Tensor& dt,
                                        double alpha, const Tensor& dA, const Tensor& dB,
                                        bool need_A, bool need_B, bool need_dt);

// Zero-order hold through the matrix exponential of the augmented matrix:
//   exp(dt_h [[A_h, B_h], [0, 0]]) = [[Ā_h, B̄_h], [0, 1]],
// i.e. Ā = exp(dt A), B̄ = A^{-1} (exp(dt A) - I) B (without forming A^{-1}).
// Shapes as gbt_discretize_forward. Float64 inside (Padé 13 scaling and
// squaring, Higham 2005).
Discretized zoh_discretize_dense_forward(const Tensor& A, const Tensor& B, const Tensor& dt);
// Backward through the Fréchet derivative of exp: the adjoint of
// E -> L_exp(M)[E] applied to G is the top-right block of exp([[M^T, G], [0, M^T]]).
DiscretizeGrads zoh_discretize_dense_backward(const Tensor& grad_dA, const Tensor& grad_dB,
                                              const Tensor& A, const Tensor& B, const Tensor& dt,
                                              bool need_A, bool need_B, bool need_dt);

// ---------------------------------------------------------------- Krylov kernel

struct KrylovResult {
  Tensor K;  // (Cc, H, L)
  Tensor X;  // (H, N, L) the Krylov matrices [B̄, Ā B̄, ..., Ā^{L-1} B̄], kept for backward
};

// K[c, h, l] = C[c, h] Ā_h^l B̄_h = (C_h X_h)[c, l], X_h = [B̄, Ā B̄, ..., Ā^{L-1} B̄] (N, L)
// built by doubling (X[:, s:2s] = Ā^s X[:, 0:s]) up to b columns, then in
// blocks of b with Ā^b (b a power of two in [16, 64], smaller when N is large
// relative to L); every product is a GEMM: O(N^2 L + N^3 log2 b) per feature.
// dA (H, N, N), dB (H, N), C (Cc, H, N), L >= 1.
KrylovResult krylov_kernel_forward(const Tensor& dA, const Tensor& dB, const Tensor& C,
                                   std::int64_t L);

struct KrylovGrads {
  Tensor dA;  // (H, N, N)
  Tensor dB;  // (H, N)
  Tensor C;   // (Cc, H, N)
};
// With G = grad (Cc, H, L), per feature h (dropping h):
//   grad_C = G X^T;
//   Y_c = [C_c^T, Ā^T C_c^T, ...] (N, L) (the Krylov matrix of Ā^T on C_c);
//   grad_B̄ = sum_c Y_c g_c;
//   grad_Ā = sum_c Y_c Hankel(g_c) X^T, Hankel(g)[j, m] = g[j + m + 1] (0 past L - 1),
// where Y_c Hankel(g_c) is a correlation of each row of Y_c with g_c done by
// FFT: O(N L log L + N^2 L) per (c, h). X is the forward's Krylov matrix.
KrylovGrads krylov_kernel_backward(const Tensor& grad, const Tensor& dA, const Tensor& C,
                                   const Tensor& X, bool need_dA, bool need_dB, bool need_C);

// ---------------------------------------------------------------- recurrent step

// One step of the dense discrete system: x' = Ā_h x + B̄_h u, y[b, c, h] = C[c, h] x'.
// dA (H, N, N), dB (H, N), C (Cc, H, N), u_t (B, H), state (B, H, N) replaced by
// x'. Returns y_t (B, Cc, H). Stepping from a zero state through u gives
// sum_{l<=t} K[c, h, l] u[t - l] with K from krylov_kernel_forward.
Tensor dense_ssm_step(const Tensor& dA, const Tensor& dB, const Tensor& C, const Tensor& u_t,
                      Tensor& state);

// ---------------------------------------------------------------- dense float64 helpers

namespace dense {

// In-place LU factorization with partial pivoting of the row-major (n, n)
// matrix a: P a = L U (L unit lower, U upper, both stored in a); piv[k] is
// the row swapped with row k at step k (LAPACK's getrf convention, 0-based).
// Returns false when a pivot is exactly zero (a singular).
bool lu_factor(double* a, std::int64_t n, std::int64_t* piv);
// Solves op(a) X = B in place for the row-major (n, nrhs) B, op(a) = a or a^T,
// given lu_factor's output.
void lu_solve(const double* lu, const std::int64_t* piv, std::int64_t n, bool transpose, double* b,
              std::int64_t nrhs);

// out = exp(a) for the row-major (n, n) matrix a (Higham 2005: Padé degree
// 3, 5, 7, 9 or 13 with scaling and squaring). out must not alias a.
void expm(const double* a, std::int64_t n, double* out);

// c (m, n) = op(a) op(b) (+ c when accumulate), row-major with leading
// dimensions lda, ldb, ldc (OpenBLAS dgemm).
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
          const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double* c,
          std::int64_t ldc, bool accumulate = false);

}  // namespace dense

}  // namespace ssm::kernels
