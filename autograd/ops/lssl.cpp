// Differentiable LSSL ops: kernel forward + recorded kernel backward. Shape,
// dtype and device checks are done by the kernel forwards, whose messages
// start with the op's name.
#include "autograd/ops/lssl.h"

#include "autograd/tape.h"
#include "kernels/lssl.h"

namespace ssm {

DiscreteSSM gbt_discretize(const Tensor& A, const Tensor& B, const Tensor& dt, double alpha) {
  kernels::Discretized d = kernels::gbt_discretize_forward(A, B, dt, alpha);
  if (needs_grad({&A, &B, &dt})) {
    const bool need_A = A.requires_grad(), need_B = B.requires_grad();
    const bool need_dt = dt.requires_grad();
    const Tensor sA = A.detach(), sB = B.detach(), sdt = dt.detach();
    const Tensor sdA = d.dA.detach(), sdB = d.dB.detach();
    record("gbt_discretize", {A, B, dt}, {d.dA, d.dB}, [=](const GradList& g) -> GradList {
      auto grads = kernels::gbt_discretize_backward(g[0], g[1], sA, sB, sdt, alpha, sdA, sdB,
                                                    need_A, need_B, need_dt);
      return {grads.A, grads.B, grads.dt};
    });
  }
  return {d.dA, d.dB};
}

DiscreteSSM zoh_discretize_dense(const Tensor& A, const Tensor& B, const Tensor& dt) {
  kernels::Discretized d = kernels::zoh_discretize_dense_forward(A, B, dt);
  if (needs_grad({&A, &B, &dt})) {
    const bool need_A = A.requires_grad(), need_B = B.requires_grad();
    const bool need_dt = dt.requires_grad();
    const Tensor sA = A.detach(), sB = B.detach(), sdt = dt.detach();
    record("zoh_discretize_dense", {A, B, dt}, {d.dA, d.dB}, [=](const GradList& g) -> GradList {
      auto grads =
          kernels::zoh_discretize_dense_backward(g[0], g[1], sA, sB, sdt, need_A, need_B, need_dt);
      return {grads.A, grads.B, grads.dt};
    });
  }
  return {d.dA, d.dB};
}

Tensor krylov_kernel(const Tensor& dA, const Tensor& dB, const Tensor& C, std::int64_t L) {
  kernels::KrylovResult r = kernels::krylov_kernel_forward(dA, dB, C, L);
  if (needs_grad({&dA, &dB, &C})) {
    const bool need_dA = dA.requires_grad(), need_dB = dB.requires_grad();
    const bool need_C = C.requires_grad();
    // The Krylov matrix X (H, N, L) is kept for backward, as the LSSL paper's method does.
    const Tensor sA = dA.detach(), sC = C.detach(), sX = r.X;
    record("krylov_kernel", {dA, dB, C}, {r.K}, [=](const GradList& g) -> GradList {
      auto grads = kernels::krylov_kernel_backward(g[0], sA, sC, sX, need_dA, need_dB, need_C);
      return {grads.dA, grads.dB, grads.C};
    });
  }
  return r.K;
}

Tensor dense_ssm_step(const Tensor& dA, const Tensor& dB, const Tensor& C, const Tensor& u_t,
                      Tensor& state) {
  return kernels::dense_ssm_step(dA, dB, C, u_t, state);
}

}  // namespace ssm
