// CPU elementwise kernels. Each op's formula is next to its case; the
// derivatives used by unary_backward are listed beside their forward maps.
//
// Gradient rule: backward kernels return fresh gradient tensors (=); the
// tape does the accumulation.
#include "kernels/elementwise.h"

#include <cmath>
#include <type_traits>

#include "core/dispatch.h"
#include "core/strided.h"
#include "kernels/common.h"
#include "kernels/cpu/simd_math.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/reduce.h"

namespace ssm::kernels {

namespace {

// ---------------------------------------------------------------- loops

// The contiguous inner loops, where the time goes: compiled for AVX2 and the
// baseline (SSM_SIMD_CLONES), with everything f calls inlined (flatten) so
// that they vectorize.
template <class T, class F>
SSM_SIMD_CLONES SSM_SIMD_FLATTEN void contiguous1(T* o, const T* x, std::int64_t n, F f) {
  for (std::int64_t i = 0; i < n; ++i) o[i] = f(x[i]);
}
template <class T, class F>
SSM_SIMD_CLONES SSM_SIMD_FLATTEN void contiguous2(T* o, const T* a, const T* b, std::int64_t n,
                                                  F f) {
  for (std::int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i]);
}

// out[i] = f(a[i], b[i]) over broadcast views of a common shape.
template <class T, class F>
void map2(const Tensor& out, const Tensor& a, const Tensor& b, F f) {
  T* o = out.data<T>();
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  for_each_row<3>(out.shape(), {out.strides(), a.strides(), b.strides()}, true,
                  [&](const std::array<std::int64_t, 3>& off, std::int64_t n,
                      const std::array<std::int64_t, 3>& inc) {
                    T* po = o + off[0];
                    const T* xa = pa + off[1];
                    const T* xb = pb + off[2];
                    if (inc[0] == 1 && inc[1] == 1 && inc[2] == 1) {
                      contiguous2(po, xa, xb, n, f);
                    } else if (inc[0] == 1 && inc[1] == 1 && inc[2] == 0) {
                      const T vb = xb[0];
                      contiguous1(po, xa, n, [&f, vb](T va) { return f(va, vb); });
                    } else if (inc[0] == 1 && inc[1] == 0 && inc[2] == 1) {
                      const T va = xa[0];
                      contiguous1(po, xb, n, [&f, va](T vb) { return f(va, vb); });
                    } else {
                      for (std::int64_t i = 0; i < n; ++i) {
                        po[i * inc[0]] = f(xa[i * inc[1]], xb[i * inc[2]]);
                      }
                    }
                  });
}

// out[i] = f(x[i]).
template <class T, class F>
void map1(const Tensor& out, const Tensor& x, F f) {
  T* o = out.data<T>();
  const T* px = x.data<T>();
  for_each_row<2>(out.shape(), {out.strides(), x.strides()}, true,
                  [&](const std::array<std::int64_t, 2>& off, std::int64_t n,
                      const std::array<std::int64_t, 2>& inc) {
                    T* po = o + off[0];
                    const T* xp = px + off[1];
                    if (inc[0] == 1 && inc[1] == 1) {
                      contiguous1(po, xp, n, f);
                    } else {
                      for (std::int64_t i = 0; i < n; ++i) po[i * inc[0]] = f(xp[i * inc[1]]);
                    }
                  });
}

void check_binary(const char* op, const Tensor& a, const Tensor& b) {
  SSM_CHECK(a.defined() && b.defined(), op, "tensor is undefined");
  check_same_device(op, a, b);
  check_same_dtype(op, a, b);
}

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Minimum: return "minimum";
  }
  return "binary";
}

constexpr double kSqrt2OverPi = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kInvSqrt2 = 0.7071067811865476;     // 1 / sqrt(2)
constexpr double kInvSqrt2Pi = 0.3989422804014327;   // 1 / sqrt(2 pi)

using simd::sigmoid;

// Phi(x), the standard normal CDF: the vectorizable form for float, libm's
// erf for double (gradient checks want its last bits).
template <class T>
SSM_SIMD_INLINE T normal_cdf(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return simd::normal_cdf(x);
  } else {
    return T(0.5) * std::erfc(-x * T(kInvSqrt2));
  }
}

// d gelu(x) / dx = Phi(x) + x phi(x), phi the standard normal density.
template <class T>
SSM_SIMD_INLINE T gelu_grad(T x) {
  return normal_cdf(x) + x * T(kInvSqrt2Pi) * simd::exp(T(-0.5) * x * x);
}

}  // namespace

// ---------------------------------------------------------------- binary

Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_binary(name, a, b);
  SSM_CUDA_DISPATCH(a, cuda::binary_forward(op, a, b));
  require_cpu(name, {&a, &b});
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  const Tensor ea = a.expand(shape), eb = b.expand(shape);
  dispatch_float(a.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    switch (op) {
      case BinaryOp::Add: map2<T>(out, ea, eb, [](T x, T y) { return x + y; }); break;
      case BinaryOp::Sub: map2<T>(out, ea, eb, [](T x, T y) { return x - y; }); break;
      case BinaryOp::Mul: map2<T>(out, ea, eb, [](T x, T y) { return x * y; }); break;
      case BinaryOp::Div: map2<T>(out, ea, eb, [](T x, T y) { return x / y; }); break;
      case BinaryOp::Maximum: map2<T>(out, ea, eb, [](T x, T y) { return x >= y ? x : y; }); break;
      case BinaryOp::Minimum: map2<T>(out, ea, eb, [](T x, T y) { return x <= y ? x : y; }); break;
    }
  });
  return out;
}

// d(a+b) = (g, g); d(a-b) = (g, -g); d(ab) = (g b, g a);
// d(a/b) = (g / b, -g a / b^2 = -g out / b);
// maximum/minimum: the gradient goes to the selected input (a on ties).
std::pair<Tensor, Tensor> binary_backward(BinaryOp op, const Tensor& grad, const Tensor& a,
                                          const Tensor& b, const Tensor& out, bool need_a,
                                          bool need_b) {
  SSM_CUDA_DISPATCH(grad, cuda::binary_backward(op, grad, a, b, out, need_a, need_b));
  const char* name = binary_name(op);
  Tensor ga, gb;
  auto full_a = [&](const Tensor& g) { return sum_to(g, a.shape()); };
  auto full_b = [&](const Tensor& g) { return sum_to(g, b.shape()); };
  switch (op) {
    case BinaryOp::Add:
      if (need_a) ga = full_a(grad);
      if (need_b) gb = full_b(grad);
      break;
    case BinaryOp::Sub:
      if (need_a) ga = full_a(grad);
      if (need_b) gb = unary_forward(UnaryOp::Neg, full_b(grad));
      break;
    case BinaryOp::Mul:
      if (need_a) ga = full_a(binary_forward(BinaryOp::Mul, grad, b));
      if (need_b) gb = full_b(binary_forward(BinaryOp::Mul, grad, a));
      break;
    case BinaryOp::Div:
      if (need_a) ga = full_a(binary_forward(BinaryOp::Div, grad, b));
      if (need_b) {
        const Tensor t = binary_forward(BinaryOp::Div, binary_forward(BinaryOp::Mul, grad, out), b);
        gb = unary_forward(UnaryOp::Neg, full_b(t));
      }
      break;
    case BinaryOp::Maximum:
    case BinaryOp::Minimum: {
      const Shape& shape = grad.shape();
      Tensor mask_a = Tensor::empty(shape, a.dtype());
      const Tensor ea = a.expand(shape), eb = b.expand(shape);
      const bool is_max = op == BinaryOp::Maximum;
      dispatch_float(a.dtype(), name, [&](auto tag) {
        using T = typename decltype(tag)::type;
        map2<T>(mask_a, ea, eb,
                [is_max](T x, T y) { return (is_max ? x >= y : x <= y) ? T(1) : T(0); });
      });
      if (need_a) ga = full_a(binary_forward(BinaryOp::Mul, grad, mask_a));
      if (need_b) {
        const Tensor mask_b = unary_forward(UnaryOp::RSubScalar, mask_a, {1.0, 0.0});
        gb = full_b(binary_forward(BinaryOp::Mul, grad, mask_b));
      }
      break;
    }
  }
  return {ga, gb};
}

// ---------------------------------------------------------------- unary

const char* unary_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Log: return "log";
    case UnaryOp::Sqrt: return "sqrt";
    case UnaryOp::Abs: return "abs";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::GeluErf: return "gelu";
    case UnaryOp::GeluTanh: return "gelu_tanh";
    case UnaryOp::Silu: return "silu";
    case UnaryOp::Softplus: return "softplus";
    case UnaryOp::PowScalar: return "pow";
    case UnaryOp::AddScalar: return "add_scalar";
    case UnaryOp::MulScalar: return "mul_scalar";
    case UnaryOp::RSubScalar: return "rsub_scalar";
    case UnaryOp::RDivScalar: return "rdiv_scalar";
  }
  return "unary";
}

Tensor unary_forward(UnaryOp op, const Tensor& x, UnaryParams p) {
  const char* name = unary_name(op);
  SSM_CHECK(x.defined(), name, "tensor is undefined");
  SSM_CUDA_DISPATCH(x, cuda::unary_forward(op, x, p));
  require_cpu(name, {&x});
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_float(x.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T p0 = static_cast<T>(p.p0), p1 = static_cast<T>(p.p1);
    switch (op) {
      case UnaryOp::Neg: map1<T>(out, x, [](T v) { return -v; }); break;
      case UnaryOp::Exp: map1<T>(out, x, [](T v) { return simd::exp(v); }); break;
      case UnaryOp::Log: map1<T>(out, x, [](T v) { return std::log(v); }); break;
      case UnaryOp::Sqrt: map1<T>(out, x, [](T v) { return std::sqrt(v); }); break;
      case UnaryOp::Abs: map1<T>(out, x, [](T v) { return std::abs(v); }); break;
      case UnaryOp::Tanh: map1<T>(out, x, [](T v) { return std::tanh(v); }); break;
      case UnaryOp::Sigmoid: map1<T>(out, x, [](T v) { return sigmoid(v); }); break;
      case UnaryOp::Relu: map1<T>(out, x, [](T v) { return v > T(0) ? v : T(0); }); break;
      // gelu(x) = x Phi(x) = x/2 (1 + erf(x / sqrt 2))
      case UnaryOp::GeluErf: map1<T>(out, x, [](T v) { return v * normal_cdf(v); }); break;
      // gelu_tanh(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
      case UnaryOp::GeluTanh:
        map1<T>(out, x, [](T v) {
          return T(0.5) * v * (T(1) + std::tanh(T(kSqrt2OverPi) * (v + T(0.044715) * v * v * v)));
        });
        break;
      case UnaryOp::Silu: map1<T>(out, x, [](T v) { return v * sigmoid(v); }); break;
      // softplus(x) = log(1 + exp(beta x)) / beta, or x where beta x > threshold
      case UnaryOp::Softplus:
        map1<T>(out, x, [p0, p1](T v) {
          const T z = p0 * v;
          if (z > p1) return v;
          return (z > T(0) ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z))) / p0;
        });
        break;
      case UnaryOp::PowScalar: map1<T>(out, x, [p0](T v) { return std::pow(v, p0); }); break;
      case UnaryOp::AddScalar: map1<T>(out, x, [p0](T v) { return v + p0; }); break;
      case UnaryOp::MulScalar: map1<T>(out, x, [p0](T v) { return v * p0; }); break;
      case UnaryOp::RSubScalar: map1<T>(out, x, [p0](T v) { return p0 - v; }); break;
      case UnaryOp::RDivScalar: map1<T>(out, x, [p0](T v) { return p0 / v; }); break;
    }
  });
  return out;
}

// f'(x): neg -1; exp y; log 1/x; sqrt 1/(2y); abs sign(x); tanh 1 - y^2;
// sigmoid y (1 - y); relu [x > 0]; gelu Phi(x) + x phi(x);
// gelu_tanh 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2);
// silu s (1 + x (1 - s)); softplus sigmoid(beta x) (1 past the threshold);
// pow p x^(p-1); add 1; mul p; rsub -1; rdiv -p / x^2.
Tensor unary_backward(UnaryOp op, const Tensor& grad, const Tensor& x, const Tensor& y,
                      UnaryParams p) {
  const char* name = unary_name(op);
  SSM_CHECK(grad.shape() == x.shape(), name, "gradient ", grad.desc(), " does not match input ",
            x.desc());
  SSM_CUDA_DISPATCH(grad, cuda::unary_backward(op, grad, x, y, p));
  require_cpu(name, {&grad, &x, &y});
  // Which tensor the derivative reads: y where it is cheaper, else x.
  const bool uses_y =
      op == UnaryOp::Exp || op == UnaryOp::Sqrt || op == UnaryOp::Tanh || op == UnaryOp::Sigmoid;
  const Tensor& v = uses_y ? y : x;
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_float(x.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T p0 = static_cast<T>(p.p0), p1 = static_cast<T>(p.p1);
    auto run = [&](auto dfdv) { map2<T>(out, grad, v, [dfdv](T g, T w) { return g * dfdv(w); }); };
    switch (op) {
      case UnaryOp::Neg: run([](T) { return T(-1); }); break;
      case UnaryOp::Exp: run([](T w) { return w; }); break;
      case UnaryOp::Log: run([](T w) { return T(1) / w; }); break;
      case UnaryOp::Sqrt: run([](T w) { return T(0.5) / w; }); break;
      case UnaryOp::Abs:
        run([](T w) { return w > T(0) ? T(1) : (w < T(0) ? T(-1) : T(0)); });
        break;
      case UnaryOp::Tanh: run([](T w) { return T(1) - w * w; }); break;
      case UnaryOp::Sigmoid: run([](T w) { return w * (T(1) - w); }); break;
      case UnaryOp::Relu: run([](T w) { return w > T(0) ? T(1) : T(0); }); break;
      case UnaryOp::GeluErf: run([](T w) { return gelu_grad(w); }); break;
      case UnaryOp::GeluTanh:
        run([](T w) {
          const T t = std::tanh(T(kSqrt2OverPi) * (w + T(0.044715) * w * w * w));
          return T(0.5) * (T(1) + t) +
                 T(0.5) * w * (T(1) - t * t) * T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * w * w);
        });
        break;
      case UnaryOp::Silu:
        run([](T w) {
          const T s = sigmoid(w);
          return s * (T(1) + w * (T(1) - s));
        });
        break;
      case UnaryOp::Softplus:
        run([p0, p1](T w) { return p0 * w > p1 ? T(1) : sigmoid(p0 * w); });
        break;
      case UnaryOp::PowScalar: run([p0](T w) { return p0 * std::pow(w, p0 - T(1)); }); break;
      case UnaryOp::AddScalar: run([](T) { return T(1); }); break;
      case UnaryOp::MulScalar: run([p0](T) { return p0; }); break;
      case UnaryOp::RSubScalar: run([](T) { return T(-1); }); break;
      case UnaryOp::RDivScalar: run([p0](T w) { return -p0 / (w * w); }); break;
    }
  });
  return out;
}

// ---------------------------------------------------------------- where

Tensor where_forward(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_binary("where", a, b);
  check_same_device("where", cond, a);
  SSM_CUDA_DISPATCH(a, cuda::where_forward(cond, a, b));
  require_cpu("where", {&a, &b});
  const Shape shape =
      broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  // The condition as the value type: nonzero means "take a".
  const Tensor c = cond.to(a.dtype()).expand(shape);
  const Tensor ea = a.expand(shape), eb = b.expand(shape);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  dispatch_float(a.dtype(), "where", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* o = out.data<T>();
    const T* pc = c.data<T>();
    const T* pa = ea.data<T>();
    const T* pb = eb.data<T>();
    for_each_row<4>(shape, {out.strides(), c.strides(), ea.strides(), eb.strides()}, true,
                    [&](const std::array<std::int64_t, 4>& off, std::int64_t n,
                        const std::array<std::int64_t, 4>& inc) {
                      for (std::int64_t i = 0; i < n; ++i) {
                        o[off[0] + i * inc[0]] = pc[off[1] + i * inc[1]] != T(0)
                                                     ? pa[off[2] + i * inc[2]]
                                                     : pb[off[3] + i * inc[3]];
                      }
                    });
  });
  return out;
}

Tensor where_backward(const Tensor& cond, const Tensor& grad, bool branch_a, const Shape& shape) {
  SSM_CUDA_DISPATCH(grad, cuda::where_backward(cond, grad, branch_a, shape));
  const Tensor zero = Tensor::zeros({}, grad.dtype(), grad.device());
  const Tensor g = branch_a ? where_forward(cond, grad, zero) : where_forward(cond, zero, grad);
  return sum_to(g, shape);
}

// ---------------------------------------------------------------- sum_to

// No CUDA version: sum_forward dispatches, and the reshape of its fresh
// contiguous result is a view.

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  SSM_CHECK(broadcast_shapes(shape, t.shape(), "sum_to") == t.shape(), "sum_to", "shape ",
            shape_str(shape), " does not broadcast to ", shape_str(t.shape()));
  const std::size_t lead = t.shape().size() - shape.size();
  std::vector<std::int64_t> dims;
  for (std::size_t d = 0; d < t.shape().size(); ++d) {
    if (d < lead || (shape[d - lead] == 1 && t.shape()[d] != 1)) {
      dims.push_back(static_cast<std::int64_t>(d));
    }
  }
  return sum_forward(t, dims, true).reshape(shape);
}

}  // namespace ssm::kernels
