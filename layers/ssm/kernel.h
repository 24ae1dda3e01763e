#pragma once
// SSMKernel: the linear time-invariant state space model inside one
// S4-family layer (LSSL, S4, S4D, RTF), in its convolutional and recurrent
// views. The layer around it (layers/ssm/s4_block.h) does the FFT
// convolution, the D skip term, the activation and the output linear.
//
// A kernel module holds H = d_model independent SSMs per output channel
// (C = channels of them per input feature; the bidirectional layer asks for
// twice as many and runs the second half over the reversed sequence).
//
//   Convolutional view: forward(L) = K (C, H, L), K[c, h, l] = C_c Ā^l B̄ for
//   feature h (differentiable in every parameter).
//   Recurrent view:     setup_step(); state = default_state(B);
//                       y_t = step(u_t, state) for t = 0, 1, ...
//   Both views agree: y_t[b, c, h] = sum_{l<=t} K[c, h, l] u_{t-l}[b, h].
//
// Parameters in the SSM's own set (A, B, dt, P; never C) carry the tag "ssm"
// (own learning rate, no weight decay); fixed ones (lr 0 in the reference
// code, e.g. LSSL-fixed's A) are buffers.
#include <cstdint>

#include "layers/module.h"

namespace ssm {

class SSMKernel : public Module {
 public:
  // K (C, H, L) in the kernel's dtype: the first L terms of the impulse response.
  virtual Tensor forward(std::int64_t L) = 0;

  // The sequence length L whose convolution kernel the recurrence is to
  // reproduce. S4 and RTF train a C-tilde / b-tilde truncated at L (C (I - Ā^L)),
  // so their setup_step() recovers C for this L; forward(L) sets it too. The
  // other kernels ignore it.
  virtual void set_step_length(std::int64_t L) { (void)L; }

  // Computes the discrete recurrent system from the current parameters
  // (without gradient). Call again after the parameters change.
  virtual void setup_step() = 0;
  // The zero state for a batch of `batch` sequences; its layout is the kernel's own.
  virtual Tensor default_state(std::int64_t batch) const = 0;
  // One step of the recurrence: u_t (B, H) -> y_t (B, C, H) (no D term); the
  // state is replaced by the next one. Requires setup_step(). No gradient.
  virtual Tensor step(const Tensor& u_t, Tensor& state) = 0;

  std::int64_t d_model() const { return H_; }
  std::int64_t d_state() const { return N_; }
  std::int64_t channels() const { return C_; }

 protected:
  SSMKernel(std::int64_t H, std::int64_t N, std::int64_t C) : H_(H), N_(N), C_(C) {}
  std::int64_t H_, N_, C_;
};

}  // namespace ssm
