#pragma once
// S4DKernel: the diagonal SSM kernel of S4D (Gu, Gupta, Goel, Re 2022, "On
// the parameterization and initialization of diagonal state space models"),
// with the S4 repository's parameter names (its SSMKernelDiag).
//
// H features, each with N2 = N/2 complex modes (one of each conjugate pair):
//   log_dt  (H)                 tag ssm   dt = exp(log_dt)
//   A_real  (H, N2)             tag ssm   Re A = -exp(A_real) | -relu(A_real) | -A_real
//                                         (real_transform exp | relu | none)
//   A_imag  (H, N2)             tag ssm   Im A = A_imag
//   B       (H, N2, 2)          tag ssm
//   C       (channels, H, N2, 2)
// forward(L) = s4d_kernel(dt, A, B, C, L, disc): K (channels, H, L), built from
// differentiable ops so that gradients reach the raw parameters.
//
// Init: log_dt ~ U[log dt_min, log dt_max) (drawn first), A = hippo::s4d_lambda(init)
// (A_real holds the inverse transform of -Re A, clamped to >= 1e-4 as the S4
// code does); B = 1 for lin / inv / real, V^* B of the LegS NPLR for legs;
// C complex normal (re and im each N(0, 1/2), drawn second).
//
// Recurrent view: setup_step() computes A-bar = dA and B-bar = dB * B
// (diag_discretize, no grad); state (B, H, N2, 2): the complex modes x[b, h, n]
// (re, im) of the stored half; step: x' = A-bar x + B-bar u, y = 2 Re(C x').
#include <cstdint>
#include <string>

#include "core/rng.h"
#include "layers/ssm/kernel.h"

namespace ssm {

struct S4DOptions {
  std::string init = "legs";           // "legs" | "lin" | "inv" | "real" (hippo::s4d_lambda)
  std::string disc = "zoh";            // "zoh" | "bilinear"
  std::string real_transform = "exp";  // "exp" | "relu" | "none"
  double dt_min = 1e-3;
  double dt_max = 1e-1;
};

// Initialisers shared by the S4-family kernels.
// log_dt (H) ~ U[log dt_min, log dt_max) (0 < dt_min <= dt_max).
Tensor init_log_dt(std::int64_t H, double dt_min, double dt_max, Generator& gen, DType dtype);
// A complex normal tensor (..., 2): re and im each N(0, 1/2) (torch.randn's cfloat).
Tensor init_complex_normal(const Shape& shape, Generator& gen, DType dtype);

class S4DKernel : public SSMKernel {
 public:
  // N (d_state) must be even; dtype float32 or float64.
  S4DKernel(std::int64_t H, std::int64_t N, std::int64_t channels, const S4DOptions& options,
            Generator& gen, DType dtype = DType::Float32);

  Tensor forward(std::int64_t L) override;  // (channels, H, L)
  void setup_step() override;
  Tensor default_state(std::int64_t batch) const override;  // zeros (batch, H, N2, 2)
  Tensor step(const Tensor& u_t, Tensor& state) override;   // (B, H) -> (B, channels, H)

  const S4DOptions& options() const { return opt_; }
  // The continuous-time parameters the kernel sees (differentiable).
  Tensor dt() const;  // (H)
  Tensor A() const;   // (H, N2, 2)

 private:
  struct Init;  // the initial parameter values (layers/ssm/s4d.cpp)
  S4DKernel(std::int64_t H, std::int64_t N, std::int64_t channels, const S4DOptions& options,
            Init init);

  S4DOptions opt_;
  Tensor& log_dt_;   // (H)
  Tensor& A_real_;   // (H, N2)
  Tensor& A_imag_;   // (H, N2)
  Tensor& B_;        // (H, N2, 2)
  Tensor& C_param_;  // (channels, H, N2, 2)
  // setup_step():
  Tensor step_dA_;  // (H, N2, 2)  A-bar
  Tensor step_dB_;  // (H, N2, 2)  B-bar = dB * B
  Tensor step_C_;   // (channels, H, N2, 2)
};

}  // namespace ssm
