// The differentiable FFT convolution: kernel forward + recorded kernel
// backward. Shape, dtype and device checks are done by the kernel forward,
// whose messages start with "[fft_conv]".
#include "autograd/ops/fftconv.h"

#include "autograd/tape.h"
#include "kernels/fftconv.h"

namespace ssm {

Tensor fft_conv(const Tensor& u, const Tensor& k, const Tensor& D, const Tensor& k_rev) {
  Tensor out = kernels::fft_conv_forward(u, k, D, k_rev);
  if (needs_grad({&u, &k, &D, &k_rev})) {
    const bool need_u = u.requires_grad(), need_k = k.requires_grad();
    const bool need_D = D.requires_grad(), need_k_rev = k_rev.requires_grad();
    const auto saved = [](const Tensor& t) { return t.defined() ? t.detach() : Tensor(); };
    // Backward reads u for the kernel gradients and k, D, k_rev for grad_u;
    // all four also give it the shapes to check against.
    const Tensor su = saved(u), sk = saved(k), sD = saved(D), sk_rev = saved(k_rev);
    record("fft_conv", {u, k, D, k_rev}, {out}, [=](const GradList& g) -> GradList {
      auto grads =
          kernels::fft_conv_backward(g[0], su, sk, sD, sk_rev, need_u, need_k, need_D, need_k_rev);
      return {grads.u, grads.k, grads.D, grads.k_rev};
    });
  }
  return out;
}

}  // namespace ssm
