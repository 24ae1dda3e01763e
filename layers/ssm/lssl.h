#pragma once
// LSSLKernel: the SSM kernel of the Linear State-Space Layer (Gu et al. 2021,
// "Combining Recurrent, Convolutional, and Continuous-time Models with Linear
// State-Space Layers"): a dense HiPPO matrix A shared by the H features, a
// step size per feature, discretized densely and unrolled into the Krylov
// kernel K[c, h, l] = C[c, h] Ā_h^l B̄_h. The layer around it adds D.
//
//   A      (N, N)            hippo::transition(measure, N).A   tag "ssm" (buffer when fixed)
//   B      (N)               hippo::transition(measure, N).B   tag "ssm" (buffer when fixed)
//   log_dt (H)               U[log dt_min, log dt_max]          tag "ssm"
//   C      (channels, H, N)  N(0, 1) (the reference's init='normal')
//
// LSSL-fixed (learn_A = false, the reference's learn=0) keeps A and B as
// buffers; learn_A = true (learn=1) trains them, shared by the features.
// Memory: forward materialises the Krylov matrices (H, N, L) and keeps them
// for backward, as the paper's method does (the cost S4 removes).
#include <cstdint>
#include <string>

#include "autograd/ops/lssl.h"
#include "core/rng.h"
#include "layers/ssm/kernel.h"

namespace ssm {

struct LSSLOptions {
  std::string measure = "legs";  // HiPPO measure: "legs", "legt", "lagt", "fout"
  bool learn_A = false;          // false: A, B buffers (LSSL-fixed); true: parameters
  std::string disc = "gbt";      // "gbt" (generalized bilinear with alpha) or "zoh" (dense expm)
  double alpha = 0.5;            // GBT: 0 forward Euler, 0.5 bilinear, 1 backward Euler
  double dt_min = 1e-3;          // log_dt ~ U[log dt_min, log dt_max]
  double dt_max = 1e-1;
};

class LSSLKernel : public SSMKernel {
 public:
  // Draws log_dt, then C, from gen. dtype: float32 or float64.
  LSSLKernel(std::int64_t H, std::int64_t N, std::int64_t channels, const LSSLOptions& options,
             Generator& gen, DType dtype = DType::Float32);

  // K (channels, H, L) = krylov_kernel(discretize(A, B, exp(log_dt)), C, L).
  Tensor forward(std::int64_t L) override;
  // Stores Ā, B̄ (no gradient) and C for step.
  void setup_step() override;
  Tensor default_state(std::int64_t batch) const override;  // zeros (B, H, N)
  // x' = Ā_h x + B̄_h u_t, y_t[b, c, h] = C[c, h] x'. u_t (B, H) -> y_t (B, channels, H).
  Tensor step(const Tensor& u_t, Tensor& state) override;

  // The discrete system of the current parameters (differentiable).
  DiscreteSSM discretize() const;

  const LSSLOptions& options() const { return options_; }
  const Tensor& A() const { return A_; }            // (N, N)
  const Tensor& B() const { return B_; }            // (N)
  const Tensor& log_dt() const { return log_dt_; }  // (H)
  const Tensor& C() const { return C_; }            // (channels, H, N)

 private:
  LSSLOptions options_;
  Tensor& A_;
  Tensor& B_;
  Tensor& log_dt_;
  Tensor& C_;
  Tensor step_dA_, step_dB_, step_C_;  // set by setup_step
};

}  // namespace ssm
