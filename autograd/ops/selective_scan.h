#pragma once
// Mamba's selective scan (S6; Gu & Dao 2023) as a differentiable op, with the
// semantics of mamba_ssm's selective_scan_ref, and its one-step form for
// recurrent inference. All tensors of one call share dtype (float32 or
// float64) and device.
#include "core/tensor.h"

namespace ssm {

struct SelectiveScanResult {
  Tensor y;           // (B, D, L)
  Tensor last_state;  // (B, D, N): h_L; differentiable (gradients flow through it)
};

// Mamba's selective scan (selective_scan_ref semantics):
//   delta' = softplus(delta + delta_bias) if delta_softplus else delta + delta_bias
//            (delta_bias (D) optional; softplus(x) = x above 20, as PyTorch)
//   h_t = exp(delta'_t A) h_{t-1} + delta'_t B_t u_t   (per b, d, n; h_{-1} = initial_state or 0)
//   y_t = C_t h_t + D u_t,  then y_t *= silu(z_t) when z is given
// u, delta (B, D, L); A (D, N) real, N <= 256; B and C each either constant (D, N) or
// input-dependent (B, G, N, L) with D % G == 0 (channel d uses group d / (D/G)), (B, N, L)
// accepted as G = 1; D (D), z (B, D, L), delta_bias (D), initial_state (B, D, N): each
// optional (undefined Tensor). The forward keeps the state every 64 steps for backward.
SelectiveScanResult selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A,
                                   const Tensor& B, const Tensor& C, const Tensor& D = Tensor(),
                                   const Tensor& z = Tensor(), const Tensor& delta_bias = Tensor(),
                                   bool delta_softplus = false,
                                   const Tensor& initial_state = Tensor());

// One step of the recurrence for all (b, d), without gradient (recurrent inference):
// state (B, D, N) is updated in place, h = exp(dt A) h + dt B_t u_t; returns
// y_t = C_t h + D u_t (times silu(z_t) when given), (B, D). u_t, delta_t, z_t (B, D);
// B_t, C_t (B, G, N) or constant (D, N); D, z_t, delta_bias optional. Same options as
// the scan: stepping through t from the scan's initial state gives its y[..., t] and,
// after the last step, its last_state.
Tensor selective_state_update(Tensor& state, const Tensor& u_t, const Tensor& delta_t,
                              const Tensor& A, const Tensor& B_t, const Tensor& C_t,
                              const Tensor& D = Tensor(), const Tensor& z_t = Tensor(),
                              const Tensor& delta_bias = Tensor(), bool delta_softplus = false);

}  // namespace ssm
