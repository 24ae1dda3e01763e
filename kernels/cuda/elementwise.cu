// CUDA elementwise kernels (float32). One thread per output element in a
// grid-stride loop; every input is read through an Indexer, so broadcast,
// transposed and flipped views need no copy. The formulas follow
// kernels/cpu/elementwise.cpp (same operation order, so that results agree
// to rounding); the float math is CUDA's libdevice (expf, erf-based
// normcdff, tanhf, log1pf, powf) where the CPU uses its own SIMD forms.
//
// Backward passes return fresh gradient tensors; the reductions that undo a
// broadcast go through kernels::sum_to -> sum_forward, which dispatches to
// the CUDA reduction (fixed-order, no atomics).
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/shape.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/elementwise.h"
#include "kernels/elementwise.h"

namespace ssm::kernels::cuda {

namespace {

// Offset of element i through ix; the 0- and 1-dim cases (a contiguous view
// merges to one dim) skip the divisions. Valid for i < numel of the view the
// indexer was made for (then a 1-dim indexer has sizes[0] == numel).
__device__ __forceinline__ std::int64_t at(const Indexer& ix, std::int64_t i) {
  if (ix.ndim == 0) return 0;
  if (ix.ndim == 1) return i * ix.strides[0];
  return ix(i);
}

__device__ __forceinline__ std::int64_t first_index() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::int64_t grid_stride() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

// A view read element i at offset i (one dim, stride 1) from a 16-byte
// aligned address: the kernels can then move four floats per load.
bool dense4(const Indexer& ix, const float* p) {
  return ix.ndim == 1 && ix.strides[0] == 1 && reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

template <class F>
__device__ __forceinline__ float4 map4(const float4 x, F f) {
  return make_float4(f(x.x), f(x.y), f(x.z), f(x.w));
}
template <class F>
__device__ __forceinline__ float4 map4(const float4 x, const float4 y, F f) {
  return make_float4(f(x.x, y.x), f(x.y, y.y), f(x.z, y.z), f(x.w, y.w));
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

constexpr float kSqrt2OverPi = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kInvSqrt2Pi = 0.3989422804014327f;   // 1 / sqrt(2 pi)
constexpr float kGeluC = 0.044715f;
constexpr float kGeluC3 = static_cast<float>(3 * 0.044715);

// ---------------------------------------------------------------- binary

// out[i] = a[i] op b[i] over the broadcast shape; maximum/minimum keep a on
// ties (x >= y ? x : y, x <= y ? x : y), so a NaN in b is dropped and a NaN
// in a propagates, as on the CPU.
template <BinaryOp OP>
__device__ __forceinline__ float binary_f(float x, float y) {
  if constexpr (OP == BinaryOp::Add) {
    return x + y;
  } else if constexpr (OP == BinaryOp::Sub) {
    return x - y;
  } else if constexpr (OP == BinaryOp::Mul) {
    return x * y;
  } else if constexpr (OP == BinaryOp::Div) {
    return x / y;
  } else if constexpr (OP == BinaryOp::Maximum) {
    return x >= y ? x : y;
  } else {
    return x <= y ? x : y;
  }
}

template <BinaryOp OP>
__global__ void binary_kernel(float* out, const float* a, Indexer ia, const float* b, Indexer ib,
                              std::int64_t n) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
    out[i] = binary_f<OP>(a[at(ia, i)], b[at(ib, i)]);
  }
}

// binary_kernel for dense4 operands: four elements per load, then the tail.
template <BinaryOp OP>
__global__ void binary_kernel4(float* out, const float* a, const float* b, std::int64_t n) {
  const std::int64_t n4 = n / 4;
  const auto f = [](float x, float y) { return binary_f<OP>(x, y); };
  for (std::int64_t i = first_index(); i < n4; i += grid_stride()) {
    reinterpret_cast<float4*>(out)[i] =
        map4(reinterpret_cast<const float4*>(a)[i], reinterpret_cast<const float4*>(b)[i], f);
  }
  for (std::int64_t i = 4 * n4 + first_index(); i < n; i += grid_stride()) out[i] = f(a[i], b[i]);
}

template <class F>
void with_binary_op(BinaryOp op, F f) {
  switch (op) {
    case BinaryOp::Add: f(std::integral_constant<BinaryOp, BinaryOp::Add>{}); break;
    case BinaryOp::Sub: f(std::integral_constant<BinaryOp, BinaryOp::Sub>{}); break;
    case BinaryOp::Mul: f(std::integral_constant<BinaryOp, BinaryOp::Mul>{}); break;
    case BinaryOp::Div: f(std::integral_constant<BinaryOp, BinaryOp::Div>{}); break;
    case BinaryOp::Maximum: f(std::integral_constant<BinaryOp, BinaryOp::Maximum>{}); break;
    case BinaryOp::Minimum: f(std::integral_constant<BinaryOp, BinaryOp::Minimum>{}); break;
  }
}

// The gradient of maximum/minimum over grad's shape, before sum_to:
// m = [a >= b] (maximum) or [a <= b] (minimum), 0 when either is NaN;
// ga = g * m, gb = g * (1 - m) (products, as the CPU forms them, so that
// 0 * inf and the sign of zero agree). ga or gb may be null (not needed).
template <bool IS_MAX>
__global__ void minmax_grad_kernel(float* ga, float* gb, const float* g, Indexer ig, const float* a,
                                   Indexer ia, const float* b, Indexer ib, std::int64_t n) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
    const float x = a[at(ia, i)], y = b[at(ib, i)];
    const float m = (IS_MAX ? x >= y : x <= y) ? 1.0f : 0.0f;
    const float gv = g[at(ig, i)];
    if (ga) ga[i] = gv * m;
    if (gb) gb[i] = gv * (1.0f - m);
  }
}

// ---------------------------------------------------------------- unary

// sigmoid(x) = 1 / (1 + exp(-x)) in the CPU's stable form: exp of -|x| only.
__device__ __forceinline__ float sigmoid_f(float x) {
  const float e = expf(-fabsf(x));
  const float s = 1.0f / (1.0f + e);
  return x >= 0.0f ? s : e * s;
}

// f(x), the forward maps:
// neg -x; exp; log; sqrt; abs; tanh; sigmoid; relu [x > 0] x;
// gelu x Phi(x) (Phi = normcdff, the erf form);
// gelu_tanh x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)));
// silu x sigmoid(x);
// softplus log(1 + exp(beta x)) / beta, or x where beta x > threshold
//   (PyTorch's rule; p0 = beta, p1 = threshold), log1p(exp(-|z|)) + max(z, 0);
// pow x^p0; add x + p0; mul x p0; rsub p0 - x; rdiv p0 / x.
template <UnaryOp OP>
__device__ __forceinline__ float unary_f(float v, float p0, float p1) {
  (void)p0;
  (void)p1;
  if constexpr (OP == UnaryOp::Neg) {
    return -v;
  } else if constexpr (OP == UnaryOp::Exp) {
    return expf(v);
  } else if constexpr (OP == UnaryOp::Log) {
    return logf(v);
  } else if constexpr (OP == UnaryOp::Sqrt) {
    return sqrtf(v);
  } else if constexpr (OP == UnaryOp::Abs) {
    return fabsf(v);
  } else if constexpr (OP == UnaryOp::Tanh) {
    return tanhf(v);
  } else if constexpr (OP == UnaryOp::Sigmoid) {
    return sigmoid_f(v);
  } else if constexpr (OP == UnaryOp::Relu) {
    return v > 0.0f ? v : 0.0f;
  } else if constexpr (OP == UnaryOp::GeluErf) {
    return v * normcdff(v);
  } else if constexpr (OP == UnaryOp::GeluTanh) {
    return 0.5f * v * (1.0f + tanhf(kSqrt2OverPi * (v + kGeluC * v * v * v)));
  } else if constexpr (OP == UnaryOp::Silu) {
    return v * sigmoid_f(v);
  } else if constexpr (OP == UnaryOp::Softplus) {
    const float z = p0 * v;
    if (z > p1) return v;
    return (z > 0.0f ? z + log1pf(expf(-z)) : log1pf(expf(z))) / p0;
  } else if constexpr (OP == UnaryOp::PowScalar) {
    return powf(v, p0);
  } else if constexpr (OP == UnaryOp::AddScalar) {
    return v + p0;
  } else if constexpr (OP == UnaryOp::MulScalar) {
    return v * p0;
  } else if constexpr (OP == UnaryOp::RSubScalar) {
    return p0 - v;
  } else {
    return p0 / v;
  }
}

// f'(w), w = y for exp, sqrt, tanh, sigmoid (cheaper from the output), else
// w = x: neg -1; exp y; log 1/x; sqrt 1/(2y); abs sign(x); tanh 1 - y^2;
// sigmoid y (1 - y); relu [x > 0]; gelu Phi(x) + x phi(x);
// gelu_tanh 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2);
// silu s (1 + x (1 - s)); softplus sigmoid(beta x) (1 past the threshold);
// pow p x^(p-1); add 1; mul p; rsub -1; rdiv -p / x^2.
template <UnaryOp OP>
__device__ __forceinline__ float unary_df(float w, float p0, float p1) {
  (void)w;
  (void)p0;
  (void)p1;
  if constexpr (OP == UnaryOp::Neg) {
    return -1.0f;
  } else if constexpr (OP == UnaryOp::Exp) {
    return w;
  } else if constexpr (OP == UnaryOp::Log) {
    return 1.0f / w;
  } else if constexpr (OP == UnaryOp::Sqrt) {
    return 0.5f / w;
  } else if constexpr (OP == UnaryOp::Abs) {
    return w > 0.0f ? 1.0f : (w < 0.0f ? -1.0f : 0.0f);
  } else if constexpr (OP == UnaryOp::Tanh) {
    return 1.0f - w * w;
  } else if constexpr (OP == UnaryOp::Sigmoid) {
    return w * (1.0f - w);
  } else if constexpr (OP == UnaryOp::Relu) {
    return w > 0.0f ? 1.0f : 0.0f;
  } else if constexpr (OP == UnaryOp::GeluErf) {
    return normcdff(w) + w * kInvSqrt2Pi * expf(-0.5f * w * w);
  } else if constexpr (OP == UnaryOp::GeluTanh) {
    const float t = tanhf(kSqrt2OverPi * (w + kGeluC * w * w * w));
    return 0.5f * (1.0f + t) + 0.5f * w * (1.0f - t * t) * kSqrt2OverPi * (1.0f + kGeluC3 * w * w);
  } else if constexpr (OP == UnaryOp::Silu) {
    const float s = sigmoid_f(w);
    return s * (1.0f + w * (1.0f - s));
  } else if constexpr (OP == UnaryOp::Softplus) {
    return p0 * w > p1 ? 1.0f : sigmoid_f(p0 * w);
  } else if constexpr (OP == UnaryOp::PowScalar) {
    return p0 * powf(w, p0 - 1.0f);
  } else if constexpr (OP == UnaryOp::AddScalar) {
    return 1.0f;
  } else if constexpr (OP == UnaryOp::MulScalar) {
    return p0;
  } else if constexpr (OP == UnaryOp::RSubScalar) {
    return -1.0f;
  } else {
    return -p0 / (w * w);
  }
}

// out[i] = f(x[i]).
template <UnaryOp OP>
__global__ void unary_kernel(float* out, const float* x, Indexer ix, float p0, float p1,
                             std::int64_t n) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
    out[i] = unary_f<OP>(x[at(ix, i)], p0, p1);
  }
}

// out[i] = grad[i] * f'(v[i]).
template <UnaryOp OP>
__global__ void unary_grad_kernel(float* out, const float* g, Indexer ig, const float* v,
                                  Indexer iv, float p0, float p1, std::int64_t n) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
    out[i] = g[at(ig, i)] * unary_df<OP>(v[at(iv, i)], p0, p1);
  }
}

// unary_kernel and unary_grad_kernel for dense4 operands.
template <UnaryOp OP>
__global__ void unary_kernel4(float* out, const float* x, float p0, float p1, std::int64_t n) {
  const std::int64_t n4 = n / 4;
  const auto f = [p0, p1](float v) { return unary_f<OP>(v, p0, p1); };
  for (std::int64_t i = first_index(); i < n4; i += grid_stride()) {
    reinterpret_cast<float4*>(out)[i] = map4(reinterpret_cast<const float4*>(x)[i], f);
  }
  for (std::int64_t i = 4 * n4 + first_index(); i < n; i += grid_stride()) out[i] = f(x[i]);
}

template <UnaryOp OP>
__global__ void unary_grad_kernel4(float* out, const float* g, const float* v, float p0, float p1,
                                   std::int64_t n) {
  const std::int64_t n4 = n / 4;
  const auto f = [p0, p1](float gi, float vi) { return gi * unary_df<OP>(vi, p0, p1); };
  for (std::int64_t i = first_index(); i < n4; i += grid_stride()) {
    reinterpret_cast<float4*>(out)[i] =
        map4(reinterpret_cast<const float4*>(g)[i], reinterpret_cast<const float4*>(v)[i], f);
  }
  for (std::int64_t i = 4 * n4 + first_index(); i < n; i += grid_stride()) out[i] = f(g[i], v[i]);
}

template <class F>
void with_unary_op(UnaryOp op, F f) {
#define SSM_UNARY_CASE(name) \
  case UnaryOp::name: f(std::integral_constant<UnaryOp, UnaryOp::name>{}); break;
  switch (op) {
    SSM_UNARY_CASE(Neg)
    SSM_UNARY_CASE(Exp)
    SSM_UNARY_CASE(Log)
    SSM_UNARY_CASE(Sqrt)
    SSM_UNARY_CASE(Abs)
    SSM_UNARY_CASE(Tanh)
    SSM_UNARY_CASE(Sigmoid)
    SSM_UNARY_CASE(Relu)
    SSM_UNARY_CASE(GeluErf)
    SSM_UNARY_CASE(GeluTanh)
    SSM_UNARY_CASE(Silu)
    SSM_UNARY_CASE(Softplus)
    SSM_UNARY_CASE(PowScalar)
    SSM_UNARY_CASE(AddScalar)
    SSM_UNARY_CASE(MulScalar)
    SSM_UNARY_CASE(RSubScalar)
    SSM_UNARY_CASE(RDivScalar)
  }
#undef SSM_UNARY_CASE
}

// ---------------------------------------------------------------- where

// The condition's truth as the CPU computes it: cond converted to the value
// type (float32) and compared with 0, so a NaN is true and a float64 that
// rounds to 0 is false. bfloat16 arrives as its raw 16 bits.
template <class C>
__device__ __forceinline__ bool cond_true(C c) {
  if constexpr (std::is_same_v<C, std::uint16_t>) {
    return __uint_as_float(static_cast<unsigned>(c) << 16) != 0.0f;
  } else {
    return static_cast<float>(c) != 0.0f;
  }
}

// out[i] = cond[i] != 0 ? a[i] : b[i], all three broadcast to out's shape.
template <class C>
__global__ void where_kernel(float* out, const C* c, Indexer ic, const float* a, Indexer ia,
                             const float* b, Indexer ib, std::int64_t n) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
    out[i] = cond_true(c[at(ic, i)]) ? a[at(ia, i)] : b[at(ib, i)];
  }
}

// The gradient of one branch of where before sum_to: out[i] = grad[i] where
// the condition selects the branch (a: cond != 0, b: cond == 0), else +0.
template <class C>
__global__ void where_grad_kernel(float* out, const C* c, Indexer ic, const float* g, Indexer ig,
                                  bool branch_a, std::int64_t n) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
    out[i] = cond_true(c[at(ic, i)]) == branch_a ? g[at(ig, i)] : 0.0f;
  }
}

// Calls f with a null pointer of the C++ type that holds cond's elements on
// the device (bfloat16 as its 16 bits).
template <class F>
void with_cond_type(const Tensor& cond, const char* op, F f) {
  switch (cond.dtype()) {
    case DType::Float32: f(static_cast<const float*>(nullptr)); return;
    case DType::Float64: f(static_cast<const double*>(nullptr)); return;
    case DType::Int32: f(static_cast<const std::int32_t*>(nullptr)); return;
    case DType::Int64: f(static_cast<const std::int64_t*>(nullptr)); return;
    case DType::BFloat16: f(static_cast<const std::uint16_t*>(nullptr)); return;
  }
  fail(op, "unsupported condition dtype ", dtype_name(cond.dtype()));
}

}  // namespace

// ---------------------------------------------------------------- binary

Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  SSM_CHECK(a.defined() && b.defined(), name, "tensor is undefined");
  check_same_device(name, a, b);
  check_same_dtype(name, a, b);
  require_cuda_float32(name, {&a, &b});
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(shape, DType::Float32, a.device());
  const std::int64_t n = out.numel();
  if (n == 0) return out;
  const Indexer ia = make_indexer(a, shape, name), ib = make_indexer(b, shape, name);
  float* po = out.data<float>();
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  const bool vec = dense4(ia, pa) && dense4(ib, pb);
  with_binary_op(op, [&](auto tag) {
    (void)tag;
    if (vec) {
      binary_kernel4<decltype(tag)::value><<<blocks_for((n + 3) / 4), kThreads>>>(po, pa, pb, n);
    } else {
      binary_kernel<decltype(tag)::value><<<blocks_for(n), kThreads>>>(po, pa, ia, pb, ib, n);
    }
  });
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

// d(a+b) = (g, g); d(a-b) = (g, -g); d(ab) = (g b, g a);
// d(a/b) = (g / b, -g out / b); maximum/minimum: the gradient goes to the
// selected input (a on ties), one fused kernel for both masks. Every full-
// shape gradient is reduced to its input's shape by sum_to.
std::pair<Tensor, Tensor> binary_backward(BinaryOp op, const Tensor& grad, const Tensor& a,
                                          const Tensor& b, const Tensor& out, bool need_a,
                                          bool need_b) {
  const char* name = binary_name(op);
  SSM_CHECK(grad.defined() && a.defined() && b.defined(), name, "tensor is undefined");
  require_cuda_float32(name, {&grad, &a, &b, &out});
  Tensor ga, gb;
  auto full_a = [&](const Tensor& g) { return kernels::sum_to(g, a.shape()); };
  auto full_b = [&](const Tensor& g) { return kernels::sum_to(g, b.shape()); };
  switch (op) {
    case BinaryOp::Add:
      if (need_a) ga = full_a(grad);
      if (need_b) gb = full_b(grad);
      break;
    case BinaryOp::Sub:
      if (need_a) ga = full_a(grad);
      if (need_b) gb = cuda::unary_forward(UnaryOp::Neg, full_b(grad));
      break;
    case BinaryOp::Mul:
      if (need_a) ga = full_a(cuda::binary_forward(BinaryOp::Mul, grad, b));
      if (need_b) gb = full_b(cuda::binary_forward(BinaryOp::Mul, grad, a));
      break;
    case BinaryOp::Div:
      if (need_a) ga = full_a(cuda::binary_forward(BinaryOp::Div, grad, b));
      if (need_b) {
        SSM_CHECK(out.defined(), name, "the backward of div needs the forward output");
        const Tensor t =
            cuda::binary_forward(BinaryOp::Div, cuda::binary_forward(BinaryOp::Mul, grad, out), b);
        gb = cuda::unary_forward(UnaryOp::Neg, full_b(t));
      }
      break;
    case BinaryOp::Maximum:
    case BinaryOp::Minimum: {
      if (!need_a && !need_b) break;
      const Shape& shape = grad.shape();
      Tensor fa = need_a ? Tensor::empty(shape, DType::Float32, grad.device()) : Tensor();
      Tensor fb = need_b ? Tensor::empty(shape, DType::Float32, grad.device()) : Tensor();
      const std::int64_t n = shape_numel(shape);
      if (n > 0) {
        const Indexer ig = make_indexer(grad, shape, name);
        const Indexer ia = make_indexer(a, shape, name), ib = make_indexer(b, shape, name);
        float* pa = need_a ? fa.data<float>() : nullptr;
        float* pb = need_b ? fb.data<float>() : nullptr;
        if (op == BinaryOp::Maximum) {
          minmax_grad_kernel<true><<<blocks_for(n), kThreads>>>(
              pa, pb, grad.data<float>(), ig, a.data<float>(), ia, b.data<float>(), ib, n);
        } else {
          minmax_grad_kernel<false><<<blocks_for(n), kThreads>>>(
              pa, pb, grad.data<float>(), ig, a.data<float>(), ia, b.data<float>(), ib, n);
        }
        SSM_CUDA_CHECK_LAUNCH();
      }
      if (need_a) ga = full_a(fa);
      if (need_b) gb = full_b(fb);
      break;
    }
  }
  return {ga, gb};
}

// ---------------------------------------------------------------- unary

Tensor unary_forward(UnaryOp op, const Tensor& x, UnaryParams p) {
  const char* name = unary_name(op);
  SSM_CHECK(x.defined(), name, "tensor is undefined");
  require_cuda_float32(name, {&x});
  Tensor out = Tensor::empty(x.shape(), DType::Float32, x.device());
  const std::int64_t n = out.numel();
  if (n == 0) return out;
  const Indexer ix = make_indexer(x, name);
  const float p0 = static_cast<float>(p.p0), p1 = static_cast<float>(p.p1);
  float* po = out.data<float>();
  const float* px = x.data<float>();
  const bool vec = dense4(ix, px);
  with_unary_op(op, [&](auto tag) {
    (void)tag;
    if (vec) {
      unary_kernel4<decltype(tag)::value><<<blocks_for((n + 3) / 4), kThreads>>>(po, px, p0, p1, n);
    } else {
      unary_kernel<decltype(tag)::value><<<blocks_for(n), kThreads>>>(po, px, ix, p0, p1, n);
    }
  });
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

Tensor unary_backward(UnaryOp op, const Tensor& grad, const Tensor& x, const Tensor& y,
                      UnaryParams p) {
  const char* name = unary_name(op);
  SSM_CHECK(grad.defined() && x.defined(), name, "tensor is undefined");
  SSM_CHECK(grad.shape() == x.shape(), name, "gradient ", grad.desc(), " does not match input ",
            x.desc());
  require_cuda_float32(name, {&grad, &x, &y});
  // Which tensor the derivative reads: y where it is cheaper, else x.
  const bool uses_y =
      op == UnaryOp::Exp || op == UnaryOp::Sqrt || op == UnaryOp::Tanh || op == UnaryOp::Sigmoid;
  const Tensor& v = uses_y ? y : x;
  SSM_CHECK(v.defined(), name, "the backward needs the forward output");
  Tensor out = Tensor::empty(x.shape(), DType::Float32, x.device());
  const std::int64_t n = out.numel();
  if (n == 0) return out;
  const Indexer ig = make_indexer(grad, name), iv = make_indexer(v, x.shape(), name);
  const float p0 = static_cast<float>(p.p0), p1 = static_cast<float>(p.p1);
  float* po = out.data<float>();
  const float* pg = grad.data<float>();
  const float* pv = v.data<float>();
  const bool vec = dense4(ig, pg) && dense4(iv, pv);
  with_unary_op(op, [&](auto tag) {
    (void)tag;
    if (vec) {
      unary_grad_kernel4<decltype(tag)::value>
          <<<blocks_for((n + 3) / 4), kThreads>>>(po, pg, pv, p0, p1, n);
    } else {
      unary_grad_kernel<decltype(tag)::value>
          <<<blocks_for(n), kThreads>>>(po, pg, ig, pv, iv, p0, p1, n);
    }
  });
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

// ---------------------------------------------------------------- where

Tensor where_forward(const Tensor& cond, const Tensor& a, const Tensor& b) {
  SSM_CHECK(a.defined() && b.defined() && cond.defined(), "where", "tensor is undefined");
  check_same_device("where", a, b);
  check_same_dtype("where", a, b);
  check_same_device("where", cond, a);
  require_cuda_float32("where", {&a, &b});
  const Shape shape =
      broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  Tensor out = Tensor::empty(shape, DType::Float32, a.device());
  const std::int64_t n = out.numel();
  if (n == 0) return out;
  const Indexer ic = make_indexer(cond, shape, "where");
  const Indexer ia = make_indexer(a, shape, "where"), ib = make_indexer(b, shape, "where");
  float* po = out.data<float>();
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  with_cond_type(cond, "where", [&](auto null) {
    (void)null;
    using C = std::remove_cv_t<std::remove_pointer_t<decltype(null)>>;
    const C* pc = static_cast<const C*>(cond.raw_data());
    where_kernel<C><<<blocks_for(n), kThreads>>>(po, pc, ic, pa, ia, pb, ib, n);
  });
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

Tensor where_backward(const Tensor& cond, const Tensor& grad, bool branch_a, const Shape& shape) {
  SSM_CHECK(cond.defined() && grad.defined(), "where", "tensor is undefined");
  check_same_device("where", cond, grad);
  require_cuda_float32("where", {&grad});
  const Shape full = broadcast_shapes(cond.shape(), grad.shape(), "where");
  Tensor g = Tensor::empty(full, DType::Float32, grad.device());
  const std::int64_t n = g.numel();
  if (n > 0) {
    const Indexer ic = make_indexer(cond, full, "where"), ig = make_indexer(grad, full, "where");
    float* po = g.data<float>();
    const float* pg = grad.data<float>();
    with_cond_type(cond, "where", [&](auto null) {
      (void)null;
      using C = std::remove_cv_t<std::remove_pointer_t<decltype(null)>>;
      const C* pc = static_cast<const C*>(cond.raw_data());
      where_grad_kernel<C><<<blocks_for(n), kThreads>>>(po, pc, ic, pg, ig, branch_a, n);
    });
    SSM_CUDA_CHECK_LAUNCH();
  }
  return kernels::sum_to(g, shape);
}

}  // namespace ssm::kernels::cuda
