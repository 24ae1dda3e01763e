#pragma once
// S4Kernel: the DPLR SSM kernel of S4 (Gu, Goel, Re 2022, "Efficiently
// modeling long sequences with structured state spaces"), with the S4
// repository's parameter names (its SSMKernelDPLR), bilinear discretization.
//
// H features, each with the N-state system A = diag(Lambda) - P P^* stored
// by one member of each conjugate pair (N2 = N/2 values; Lambda, P, B, C are
// extended by their conjugates):
//   log_dt  (H)                  tag ssm   dt = exp(log_dt)
//   A_real  (H, N2)              tag ssm   Re Lambda = -exp(A_real)
//   A_imag  (H, N2)              tag ssm   Im Lambda = A_imag
//   P       (rank, H, N2, 2)     tag ssm
//   B       (H, N2, 2)           tag ssm
//   C       (channels, H, N2, 2)           C-tilde = C (I - A-bar^l_max)
// forward(L) = s4_dplr_kernel(dt, Lambda, P, B, C, L): K (channels, H, L), the
// kernel "computed at length L" (C is read as C-tilde for that L).
//
// Init: (Lambda, P, B) = hippo::nplr("legs", N, rank), the same for every
// feature; log_dt ~ U[log dt_min, log dt_max) (drawn first); C complex normal
// (re and im each N(0, 1/2), drawn second), then C-tilde = C (I - A-bar^l_max)
// with each feature's A-bar, as the S4 code does on its first forward
// (computed in O(l_max N rank) by the Woodbury form of the bilinear step).
//
// Recurrent view: setup_step() recovers C = C-tilde (I - A-bar^L)^{-1} for L =
// the length of the last forward() (l_max before any), builds the dense
// bilinear A-bar = (I - dt/2 A)^{-1} (I + dt/2 A) = 2 (I - dt/2 A)^{-1} - I
// with the inverse in Woodbury form, and B-bar = dt (I - dt/2 A)^{-1} B, all
// in double over the full N states. The full state x_full = [x, conj x] keeps
// that form under the update, so the state holds only the stored half:
//   state (B, H, N2, 2): x[b, h, i] (re, im),
//   x' = A-bar_11 x + A-bar_12 conj(x) + B-bar_1 u,   y = 2 Re(C_1 x'),
// where A-bar_11 and A-bar_12 are the blocks of A-bar_full's first N2 rows
// acting on x and on conj x (kernels::s4_dense_step).
#include <cstdint>

#include "core/rng.h"
#include "layers/ssm/kernel.h"

namespace ssm {

struct S4Options {
  std::int64_t rank = 1;
  double dt_min = 1e-3;
  double dt_max = 1e-1;
  std::int64_t l_max = 1024;  // the length C-tilde is initialised for
};

class S4Kernel : public SSMKernel {
 public:
  // N (d_state) must be even; dtype float32 or float64.
  S4Kernel(std::int64_t H, std::int64_t N, std::int64_t channels, const S4Options& options,
           Generator& gen, DType dtype = DType::Float32);

  Tensor forward(std::int64_t L) override;  // (channels, H, L)
  void setup_step() override;
  Tensor default_state(std::int64_t batch) const override;  // zeros (batch, H, N2, 2)
  Tensor step(const Tensor& u_t, Tensor& state) override;   // (B, H) -> (B, channels, H)

  const S4Options& options() const { return opt_; }
  // The length C-tilde is read for by setup_step(): the last forward's L (l_max before any).
  // It is not part of the state dict: after loading a checkpoint trained at
  // another length, set it (or run forward(L)) before setup_step().
  std::int64_t step_length() const { return last_L_; }
  void set_step_length(std::int64_t L) override;
  // The continuous-time parameters the kernel sees (differentiable).
  Tensor dt() const;      // (H)
  Tensor Lambda() const;  // (H, N2, 2)

 private:
  struct Init;  // the initial parameter values (layers/ssm/s4.cpp)
  S4Kernel(std::int64_t H, std::int64_t N, std::int64_t channels, const S4Options& options,
           Init init);

  S4Options opt_;
  std::int64_t last_L_;
  Tensor& log_dt_;   // (H)
  Tensor& A_real_;   // (H, N2)
  Tensor& A_imag_;   // (H, N2)
  Tensor& P_;        // (rank, H, N2, 2)
  Tensor& B_;        // (H, N2, 2)
  Tensor& C_param_;  // (channels, H, N2, 2)  C-tilde
  // setup_step():
  Tensor step_dA_;       // (H, N2, N2, 2)  A-bar_11
  Tensor step_dA_conj_;  // (H, N2, N2, 2)  A-bar_12
  Tensor step_dB_;       // (H, N2, 2)      B-bar_1
  Tensor step_C_;        // (channels, H, N2, 2)  C_1
};

}  // namespace ssm
