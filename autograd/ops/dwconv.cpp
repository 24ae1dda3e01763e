// Differentiable depthwise convolutions: kernel forward + recorded kernel
// backward. Shape, dtype and device checks are done by the kernel forwards,
// whose messages start with the op's name.
#include "autograd/ops/dwconv.h"

#include "autograd/tape.h"
#include "kernels/dwconv.h"

namespace ssm {

namespace {

using DwBackward = kernels::DwConvGrads (*)(const Tensor&, const Tensor&, const Tensor&, bool, bool,
                                            bool);

// Records op with a closure that calls the kernel backward `bwd` (bias does
// not enter the backward: the conv is linear in it).
void record_dwconv(const char* op, DwBackward bwd, const Tensor& x, const Tensor& weight,
                   const Tensor& bias, const Tensor& out) {
  if (!needs_grad({&x, &weight, &bias})) return;
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
  const bool need_b = bias.requires_grad();
  const Tensor sx = x.detach(), sw = weight.detach();
  record(op, {x, weight, bias}, {out}, [=](const GradList& g) -> GradList {
    auto grads = bwd(g[0], sx, sw, need_x, need_w, need_b);
    return {grads.x, grads.weight, grads.bias};
  });
}

}  // namespace

Tensor dwconv1d(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  Tensor out = kernels::dwconv1d_forward(x, weight, bias);
  record_dwconv("dwconv1d", &kernels::dwconv1d_backward, x, weight, bias, out);
  return out;
}

Tensor dwconv2d(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  Tensor out = kernels::dwconv2d_forward(x, weight, bias);
  record_dwconv("dwconv2d", &kernels::dwconv2d_backward, x, weight, bias, out);
  return out;
}

}  // namespace ssm
