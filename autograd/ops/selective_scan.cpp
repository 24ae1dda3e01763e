// The selective scan: kernel forward + recorded kernel backward. Shape, dtype
// and device checks are done by the kernel forward, whose messages start with
// the op's name. Saved for backward: the inputs and the chunk checkpoints of
// the state (B, D, L / 64, N), not the states of every step.
#include "autograd/ops/selective_scan.h"

#include "autograd/tape.h"
#include "kernels/selective_scan.h"

namespace ssm {

SelectiveScanResult selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A,
                                   const Tensor& B, const Tensor& C, const Tensor& D,
                                   const Tensor& z, const Tensor& delta_bias, bool delta_softplus,
                                   const Tensor& initial_state) {
  kernels::SelectiveScanForward fwd = kernels::selective_scan_forward(
      u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state);
  SelectiveScanResult out{fwd.y, fwd.last_state};
  if (needs_grad({&u, &delta, &A, &B, &C, &D, &z, &delta_bias, &initial_state})) {
    kernels::SelectiveScanNeeds needs;
    needs.u = u.requires_grad();
    needs.delta = delta.requires_grad();
    needs.A = A.requires_grad();
    needs.B = B.requires_grad();
    needs.C = C.requires_grad();
    needs.D_skip = D.requires_grad();
    needs.z = z.requires_grad();
    needs.delta_bias = delta_bias.requires_grad();
    needs.initial_state = initial_state.requires_grad();
    const auto keep = [](const Tensor& t) { return t.defined() ? t.detach() : t; };
    const Tensor su = keep(u), sd = keep(delta), sA = keep(A), sB = keep(B), sC = keep(C);
    const Tensor sD = keep(D), sz = keep(z), sbias = keep(delta_bias), sh0 = keep(initial_state);
    // The closure keeps only the checkpoints (and chunk) of the forward, not y.
    kernels::SelectiveScanForward saved;
    saved.checkpoints = fwd.checkpoints;
    saved.chunk = fwd.chunk;
    record("selective_scan", {u, delta, A, B, C, D, z, delta_bias, initial_state},
           {out.y, out.last_state}, [=](const GradList& g) -> GradList {
             const auto r = kernels::selective_scan_backward(
                 g[0], g[1], su, sd, sA, sB, sC, sD, sz, sbias, delta_softplus, sh0, saved, needs);
             return {r.u, r.delta, r.A, r.B, r.C, r.D_skip, r.z, r.delta_bias, r.initial_state};
           });
  }
  return out;
}

Tensor selective_state_update(Tensor& state, const Tensor& u_t, const Tensor& delta_t,
                              const Tensor& A, const Tensor& B_t, const Tensor& C_t,
                              const Tensor& D, const Tensor& z_t, const Tensor& delta_bias,
                              bool delta_softplus) {
  NoGradGuard no_grad;
  return kernels::selective_state_update(state, u_t, delta_t, A, B_t, C_t, D, z_t, delta_bias,
                                         delta_softplus);
}

}  // namespace ssm
