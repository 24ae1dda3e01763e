// Differentiable elementwise ops: kernel forward + recorded kernel backward.
#include "autograd/ops/elementwise.h"

#include "autograd/tape.h"
#include "kernels/elementwise.h"

namespace ssm {

namespace {

using kernels::BinaryOp;
using kernels::UnaryOp;
using kernels::UnaryParams;

Tensor binary(const char* name, BinaryOp op, const Tensor& a, const Tensor& b) {
  Tensor out = kernels::binary_forward(op, a, b);
  if (needs_grad({&a, &b})) {
    const bool need_a = a.requires_grad(), need_b = b.requires_grad();
    // Only mul, div and max/min read their inputs in backward.
    const bool save = op != BinaryOp::Add && op != BinaryOp::Sub;
    const Tensor sa = save ? a.detach() : Tensor(), sb = save ? b.detach() : Tensor();
    const Tensor so = op == BinaryOp::Div ? out.detach() : Tensor();
    const Shape sha = a.shape(), shb = b.shape();
    record(name, {a, b}, {out}, [=](const GradList& g) -> GradList {
      if (op == BinaryOp::Add || op == BinaryOp::Sub) {
        Tensor ga = need_a ? kernels::sum_to(g[0], sha) : Tensor();
        Tensor gb = need_b ? kernels::sum_to(g[0], shb) : Tensor();
        if (gb.defined() && op == BinaryOp::Sub) gb = kernels::unary_forward(UnaryOp::Neg, gb);
        return {ga, gb};
      }
      auto [ga, gb] = kernels::binary_backward(op, g[0], sa, sb, so, need_a, need_b);
      return {ga, gb};
    });
  }
  return out;
}

Tensor unary(UnaryOp op, const Tensor& x, UnaryParams p = {}) {
  Tensor out = kernels::unary_forward(op, x, p);
  if (needs_grad({&x})) {
    const Tensor sx = x.detach(), sy = out.detach();
    record(kernels::unary_name(op), {x}, {out}, [=](const GradList& g) -> GradList {
      return {kernels::unary_backward(op, g[0], sx, sy, p)};
    });
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary("add", BinaryOp::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary("sub", BinaryOp::Sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary("mul", BinaryOp::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary("div", BinaryOp::Div, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) {
  return binary("maximum", BinaryOp::Maximum, a, b);
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return binary("minimum", BinaryOp::Minimum, a, b);
}

Tensor add(const Tensor& a, double s) { return unary(UnaryOp::AddScalar, a, {s, 0.0}); }
Tensor sub(const Tensor& a, double s) { return unary(UnaryOp::AddScalar, a, {-s, 0.0}); }
Tensor rsub(double s, const Tensor& a) { return unary(UnaryOp::RSubScalar, a, {s, 0.0}); }
Tensor mul(const Tensor& a, double s) { return unary(UnaryOp::MulScalar, a, {s, 0.0}); }
Tensor div(const Tensor& a, double s) {
  SSM_CHECK(s != 0.0, "div", "division of ", a.desc(), " by the scalar 0");
  return unary(UnaryOp::MulScalar, a, {1.0 / s, 0.0});
}
Tensor rdiv(double s, const Tensor& a) { return unary(UnaryOp::RDivScalar, a, {s, 0.0}); }

Tensor neg(const Tensor& x) { return unary(UnaryOp::Neg, x); }
Tensor exp(const Tensor& x) { return unary(UnaryOp::Exp, x); }
Tensor log(const Tensor& x) { return unary(UnaryOp::Log, x); }
Tensor sqrt(const Tensor& x) { return unary(UnaryOp::Sqrt, x); }
Tensor pow(const Tensor& x, double exponent) {
  return unary(UnaryOp::PowScalar, x, {exponent, 0.0});
}
Tensor abs(const Tensor& x) { return unary(UnaryOp::Abs, x); }
Tensor tanh(const Tensor& x) { return unary(UnaryOp::Tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::Sigmoid, x); }
Tensor relu(const Tensor& x) { return unary(UnaryOp::Relu, x); }
Tensor gelu(const Tensor& x, const std::string& approximate) {
  SSM_CHECK(approximate == "none" || approximate == "tanh", "gelu",
            "approximate must be 'none' or 'tanh', got '", approximate, "'");
  return unary(approximate == "none" ? UnaryOp::GeluErf : UnaryOp::GeluTanh, x);
}
Tensor silu(const Tensor& x) { return unary(UnaryOp::Silu, x); }
Tensor softplus(const Tensor& x, double beta, double threshold) {
  SSM_CHECK(beta > 0.0, "softplus", "beta must be positive, got ", beta);
  return unary(UnaryOp::Softplus, x, {beta, threshold});
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Tensor out = kernels::where_forward(cond, a, b);
  if (needs_grad({&a, &b})) {
    const bool need_a = a.requires_grad(), need_b = b.requires_grad();
    const Tensor c = cond.detach();
    const Shape sha = a.shape(), shb = b.shape();
    record("where", {a, b}, {out}, [=](const GradList& g) -> GradList {
      return {need_a ? kernels::where_backward(c, g[0], true, sha) : Tensor(),
              need_b ? kernels::where_backward(c, g[0], false, shb) : Tensor()};
    });
  }
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  const Tensor fill = Tensor::full({}, value, x.dtype(), x.device());
  return where(mask, fill, x);
}

}  // namespace ssm
