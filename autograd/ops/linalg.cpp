// Differentiable matrix products: kernel forward + recorded kernel backward.
#include "autograd/ops/linalg.h"

#include "autograd/tape.h"
#include "kernels/linalg.h"

namespace ssm {

namespace {

// out = a @ b recorded under `name`. Backward: ga = g b^T needs b, gb = a^T g
// needs a, so each operand is saved only when the other one needs a gradient.
Tensor product(const char* name, const Tensor& a, const Tensor& b) {
  Tensor out = kernels::matmul_forward(a, b);
  if (needs_grad({&a, &b})) {
    const bool need_a = a.requires_grad(), need_b = b.requires_grad();
    const Tensor sa = need_b ? a.detach() : Tensor(), sb = need_a ? b.detach() : Tensor();
    const Shape sha = a.shape(), shb = b.shape();
    record(name, {a, b}, {out}, [=](const GradList& g) -> GradList {
      return {need_a ? kernels::matmul_backward_a(g[0], sb, sha) : Tensor(),
              need_b ? kernels::matmul_backward_b(g[0], sa, shb) : Tensor()};
    });
  }
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) { return product("matmul", a, b); }

Tensor bmm(const Tensor& a, const Tensor& b) {
  SSM_CHECK(a.defined() && b.defined(), "bmm", "tensor is undefined");
  SSM_CHECK(a.dim() == 3 && b.dim() == 3, "bmm",
            "expected 3-D tensors a (B, M, K) and b (B, K, N), got a ", a.desc(), ", b ", b.desc());
  SSM_CHECK(a.size(0) == b.size(0), "bmm", "batch sizes differ: a ", a.desc(), ", b ", b.desc(),
            " (bmm does not broadcast; use matmul)");
  SSM_CHECK(a.size(2) == b.size(1), "bmm", "inner dimensions differ: a ", a.desc(), ", b ",
            b.desc());
  check_same_device("bmm", a, b);
  check_same_dtype("bmm", a, b);
  return product("bmm", a, b);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  Tensor y = kernels::linear_forward(x, weight, bias);
  if (needs_grad({&x, &weight, &bias})) {
    const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
    const bool need_b = bias.requires_grad();
    // gx = gy W needs W; gW = gy^T x needs x; gb needs neither.
    const Tensor sx = need_w ? x.detach() : Tensor(), sw = need_x ? weight.detach() : Tensor();
    const Shape shx = x.shape();
    record("linear", {x, weight, bias}, {y}, [=](const GradList& g) -> GradList {
      return {need_x ? kernels::linear_backward_input(g[0], sw, shx) : Tensor(),
              need_w ? kernels::linear_backward_weight(g[0], sx) : Tensor(),
              need_b ? kernels::linear_backward_bias(g[0]) : Tensor()};
    });
  }
  return y;
}

}  // namespace ssm
