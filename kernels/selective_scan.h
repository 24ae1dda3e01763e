#pragma once
// The selective scan of Mamba (S6; Gu & Dao 2023, "Mamba: Linear-Time
// Sequence Modeling with Selective State Spaces", Algorithm 2), with the
// semantics of mamba_ssm's selective_scan_ref. Raw compute; the
// differentiable op lives in autograd/ops/selective_scan.h.
//
// Shapes: u, delta, z (B, D, L); A (D, N); B and C each either constant
// (D, N) or input-dependent (B, G, N, L) with D % G == 0 (channel d reads
// group d / (D / G)), (B, N, L) meaning G = 1; D_skip and delta_bias (D);
// initial_state (B, D, N). Optional tensors may be undefined.
#include <cstdint>

#include "core/tensor.h"

namespace ssm::kernels {

// The largest state size, as in the reference CUDA kernel.
inline constexpr std::int64_t kSelectiveScanMaxState = 256;
// Steps between saved states when the caller does not choose (chunk = 0).
inline constexpr std::int64_t kSelectiveScanDefaultChunk = 64;

struct SelectiveScanForward {
  Tensor y;           // (B, D, L)
  Tensor last_state;  // (B, D, N): h_{L-1}
  // (B, D, K, N), K = ceil(L / chunk): checkpoints[b, d, k] = h_{k chunk - 1},
  // the state entering chunk k (the initial state, or 0, for k = 0).
  Tensor checkpoints;
  std::int64_t chunk = 0;  // the chunk length T used
};

// dt_t = softplus(delta_t + delta_bias) when delta_softplus, else delta_t + delta_bias
//   (softplus(x) = log(1 + e^x), x above 20 passed through, as PyTorch and the CUDA kernel);
// h_t[n] = exp(dt_t A[d, n]) h_{t-1}[n] + dt_t B_t[n] u_t   (h_{-1} = initial_state or 0);
// y_t = sum_n C_t[n] h_t[n] + D_skip[d] u_t;  y_t *= silu(z_t) when z is given.
// Parallel over (b, d), sequential in time; saves the state every `chunk` steps
// (chunk = 0 picks kSelectiveScanDefaultChunk).
SelectiveScanForward selective_scan_forward(const Tensor& u, const Tensor& delta, const Tensor& A,
                                            const Tensor& B, const Tensor& C, const Tensor& D_skip,
                                            const Tensor& z, const Tensor& delta_bias,
                                            bool delta_softplus, const Tensor& initial_state,
                                            std::int64_t chunk = 0);

// Which inputs need a gradient (the others come back undefined).
struct SelectiveScanNeeds {
  bool u = true, delta = true, A = true, B = true, C = true, D_skip = true, z = true,
       delta_bias = true, initial_state = true;
};

struct SelectiveScanGrads {
  Tensor u;              // (B, D, L)
  Tensor delta;          // (B, D, L)
  Tensor A;              // (D, N)
  Tensor B;              // B's shape
  Tensor C;              // C's shape
  Tensor D_skip;         // (D)
  Tensor z;              // (B, D, L)
  Tensor delta_bias;     // (D)
  Tensor initial_state;  // (B, D, N)
};

// Gradients of selective_scan_forward given grad_y (B, D, L) and grad_last_state
// (B, D, N); either may be undefined (zero). `fwd` is the forward's result
// (its checkpoints and chunk). Per (b, d), chunks are taken last to first: the
// chunk's states are recomputed from its checkpoint, then walked backwards with
//   g_t = C_t gy_t + exp(dt_{t+1} A) g_{t+1}   (g_{L-1} also gets grad_last_state),
//   gy_t = grad_y_t silu(z_t),  grad (dt_t B_t u_t) = g_t,  grad exp(dt_t A) = g_t h_{t-1},
//   grad C_t = gy_t h_t,  grad h_{-1} = exp(dt_0 A) g_0.
// Sums over b (A, D_skip, delta_bias, constant B / C) and over the channels of
// a group (input-dependent B / C) are taken in a fixed order: the result does
// not depend on the thread count.
SelectiveScanGrads selective_scan_backward(const Tensor& grad_y, const Tensor& grad_last_state,
                                           const Tensor& u, const Tensor& delta, const Tensor& A,
                                           const Tensor& B, const Tensor& C, const Tensor& D_skip,
                                           const Tensor& z, const Tensor& delta_bias,
                                           bool delta_softplus, const Tensor& initial_state,
                                           const SelectiveScanForward& fwd,
                                           const SelectiveScanNeeds& needs = {});

// One step of the recurrence for all (b, d), for recurrent inference (no
// gradient): state (B, D, N) is updated in place (through its strides),
// h = exp(dt A) h + dt B_t u_t, and y_t = C_t h + D_skip u_t (times silu(z_t)
// when z_t is given) is returned, (B, D). u_t, delta_t, z_t (B, D); B_t, C_t
// (B, G, N) input-dependent or (D, N) constant; D_skip, delta_bias (D) or
// undefined. Stepping through t from state = h_{-1} gives the scan's y_t and,
// after the last step, its last_state.
Tensor selective_state_update(Tensor& state, const Tensor& u_t, const Tensor& delta_t,
                              const Tensor& A, const Tensor& B_t, const Tensor& C_t,
                              const Tensor& D_skip, const Tensor& z_t, const Tensor& delta_bias,
                              bool delta_softplus);

}  // namespace ssm::kernels
