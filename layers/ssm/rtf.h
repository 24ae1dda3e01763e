#pragma once
// RTFKernel: the SSM kernel of the Rational Transfer Function model
// (Parnichkun et al. 2024, "State-Free Inference of State-Space Models: The
// Transfer Function Approach"): per feature the transfer function
//   H(z) = h0 + (b_1 z^-1 + ... + b_n z^-n) / (1 + a_1 z^-1 + ... + a_n z^-n),
// its length-L kernel computed by FFT in O(L log L) whatever the state size n.
// The layer around it adds D (h0 already is a feedthrough term: K[0] holds it).
//
//   a  (H, n)            shared by the channels; init below   tag "ssm"
//   b  (channels, H, n)  the numerator b̃ = C (I - A^L) (truncation built in); init below
//   h0 (channels, H)     N(0, 1) (the reference code's h_0)
//
// init (a and b, as the reference code's init_fn applies to both):
// "zeros" (its default: every pole at the origin, a stable start), "xavier"
// U(+-1/sqrt(n)), "montel" U(+-1/n). The reference stores a and b in one
// tensor `ab`; here they are separate so that only a carries the "ssm" tag.
//
// Recurrent view: setup_step() recovers the companion-form numerator
// C = b̃ (I - A^L)^{-1} (float64) at L = the length of the last forward(L)
// (options.l_max before any forward); step() then runs
//   y_t = C x_t + h0 u_t,  x_{t+1} = (u_t - a . x_t, x_t[0], ..., x_t[n-2])
// (state (B, H, n)), whose impulse response is h0, C e_1, C A e_1, ...: the
// forward kernel's, except that the L-point FFT kernel also wraps the L-th
// term C A^{L-1} e_1 around onto K[0] (zero for a = 0, negligible for stable
// poles at the lengths used).
#include <cstdint>
#include <string>

#include "core/rng.h"
#include "layers/ssm/kernel.h"

namespace ssm {

struct RTFOptions {
  std::string init = "zeros";  // a and b: "zeros", "xavier", "montel"
  std::int64_t l_max = 1024;   // truncation length for setup_step before any forward
};

class RTFKernel : public SSMKernel {
 public:
  // Draws a, b (unless zeros), then h0, from gen. n: state size (the order of
  // the polynomials). dtype: float32 or float64.
  RTFKernel(std::int64_t H, std::int64_t n, std::int64_t channels, const RTFOptions& options,
            Generator& gen, DType dtype = DType::Float32);

  // K (channels, H, L) = rtf_kernel(a, b, h0, L); L > n. Remembers L for setup_step.
  Tensor forward(std::int64_t L) override;
  // C = b̃ (I - A^L)^{-1} at the last forward length (no gradient).
  void setup_step() override;
  Tensor default_state(std::int64_t batch) const override;  // zeros (B, H, n)
  // u_t (B, H) -> y_t (B, channels, H), companion form (see above).
  Tensor step(const Tensor& u_t, Tensor& state) override;

  const RTFOptions& options() const { return options_; }
  std::int64_t truncation_length() const { return L_; }  // the L setup_step uses
  void set_step_length(std::int64_t L) override;
  const Tensor& a() const { return a_; }    // (H, n)
  const Tensor& b() const { return b_; }    // (channels, H, n)
  const Tensor& h0() const { return h0_; }  // (channels, H)

 private:
  RTFOptions options_;
  Tensor& a_;
  Tensor& b_;
  Tensor& h0_;
  std::int64_t L_;
  Tensor step_a_, step_C_, step_h0_;  // set by setup_step
};

}  // namespace ssm
