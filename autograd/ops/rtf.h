#pragma once
// Differentiable RTF kernel (Parnichkun et al. 2024, "State-Free Inference of
// State-Space Models: The Transfer Function Approach"). All tensors of one
// call share dtype (float32 or float64) and device. Also the companion-form
// recurrent step and its numerator, for the layers (no gradient).
#include <cstdint>

#include "core/tensor.h"

namespace ssm {

// The convolution kernel of H(z) = h0 + (b_1 z^-1 + ... + b_n z^-n) / (1 + a_1 z^-1 + ... + a_n
// z^-n) on the L-point grid: K = irfft(rfft([0, b]) / rfft([1, a]) + h0, L), O(L log L) per row. a
// (H, n) shared by the Cc channels, b (Cc, H, n), h0 (Cc, H), 1 <= n < L. Returns K (Cc, H, L). b
// plays the role of b̃ = C (I - A^L) (the truncation to L terms built in; see kernels/rtf.h for what
// K[0] holds). Differentiable in a, b, h0.
Tensor rtf_kernel(const Tensor& a, const Tensor& b, const Tensor& h0, std::int64_t L);

// Not recorded (no gradient). The state space numerator C = b̃ (I - A^L)^{-1} (Cc, H, n)
// for the companion matrix A of a, computed in float64 (kernels/rtf.h).
Tensor rtf_state_space_C(const Tensor& a, const Tensor& b, std::int64_t L);
// Not recorded (no gradient). One companion-form step: y = C x + h0 u (x before the
// update), x' = (u - a . x, x_0, ..., x_{n-2}). a (H, n), C (Cc, H, n), h0 (Cc, H),
// u_t (B, H); state (B, H, n) replaced in place. Returns y_t (B, Cc, H).
Tensor rtf_step(const Tensor& a, const Tensor& C, const Tensor& h0, const Tensor& u_t,
                Tensor& state);

}  // namespace ssm
