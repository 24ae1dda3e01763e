#pragma once
// S4Block: the S4-style layer around an SSM kernel (LSSL, S4, S4D, RTF), as
// the reference S4 / S4D code builds it (FFTConv):
//
//   u = x^T                                   (B, H, L)
//   K = kernel(L)                             (C, H, L)   (2C with bidirectional)
//   y = K * u + D u                           (B, C, H, L) FFT convolution; bidirectional:
//                                                          + flip(K_rev * flip(u))
//   y = dropout(gelu(y))
//   out = glu(output_linear(y^T))             (B, L, H)   Linear C H -> 2 H, then GLU
//
// Parameters: kernel.* (the kernel's), D (C, H) ~ N(0, 1), output_linear.weight (2H, C H),
// output_linear.bias (2H) (nn.Linear's init). With C > 1 (LSSL's several
// output channels per feature) the output linear is the mixing layer.
//
// Recurrent mode: setup_step(); state = default_state(B); out_t = step(x_t, state)
// gives forward(x)[:, t] in eval mode (causal layers only). forward_recurrent(x)
// runs the recurrence over a whole sequence, and over the reversed sequence
// for the backward half of a bidirectional layer, so both modes can be
// compared for every layer.
#include <cstdint>
#include <memory>
#include <string>

#include "core/rng.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/models/backbone.h"
#include "layers/ssm/kernel.h"

namespace ssm {

struct S4BlockOptions {
  std::int64_t channels =
      1;  // C: kernels per feature (the kernel must have C, or 2C if bidirectional)
  bool bidirectional = false;
  double dropout = 0.0;
};

class S4Block : public SequenceMixer {
 public:
  // kernel: built with channels = options.channels (2 x when bidirectional).
  // D and output_linear draw from gen; dropout_gen may be null when dropout is 0.
  S4Block(std::shared_ptr<SSMKernel> kernel, const S4BlockOptions& options, Generator& gen,
          Generator* dropout_gen, DType dtype = DType::Float32);

  Tensor forward(const Tensor& x) override;  // (B, L, H) -> (B, L, H)

  void setup_step();
  Tensor default_state(std::int64_t batch) const;
  // x_t (B, H) -> (B, H). Causal layers only (a bidirectional layer throws).
  Tensor step(const Tensor& x_t, Tensor& state);
  // The recurrent view over a whole sequence (no gradient): x (B, L, H) -> (B, L, H).
  Tensor forward_recurrent(const Tensor& x);

  SSMKernel& kernel() { return *kernel_; }
  const Tensor& D() const { return D_; }

 private:
  // y (B, C, H, L) -> (B, L, H): activation, dropout, output linear, GLU.
  Tensor output(const Tensor& y);

  std::shared_ptr<SSMKernel> kernel_;
  S4BlockOptions options_;
  Tensor& D_;  // (C, H)
  std::shared_ptr<Dropout> dropout_;
  std::shared_ptr<Linear> output_linear_;  // C H -> 2 H
};

}  // namespace ssm
