// Differentiable convolutions: kernel forward + recorded kernel backward.
// Shape, dtype and device checks are done by the kernel forwards, whose
// messages start with the op's name.
#include "autograd/ops/conv.h"

#include "autograd/tape.h"
#include "kernels/conv.h"

namespace ssm {

Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, bool silu) {
  Tensor out = kernels::causal_conv1d_forward(x, weight, bias, silu);
  if (needs_grad({&x, &weight, &bias})) {
    const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
    const bool need_b = bias.requires_grad();
    // bias enters backward only through the recomputed pre-activation of silu.
    const Tensor sx = x.detach(), sw = weight.detach();
    const Tensor sb = silu && bias.defined() ? bias.detach() : Tensor();
    record("causal_conv1d", {x, weight, bias}, {out}, [=](const GradList& g) -> GradList {
      auto grads = kernels::causal_conv1d_backward(g[0], sx, sw, sb, silu, need_x, need_w, need_b);
      return {grads.x, grads.weight, grads.bias};
    });
  }
  return out;
}

Tensor causal_conv1d_update(const Tensor& x_t, Tensor& conv_state, const Tensor& weight,
                            const Tensor& bias, bool silu) {
  return kernels::causal_conv1d_update(x_t, conv_state, weight, bias, silu);
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
              std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding) {
  Tensor out = kernels::conv2d_forward(x, weight, bias, stride, padding);
  if (needs_grad({&x, &weight, &bias})) {
    const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
    const bool need_b = bias.requires_grad();
    const Tensor sx = x.detach(), sw = weight.detach();
    record("conv2d", {x, weight, bias}, {out}, [=](const GradList& g) -> GradList {
      auto grads = kernels::conv2d_backward(g[0], sx, sw, stride, padding, need_x, need_w, need_b);
      return {grads.x, grads.weight, grads.bias};
    });
  }
  return out;
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, std::int64_t stride,
              std::int64_t padding) {
  return conv2d(x, weight, bias, {stride, stride}, {padding, padding});
}

Tensor glu(const Tensor& x, std::int64_t dim) {
  Tensor out = kernels::glu_forward(x, dim);
  if (needs_grad({&x})) {
    const Tensor sx = x.detach();
    record("glu", {x}, {out},
           [=](const GradList& g) -> GradList { return {kernels::glu_backward(g[0], sx, dim)}; });
  }
  return out;
}

}  // namespace ssm
