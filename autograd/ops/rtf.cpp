// Differentiable RTF kernel: kernel forward + recorded kernel backward. Shape,
// dtype and device checks are done by the kernel forward, whose messages
// start with the op's name.
#include "autograd/ops/rtf.h"

#include "autograd/tape.h"
#include "kernels/rtf.h"

namespace ssm {

Tensor rtf_kernel(const Tensor& a, const Tensor& b, const Tensor& h0, std::int64_t L) {
  Tensor K = kernels::rtf_kernel_forward(a, b, h0, L);
  if (needs_grad({&a, &b, &h0})) {
    const bool need_a = a.requires_grad(), need_b = b.requires_grad();
    const bool need_h0 = h0.requires_grad();
    const Tensor sa = a.detach(), sb = b.detach();
    record("rtf_kernel", {a, b, h0}, {K}, [=](const GradList& g) -> GradList {
      auto grads = kernels::rtf_kernel_backward(g[0], sa, sb, need_a, need_b, need_h0);
      return {grads.a, grads.b, grads.h0};
    });
  }
  return K;
}

Tensor rtf_state_space_C(const Tensor& a, const Tensor& b, std::int64_t L) {
  return kernels::rtf_state_space_C(a, b, L);
}

Tensor rtf_step(const Tensor& a, const Tensor& C, const Tensor& h0, const Tensor& u_t,
                Tensor& state) {
  return kernels::rtf_step(a, C, h0, u_t, state);
}

}  // namespace ssm
