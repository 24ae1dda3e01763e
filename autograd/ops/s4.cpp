// Differentiable S4-family ops: kernel forward + recorded kernel backward.
// Shape, dtype and device checks are done by the kernel forwards, whose
// messages start with the op's name.
#include "autograd/ops/s4.h"

#include "autograd/tape.h"
#include "kernels/s4.h"

namespace ssm {

DiagDiscretization diag_discretize(const Tensor& dt, const Tensor& A, const std::string& method) {
  kernels::DiagDiscrete out = kernels::diag_discretize_forward(dt, A, method);
  if (needs_grad({&dt, &A})) {
    const bool need_dt = dt.requires_grad(), need_A = A.requires_grad();
    const Tensor sdt = dt.detach(), sA = A.detach();
    record("diag_discretize", {dt, A}, {out.dA, out.dB}, [=](const GradList& g) -> GradList {
      auto grads = kernels::diag_discretize_backward(g[0], g[1], sdt, sA, method, need_dt, need_A);
      return {grads.dt, grads.A};
    });
  }
  return {out.dA, out.dB};
}

Tensor s4d_kernel(const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
                  std::int64_t L, const std::string& method) {
  Tensor K = kernels::s4d_kernel_forward(dt, A, B, C, L, method);
  if (needs_grad({&dt, &A, &B, &C})) {
    const bool need_dt = dt.requires_grad(), need_A = A.requires_grad();
    const bool need_B = B.requires_grad(), need_C = C.requires_grad();
    const Tensor sdt = dt.detach(), sA = A.detach(), sB = B.detach(), sC = C.detach();
    record("s4d_kernel", {dt, A, B, C}, {K}, [=](const GradList& g) -> GradList {
      auto grads = kernels::s4d_kernel_backward(g[0], sdt, sA, sB, sC, method, need_dt, need_A,
                                                need_B, need_C);
      return {grads.dt, grads.A, grads.B, grads.C};
    });
  }
  return K;
}

Tensor s4_dplr_kernel(const Tensor& dt, const Tensor& Lambda, const Tensor& P, const Tensor& B,
                      const Tensor& C, std::int64_t L) {
  Tensor K = kernels::s4_dplr_kernel_forward(dt, Lambda, P, B, C, L);
  if (needs_grad({&dt, &Lambda, &P, &B, &C})) {
    const bool need_dt = dt.requires_grad(), need_L = Lambda.requires_grad();
    const bool need_P = P.requires_grad(), need_B = B.requires_grad();
    const bool need_C = C.requires_grad();
    const Tensor sdt = dt.detach(), sL = Lambda.detach(), sP = P.detach(), sB = B.detach();
    const Tensor sC = C.detach();
    record("s4_dplr_kernel", {dt, Lambda, P, B, C}, {K}, [=](const GradList& g) -> GradList {
      auto grads = kernels::s4_dplr_kernel_backward(g[0], sdt, sL, sP, sB, sC, need_dt, need_L,
                                                    need_P, need_B, need_C);
      return {grads.dt, grads.Lambda, grads.P, grads.B, grads.C};
    });
  }
  return K;
}

}  // namespace ssm
