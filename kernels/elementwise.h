#pragma once
// Elementwise kernels: binary ops with NumPy broadcasting, unary maps (with
// scalar parameters), where, and sum_to (the reduction that undoes a
// broadcast). Raw compute; the differentiable ops live in autograd/ops/.
#include "core/tensor.h"

namespace ssm::kernels {

enum class BinaryOp { Add, Sub, Mul, Div, Maximum, Minimum };

// out = a op b, broadcast to a common shape. a and b share dtype and device.
Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b);
// Gradients of a op b with respect to a and b, reduced to their shapes.
// `out` is the forward result. Returns {ga, gb}; an entry is undefined when
// its need_ flag is false.
std::pair<Tensor, Tensor> binary_backward(BinaryOp op, const Tensor& grad, const Tensor& a,
                                          const Tensor& b, const Tensor& out, bool need_a,
                                          bool need_b);

enum class UnaryOp {
  Neg,
  Exp,
  Log,
  Sqrt,
  Abs,
  Tanh,
  Sigmoid,
  Relu,
  GeluErf,     // x * Phi(x)
  GeluTanh,    // the tanh approximation of GELU
  Silu,        // x * sigmoid(x)
  Softplus,    // p0 = beta, p1 = threshold (PyTorch's rule)
  PowScalar,   // x ^ p0
  AddScalar,   // x + p0
  MulScalar,   // x * p0
  RSubScalar,  // p0 - x
  RDivScalar,  // p0 / x
};

struct UnaryParams {
  double p0 = 0.0;
  double p1 = 0.0;
};

const char* unary_name(UnaryOp op);
Tensor unary_forward(UnaryOp op, const Tensor& x, UnaryParams params = {});
// grad * f'(x); y = f(x) is the forward output (used where f' is cheaper in y).
Tensor unary_backward(UnaryOp op, const Tensor& grad, const Tensor& x, const Tensor& y,
                      UnaryParams params = {});

// out = cond != 0 ? a : b, all three broadcast together; a and b share dtype.
Tensor where_forward(const Tensor& cond, const Tensor& a, const Tensor& b);
// Gradient of where for one branch: grad where cond selects it (a: cond != 0,
// b: cond == 0), else 0, reduced to `shape`.
Tensor where_backward(const Tensor& cond, const Tensor& grad, bool branch_a, const Shape& shape);

// Sums t over the dims that broadcasting added or stretched, so that the
// result has `shape` (t's shape must broadcast from `shape`).
Tensor sum_to(const Tensor& t, const Shape& shape);

}  // namespace ssm::kernels
