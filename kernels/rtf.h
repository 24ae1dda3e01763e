#pragma once
// RTF kernels (Parnichkun et al. 2024, "State-Free Inference of State-Space
// Models: The Transfer Function Approach"): the convolution kernel of the
// rational transfer function
//   H(z) = h0 + (b_1 z^-1 + ... + b_n z^-n) / (1 + a_1 z^-1 + ... + a_n z^-n)
// evaluated on the L-point grid of roots of unity by FFT (O(L log L) per row,
// whatever n), its backward, and the companion-form recurrent step. Raw
// compute; the differentiable op lives in autograd/ops/rtf.h.
#include <cstdint>

#include "core/tensor.h"

namespace ssm::kernels {

// K[c, h] = irfft(rfft([0, b[c, h], 0...]) / rfft([1, a[h], 0...]) + h0[c, h], L), with
// both polynomials zero-padded to L points. a (H, n), b (Cc, H, n), h0 (Cc, H),
// 1 <= n < L. Returns K (Cc, H, L).
//
// What the L-point grid computes: with b = b̃ = C (I - A^L) for the companion
// matrix A of a (see rtf_step), K[l] = C A^{l-1} e_1 for 1 <= l < L exactly
// (the truncation to L terms is built into b̃, as in S4), and
// K[0] = h0 + C A^{L-1} e_1: the L-th impulse-response term wraps around onto
// l = 0 (it vanishes when A^L does: a stable system and long L, or a = 0).
Tensor rtf_kernel_forward(const Tensor& a, const Tensor& b, const Tensor& h0, std::int64_t L);

struct RtfGrads {
  Tensor a;   // (H, n)
  Tensor b;   // (Cc, H, n)
  Tensor h0;  // (Cc, H)
};
// With Â = rfft(a_pad), B̂ = rfft(b_pad), Ĝ = rfft(grad) (all L-point):
//   grad_b[c, h, i] = irfft(Ĝ / conj(Â))[i + 1],
//   grad_a[h, i]    = irfft(-sum_c Ĝ conj(B̂) / conj(Â)^2)[i + 1],
//   grad_h0[c, h]   = grad[c, h, 0]
// (the adjoint of irfft(X, L) is (w_k / L) rfft(g) with w = 1 at k = 0, L/2 and
// 2 elsewhere; the adjoint of rfft is irfft of (L / w_k) times the gradient;
// the weights cancel). grad (Cc, H, L).
RtfGrads rtf_kernel_backward(const Tensor& grad, const Tensor& a, const Tensor& b, bool need_a,
                             bool need_b, bool need_h0);

// The numerator of the state space form: C[c, h] = b̃[c, h] (I - A_h^L)^{-1} for the
// companion matrix A_h of a[h] (first row -a[h], ones on the subdiagonal), in
// float64 (A^L by repeated squaring, an LU solve). a (H, n), b (Cc, H, n), L > n.
// Returns C (Cc, H, n) in b's dtype. Throws when I - A^L is singular (a pole
// on the L-th roots of unity) or A^L overflows.
Tensor rtf_state_space_C(const Tensor& a, const Tensor& b, std::int64_t L);

// One step of the companion form (the reference RTF code's step):
//   y[b, c, h] = C[c, h] . x[b, h] + h0[c, h] u[b, h]   (x before the update),
//   x'[b, h, 0] = u[b, h] - a[h] . x[b, h],   x'[b, h, j] = x[b, h, j - 1] (j >= 1).
// a (H, n), C (Cc, H, n) (from rtf_state_space_C), h0 (Cc, H), u_t (B, H), state
// (B, H, n) replaced by x'. Returns y_t (B, Cc, H). From a zero state the
// impulse response is h0, C e_1, C A e_1, C A^2 e_1, ...
Tensor rtf_step(const Tensor& a, const Tensor& C, const Tensor& h0, const Tensor& u_t,
                Tensor& state);

}  // namespace ssm::kernels
