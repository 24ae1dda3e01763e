// CPU convolution kernels: causal depthwise conv1d (Mamba, Gu & Dao 2023,
// the `causal_conv1d` package's semantics: PyTorch's
// conv1d(x, w, bias, padding=K-1, groups=D)[..., :L]), conv2d (PyTorch's
// F.conv2d, groups = dilation = 1) by im2col + GEMM, and GLU (Dauphin et al.
// 2017, PyTorch's F.glu).
//
// Gradient rule: backward kernels return fresh gradient tensors (=); the
// tape does the accumulation. Parameter gradients are reduced over batch and
// time in a fixed order, so they do not depend on the thread count.
#include "kernels/conv.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/cpu/simd_math.h"
#include "kernels/cuda/conv.h"

namespace ssm::kernels {

namespace {

using simd::sigmoid;  // stable for large |x|, vectorizable

// d silu(z) / dz = s (1 + z (1 - s)), s = sigmoid(z).
template <class T>
T silu_grad(T z) {
  const T s = sigmoid(z);
  return s * (T(1) + z * (T(1) - s));
}

// ---------------------------------------------------------------- causal_conv1d helpers

// Checks weight ((D, K) or (D, 1, K), K >= 1) and bias ((D) or undefined)
// against the D channels of x, and returns the weight as a contiguous (D, K).
Tensor depthwise_weight(const char* op, const Tensor& x, std::int64_t channels,
                        const Tensor& weight, const Tensor& bias) {
  SSM_CHECK(weight.defined(), op, "weight is undefined");
  check_same_device(op, x, weight);
  check_same_dtype(op, x, weight);
  const bool two_d = weight.dim() == 2;
  const bool three_d = weight.dim() == 3 && weight.size(1) == 1;
  SSM_CHECK((two_d || three_d) && weight.size(-1) >= 1, op,
            "weight must be (D, K) or (D, 1, K) with K >= 1, got ", weight.desc());
  SSM_CHECK(weight.size(0) == channels, op, "weight has ", weight.size(0), " channels but x has ",
            channels, ": x ", x.desc(), ", weight ", weight.desc());
  if (bias.defined()) {
    check_same_device(op, x, bias);
    check_same_dtype(op, x, bias);
    SSM_CHECK(bias.dim() == 1 && bias.size(0) == channels, op, "bias must be ",
              shape_str({channels}), " to match x ", x.desc(), ", got ", bias.desc());
  }
  return weight.reshape({channels, weight.size(-1)}).contiguous();
}

// z[t] = b + sum_k w[k] x[t - (K-1) + k] for one (batch, channel) row of length L.
// Loops over k outside so that the inner loop runs over contiguous time.
template <class T>
void causal_conv1d_row(const T* x, const T* w, T b, std::int64_t L, std::int64_t K, T* z) {
  for (std::int64_t t = 0; t < L; ++t) z[t] = b;
  for (std::int64_t k = 0; k < K; ++k) {
    const std::int64_t shift = K - 1 - k;
    const T wk = w[k];
    for (std::int64_t t = shift; t < L; ++t) z[t] += wk * x[t - shift];
  }
}

// ---------------------------------------------------------------- conv2d helpers

struct Conv2dGeometry {
  std::int64_t C, H, W;                              // input channels and size
  std::int64_t kh, kw;                               // kernel
  std::int64_t sh, sw;                               // stride
  std::int64_t ph, pw;                               // padding
  std::int64_t Ho, Wo;                               // output size
  std::int64_t rows() const { return C * kh * kw; }  // im2col rows
  std::int64_t cols() const { return Ho * Wo; }      // im2col columns
  // A 1x1 kernel with stride 1 and no padding: the image is its own im2col.
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
};

Conv2dGeometry conv2d_geometry(const Tensor& x, const Tensor& weight,
                               std::array<std::int64_t, 2> stride,
                               std::array<std::int64_t, 2> padding) {
  const char* op = "conv2d";
  SSM_CHECK(x.defined() && weight.defined(), op, "tensor is undefined");
  check_same_device(op, x, weight);
  check_same_dtype(op, x, weight);
  SSM_CHECK(x.dim() == 4, op, "x must be (N, C, H, W), got ", x.desc());
  SSM_CHECK(weight.dim() == 4 && weight.size(2) >= 1 && weight.size(3) >= 1, op,
            "weight must be (O, C, kh, kw) with kh, kw >= 1, got ", weight.desc());
  SSM_CHECK(weight.size(1) == x.size(1), op, "weight has ", weight.size(1),
            " input channels but x has ", x.size(1), ": x ", x.desc(), ", weight ", weight.desc());
  SSM_CHECK(stride[0] >= 1 && stride[1] >= 1, op, "stride must be positive, got (", stride[0], ", ",
            stride[1], ")");
  SSM_CHECK(padding[0] >= 0 && padding[1] >= 0, op, "padding must be non-negative, got (",
            padding[0], ", ", padding[1], ")");
  Conv2dGeometry g{};
  g.C = x.size(1);
  g.H = x.size(2);
  g.W = x.size(3);
  g.kh = weight.size(2);
  g.kw = weight.size(3);
  g.sh = stride[0];
  g.sw = stride[1];
  g.ph = padding[0];
  g.pw = padding[1];
  const std::int64_t hp = g.H + 2 * g.ph, wp = g.W + 2 * g.pw;
  SSM_CHECK(g.kh <= hp && g.kw <= wp, op, "kernel (", g.kh, ", ", g.kw,
            ") is larger than the padded input (", hp, ", ", wp, "): x ", x.desc(), ", weight ",
            weight.desc(), ", padding (", g.ph, ", ", g.pw, ")");
  g.Ho = (hp - g.kh) / g.sh + 1;
  g.Wo = (wp - g.kw) / g.sw + 1;
  // BLAS takes int dimensions.
  const std::int64_t out_channels = weight.size(0);
  SSM_CHECK(g.rows() <= INT_MAX && g.cols() <= INT_MAX && out_channels <= INT_MAX, op,
            "GEMM dimensions exceed the BLAS int range: x ", x.desc(), ", weight ", weight.desc());
  return g;
}

// cols[(c, p, q), (i, j)] = x[c, i sh - ph + p, j sw - pw + q] (0 outside the image).
// x (C, H, W) -> cols (C kh kw, Ho Wo).
//
// conv2d runs images in parallel (OpenMP), each with a single-threaded GEMM:
// the build links OpenBLAS's OpenMP variant, which runs serially inside a
// parallel region instead of spawning threads of its own. With one image the
// loop is serial and the GEMM takes the threads.
// The output columns j whose input column j sw - pw + q lies inside [0, W):
// j in [lo, hi). Everything outside reads the zero padding.
struct ColRange {
  std::int64_t lo, hi;
};
inline ColRange valid_cols(const Conv2dGeometry& g, std::int64_t q) {
  // smallest j with j sw >= pw - q, and one past the largest with j sw <= W - 1 + pw - q
  const std::int64_t a = g.pw - q, b = g.W - 1 + g.pw - q;
  std::int64_t lo = a <= 0 ? 0 : (a + g.sw - 1) / g.sw;
  std::int64_t hi = b < 0 ? 0 : b / g.sw + 1;
  lo = std::min(lo, g.Wo);
  hi = std::clamp(hi, lo, g.Wo);
  return {lo, hi};
}

template <class T>
void im2col(const T* x, const Conv2dGeometry& g, T* cols) {
  for (std::int64_t r = 0; r < g.rows(); ++r) {
    const std::int64_t c = r / (g.kh * g.kw), p = (r / g.kw) % g.kh, q = r % g.kw;
    const ColRange jr = valid_cols(g, q);
    T* out = cols + r * g.cols();
    for (std::int64_t i = 0; i < g.Ho; ++i) {
      T* o = out + i * g.Wo;
      const std::int64_t h = i * g.sh - g.ph + p;
      if (h < 0 || h >= g.H) {
        std::fill(o, o + g.Wo, T(0));
        continue;
      }
      const T* xr = x + (c * g.H + h) * g.W;
      const std::int64_t off = q - g.pw;  // o[j] = xr[j sw + off]
      std::fill(o, o + jr.lo, T(0));
      if (g.sw == 1) {
        std::copy(xr + (jr.lo + off), xr + (jr.hi + off), o + jr.lo);
      } else {
        for (std::int64_t j = jr.lo; j < jr.hi; ++j) o[j] = xr[j * g.sw + off];
      }
      std::fill(o + jr.hi, o + g.Wo, T(0));
    }
  }
}

// The adjoint of im2col: gx[c, h, w] = sum of gcols over the (p, q, i, j) that read (c, h, w).
// gcols (C kh kw, Ho Wo) -> gx (C, H, W), overwritten.
template <class T>
void col2im(const T* gcols, const Conv2dGeometry& g, T* gx) {
  for (std::int64_t c = 0; c < g.C; ++c) {
    T* xc = gx + c * g.H * g.W;
    std::fill(xc, xc + g.H * g.W, T(0));
    for (std::int64_t p = 0; p < g.kh; ++p) {
      for (std::int64_t q = 0; q < g.kw; ++q) {
        const ColRange jr = valid_cols(g, q);
        const T* in = gcols + ((c * g.kh + p) * g.kw + q) * g.cols();
        for (std::int64_t i = 0; i < g.Ho; ++i) {
          const std::int64_t h = i * g.sh - g.ph + p;
          if (h < 0 || h >= g.H) continue;
          T* xr = xc + h * g.W;
          const std::int64_t off = q - g.pw;  // xr[j sw + off] += gi[j]
          const T* gi = in + i * g.Wo;
          if (g.sw == 1) {
            T* xo = xr + (jr.lo + off);
            for (std::int64_t j = 0; j < jr.hi - jr.lo; ++j) xo[j] += gi[jr.lo + j];
          } else {
            for (std::int64_t j = jr.lo; j < jr.hi; ++j) xr[j * g.sw + off] += gi[j];
          }
        }
      }
    }
  }
}

// C (m, n) = alpha op(A) op(B) + beta C, row-major, through OpenBLAS.
template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
          const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
          std::int64_t ldc) {
  const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  // Leading dimensions must be >= 1 even for empty matrices.
  const auto i = [](std::int64_t v) { return static_cast<int>(std::max<std::int64_t>(v, 1)); };
  if (m == 0 || n == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, i(m), i(n), i(k), alpha, a, i(lda), b, i(ldb), beta, c,
                i(ldc));
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, i(m), i(n), i(k), alpha, a, i(lda), b, i(ldb), beta, c,
                i(ldc));
  }
}

// ---------------------------------------------------------------- glu helpers

// x viewed as (outer, 2, half): the two halves along `dim` are contiguous blocks.
struct GluLayout {
  std::int64_t outer = 1, half = 1;  // half = (size(dim) / 2) * inner
};

GluLayout glu_layout(const Tensor& x, std::int64_t dim) {
  const std::int64_t size = x.size(dim);
  SSM_CHECK(size % 2 == 0, "glu", "dim ", dim, " of x ", x.desc(), " has odd size ", size,
            "; glu splits it into two equal halves");
  GluLayout l;
  for (std::int64_t d = 0; d < dim; ++d) l.outer *= x.size(d);
  l.half = size / 2;
  for (std::int64_t d = dim + 1; d < x.dim(); ++d) l.half *= x.size(d);
  return l;
}

// Runs f(o, i0, i1) over the rows o of the (outer, half) output in blocks
// [i0, i1) of one row, so that the inner loop is contiguous and a single long
// row (glu over dim 0) still spreads over the threads.
template <class F>
void for_each_glu_block(const GluLayout& l, F f) {
  constexpr std::int64_t kBlock = 4096;
  const std::int64_t blocks = (l.half + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (l.outer * l.half > 65536)
  for (std::int64_t task = 0; task < l.outer * blocks; ++task) {
    const std::int64_t o = task / blocks, i0 = (task % blocks) * kBlock;
    f(o, i0, std::min(l.half, i0 + kBlock));
  }
}

}  // namespace

// ---------------------------------------------------------------- causal_conv1d

// z[b, d, t] = bias[d] + sum_{k<K} w[d, k] x[b, d, t - (K-1) + k]; y = silu ? z sigmoid(z) : z.
Tensor causal_conv1d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, bool silu) {
  const char* op = "causal_conv1d";
  SSM_CHECK(x.defined(), op, "x is undefined");
  SSM_CHECK(x.dim() == 3, op, "x must be (B, D, L), got ", x.desc());
  SSM_CUDA_DISPATCH(x, cuda::causal_conv1d_forward(x, weight, bias, silu));
  const std::int64_t B = x.size(0), D = x.size(1), L = x.size(2);
  const Tensor w = depthwise_weight(op, x, D, weight, bias);  // (D, K)
  require_cpu(op, {&x, &weight, &bias});
  const std::int64_t K = w.size(1);
  const Tensor xc = x.contiguous();                             // (B, D, L)
  const Tensor bc = bias.defined() ? bias.contiguous() : bias;  // (D)
  Tensor y = Tensor::empty({B, D, L}, x.dtype(), x.device());   // (B, D, L)
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = xc.data<T>();
    const T* pw = w.data<T>();
    const T* pb = bc.defined() ? bc.data<T>() : nullptr;
    T* py = y.data<T>();
#pragma omp parallel for schedule(static) if (B * D * L * K > 65536)
    for (std::int64_t r = 0; r < B * D; ++r) {
      const std::int64_t d = r % D;
      T* yr = py + r * L;
      causal_conv1d_row(px + r * L, pw + d * K, pb ? pb[d] : T(0), L, K, yr);
      if (silu) {
        for (std::int64_t t = 0; t < L; ++t) yr[t] *= sigmoid(yr[t]);
      }
    }
  });
  return y;
}

// gz = silu ? g silu'(z) : g (z recomputed from x);
// gx[b, d, s] = sum_k w[d, k] gz[b, d, s + (K-1) - k]  (terms past L are 0);
// gw[d, k] = sum_{b, t} gz[b, d, t] x[b, d, t - (K-1) + k];  gb[d] = sum_{b, t} gz[b, d, t].
// Rows (b, d) run in parallel; each writes its partial gw / gb sums, which are
// then added over b in order (deterministic).
CausalConv1dGrads causal_conv1d_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                                         const Tensor& bias, bool silu, bool need_x,
                                         bool need_weight, bool need_bias) {
  const char* op = "causal_conv1d";
  SSM_CHECK(grad.shape() == x.shape(), op, "gradient ", grad.desc(), " does not match x ",
            x.desc());
  SSM_CUDA_DISPATCH(
      x, cuda::causal_conv1d_backward(grad, x, weight, bias, silu, need_x, need_weight, need_bias));
  const std::int64_t B = x.size(0), D = x.size(1), L = x.size(2);
  const Tensor w = depthwise_weight(op, x, D, weight, bias);  // (D, K)
  require_cpu(op, {&grad, &x, &weight, &bias});
  const std::int64_t K = w.size(1);
  const Tensor xc = x.contiguous();     // (B, D, L)
  const Tensor gc = grad.contiguous();  // (B, D, L)
  const Tensor bc = bias.defined() ? bias.contiguous() : bias;
  const bool need_params = need_weight || need_bias;
  CausalConv1dGrads out;
  if (need_x) out.x = Tensor::empty({B, D, L}, x.dtype(), x.device());
  if (need_weight) out.weight = Tensor::empty(weight.shape(), x.dtype(), x.device());
  if (need_bias) out.bias = Tensor::empty({D}, x.dtype(), x.device());
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = xc.data<T>();
    const T* pg = gc.data<T>();
    const T* pw = w.data<T>();
    const T* pb = bc.defined() ? bc.data<T>() : nullptr;
    // With silu, gz is a scratch copy; without, it is grad itself.
    Tensor gz_buf = silu ? Tensor::empty({B, D, L}, x.dtype(), x.device()) : Tensor();
    std::vector<double> part_w(need_weight ? B * D * K : 0);  // (B, D, K)
    std::vector<double> part_b(need_bias ? B * D : 0);        // (B, D)
#pragma omp parallel for schedule(static) if (B * D * L * K > 65536)
    for (std::int64_t r = 0; r < B * D; ++r) {
      const std::int64_t d = r % D;
      const T* xr = px + r * L;
      const T* wr = pw + d * K;
      const T* gz = pg + r * L;
      if (silu) {
        T* buf = gz_buf.data<T>() + r * L;
        causal_conv1d_row(xr, wr, pb ? pb[d] : T(0), L, K, buf);  // z
        for (std::int64_t t = 0; t < L; ++t) buf[t] = gz[t] * silu_grad(buf[t]);
        gz = buf;
      }
      if (need_x) {
        T* gx = out.x.data<T>() + r * L;
        for (std::int64_t t = 0; t < L; ++t) gx[t] = T(0);
        for (std::int64_t k = 0; k < K; ++k) {
          const std::int64_t shift = K - 1 - k;
          const T wk = wr[k];
          for (std::int64_t t = 0; t + shift < L; ++t) gx[t] += wk * gz[t + shift];
        }
      }
      if (need_weight) {
        for (std::int64_t k = 0; k < K; ++k) {
          const std::int64_t shift = K - 1 - k;
          double acc = 0.0;
          for (std::int64_t t = shift; t < L; ++t) {
            acc += static_cast<double>(gz[t]) * static_cast<double>(xr[t - shift]);
          }
          part_w[r * K + k] = acc;
        }
      }
      if (need_bias) {
        double acc = 0.0;
        for (std::int64_t t = 0; t < L; ++t) acc += static_cast<double>(gz[t]);
        part_b[r] = acc;
      }
    }
    if (!need_params) return;
    // Sum the per-row partials over the batch, in batch order.
    for (std::int64_t d = 0; d < D; ++d) {
      for (std::int64_t k = 0; k < K && need_weight; ++k) {
        double acc = 0.0;
        for (std::int64_t b = 0; b < B; ++b) acc += part_w[(b * D + d) * K + k];
        out.weight.data<T>()[d * K + k] = static_cast<T>(acc);
      }
      if (need_bias) {
        double acc = 0.0;
        for (std::int64_t b = 0; b < B; ++b) acc += part_b[b * D + d];
        out.bias.data<T>()[d] = static_cast<T>(acc);
      }
    }
  });
  return out;
}

// conv_state[b, d, :] <- (conv_state[b, d, 1:], x_t[b, d]);
// y_t[b, d] = bias[d] + sum_k w[d, k] conv_state[b, d, k], silu'd when `silu`.
Tensor causal_conv1d_update(const Tensor& x_t, Tensor& conv_state, const Tensor& weight,
                            const Tensor& bias, bool silu) {
  const char* op = "causal_conv1d_update";
  SSM_CHECK(x_t.defined() && conv_state.defined(), op, "tensor is undefined");
  SSM_CHECK(x_t.dim() == 2, op, "x_t must be (B, D), got ", x_t.desc());
  SSM_CUDA_DISPATCH(x_t, cuda::causal_conv1d_update(x_t, conv_state, weight, bias, silu));
  const std::int64_t B = x_t.size(0), D = x_t.size(1);
  const Tensor w = depthwise_weight(op, x_t, D, weight, bias);  // (D, K)
  const std::int64_t K = w.size(1);
  check_same_device(op, x_t, conv_state);
  check_same_dtype(op, x_t, conv_state);
  SSM_CHECK(conv_state.shape() == Shape({B, D, K}), op, "conv_state must be (B, D, K) = (", B, ", ",
            D, ", ", K, ") for x_t ", x_t.desc(), " and weight ", weight.desc(), ", got ",
            conv_state.desc());
  require_cpu(op, {&x_t, &conv_state, &weight, &bias});
  const Tensor xc = x_t.contiguous();  // (B, D)
  const Tensor bc = bias.defined() ? bias.contiguous() : bias;
  Tensor y = Tensor::empty({B, D}, x_t.dtype(), x_t.device());  // (B, D)
  // The state is written in place through its own strides.
  const std::int64_t s0 = conv_state.strides()[0], s1 = conv_state.strides()[1];
  const std::int64_t s2 = conv_state.strides()[2];
  dispatch_float(x_t.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = xc.data<T>();
    const T* pw = w.data<T>();
    const T* pb = bc.defined() ? bc.data<T>() : nullptr;
    T* ps = conv_state.data<T>();
    T* py = y.data<T>();
#pragma omp parallel for schedule(static) if (B * D * K > 65536)
    for (std::int64_t r = 0; r < B * D; ++r) {
      const std::int64_t b = r / D, d = r % D;
      T* s = ps + b * s0 + d * s1;
      for (std::int64_t k = 0; k + 1 < K; ++k) s[k * s2] = s[(k + 1) * s2];
      s[(K - 1) * s2] = px[r];
      T acc = pb ? pb[d] : T(0);
      for (std::int64_t k = 0; k < K; ++k) acc += pw[d * K + k] * s[k * s2];
      py[r] = silu ? acc * sigmoid(acc) : acc;
    }
  });
  return y;
}

// ---------------------------------------------------------------- conv2d

// Per image n: cols = im2col(x[n]) (C kh kw, Ho Wo); y[n] = W (O, C kh kw) cols + bias.
Tensor conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                      std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding) {
  const char* op = "conv2d";
  const Conv2dGeometry g = conv2d_geometry(x, weight, stride, padding);
  const std::int64_t N = x.size(0), O = weight.size(0);
  if (bias.defined()) {
    check_same_device(op, x, bias);
    check_same_dtype(op, x, bias);
    SSM_CHECK(bias.dim() == 1 && bias.size(0) == O, op, "bias must be ", shape_str({O}),
              " to match weight ", weight.desc(), ", got ", bias.desc());
  }
  SSM_CUDA_DISPATCH(x, cuda::conv2d_forward(x, weight, bias, stride, padding));
  require_cpu(op, {&x, &weight, &bias});
  const Tensor xc = x.contiguous();       // (N, C, H, W)
  const Tensor wc = weight.contiguous();  // (O, C kh kw)
  const Tensor bc = bias.defined() ? bias.contiguous() : bias;
  Tensor y = Tensor::empty({N, O, g.Ho, g.Wo}, x.dtype(), x.device());  // (N, O, Ho, Wo)
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const std::int64_t P = g.cols(), R = g.rows();
#pragma omp parallel if (N > 1)
    {
      // (C kh kw, Ho Wo), one per thread; uninitialised, from the caching allocator
      const Tensor scratch = Tensor::empty({g.pointwise() ? 0 : R * P}, x.dtype());
      T* cols = scratch.numel() ? scratch.data<T>() : nullptr;
#pragma omp for schedule(static)
      for (std::int64_t n = 0; n < N; ++n) {
        const T* xn = xc.data<T>() + n * g.C * g.H * g.W;
        T* yn = y.data<T>() + n * O * P;
        const T* cn = xn;
        if (!g.pointwise()) {
          im2col(xn, g, cols);
          cn = cols;
        }
        for (std::int64_t o = 0; o < O; ++o) {
          const T b = bc.defined() ? bc.data<T>()[o] : T(0);
          for (std::int64_t p = 0; p < P; ++p) yn[o * P + p] = b;
        }
        gemm<T>(false, false, O, P, R, T(1), wc.data<T>(), R, cn, P, T(1), yn, P);
      }
    }
  });
  return y;
}

// gb[o] = sum_{n, p} g[n, o, p];  gw (O, C kh kw) = sum_n g[n] (O, P) cols[n]^T;
// gx[n] = col2im(W^T (C kh kw, O) g[n]).
Conv2dGrads conv2d_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                            std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding,
                            bool need_x, bool need_weight, bool need_bias) {
  const char* op = "conv2d";
  const Conv2dGeometry g = conv2d_geometry(x, weight, stride, padding);
  const std::int64_t N = x.size(0), O = weight.size(0);
  SSM_CHECK(grad.shape() == Shape({N, O, g.Ho, g.Wo}), op, "gradient ", grad.desc(),
            " does not match the output (", N, ", ", O, ", ", g.Ho, ", ", g.Wo, ")");
  SSM_CUDA_DISPATCH(
      x, cuda::conv2d_backward(grad, x, weight, stride, padding, need_x, need_weight, need_bias));
  require_cpu(op, {&grad, &x, &weight});
  const Tensor gc = grad.contiguous();  // (N, O, Ho, Wo)
  Conv2dGrads out;
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const std::int64_t P = g.cols(), R = g.rows();
    const T* pg = gc.data<T>();
    if (need_bias) {
      out.bias = Tensor::empty({O}, x.dtype(), x.device());
      T* gb = out.bias.data<T>();
      for (std::int64_t o = 0; o < O; ++o) {
        double acc = 0.0;
        for (std::int64_t n = 0; n < N; ++n) {
          const T* row = pg + (n * O + o) * P;
          for (std::int64_t p = 0; p < P; ++p) acc += static_cast<double>(row[p]);
        }
        gb[o] = static_cast<T>(acc);
      }
    }
    if (!need_x && !need_weight) return;
    Tensor xc, wc;
    // The weight gradient is summed over images in kGroups fixed groups of
    // consecutive images (one partial sum each, in image order), then the
    // partials in group order: the result does not depend on the thread count.
    constexpr std::int64_t kGroups = 16;
    const std::int64_t group = std::max<std::int64_t>(1, (N + kGroups - 1) / kGroups);
    const std::int64_t groups = N == 0 ? 0 : (N + group - 1) / group;
    std::vector<T> partial;  // (groups, O, R)
    if (need_weight) {
      xc = x.contiguous();  // (N, C, H, W)
      out.weight = Tensor::zeros(weight.shape(), x.dtype(), x.device());
      partial.assign(static_cast<std::size_t>(groups * O * R), T(0));
    }
    if (need_x) {
      wc = weight.contiguous();  // (O, C kh kw)
      out.x = Tensor::empty(x.shape(), x.dtype(), x.device());
    }
#pragma omp parallel if (N > 1)
    {
      // (C kh kw, Ho Wo), one per thread; uninitialised, from the caching allocator
      const Tensor scratch = Tensor::empty({g.pointwise() ? 0 : R * P}, x.dtype());
      T* cols = scratch.numel() ? scratch.data<T>() : nullptr;
      if (need_weight) {
#pragma omp for schedule(static)
        for (std::int64_t k = 0; k < groups; ++k) {
          for (std::int64_t n = k * group; n < std::min(N, (k + 1) * group); ++n) {
            const T* gn = pg + n * O * P;  // (O, P)
            const T* xn = xc.data<T>() + n * g.C * g.H * g.W;
            const T* cn = xn;
            if (!g.pointwise()) {
              im2col(xn, g, cols);
              cn = cols;
            }
            // partial[k] (O, R) += g[n] (O, P) cols^T (P, R)
            gemm<T>(false, true, O, R, P, T(1), gn, P, cn, P, T(1), partial.data() + k * O * R, R);
          }
        }
      }
      if (need_x) {
#pragma omp for schedule(static)
        for (std::int64_t n = 0; n < N; ++n) {
          const T* gn = pg + n * O * P;  // (O, P)
          T* gxn = out.x.data<T>() + n * g.C * g.H * g.W;
          // gcols (R, P) = W^T (R, O) g[n] (O, P), written straight into gx for a 1x1 kernel.
          T* gcols = g.pointwise() ? gxn : cols;
          gemm<T>(true, false, R, P, O, T(1), wc.data<T>(), R, gn, P, T(0), gcols, P);
          if (!g.pointwise()) col2im(cols, g, gxn);
        }
      }
    }
    if (need_weight) {
      T* gw = out.weight.data<T>();
      for (std::int64_t k = 0; k < groups; ++k) {
        const T* pk = partial.data() + k * O * R;
        for (std::int64_t i = 0; i < O * R; ++i) gw[i] += pk[i];
      }
    }
  });
  return out;
}

// ---------------------------------------------------------------- glu

// x as (outer, 2, half): out[o, i] = a[o, i] sigmoid(b[o, i]), a = x[o, 0, i], b = x[o, 1, i].
Tensor glu_forward(const Tensor& x, std::int64_t dim_in) {
  const char* op = "glu";
  SSM_CHECK(x.defined(), op, "x is undefined");
  SSM_CUDA_DISPATCH(x, cuda::glu_forward(x, dim_in));
  require_cpu(op, {&x});
  SSM_CHECK(x.dim() >= 1, op, "x must have at least one dim, got ", x.desc());
  const std::int64_t dim = wrap_dim(dim_in, x.dim(), op);
  const GluLayout l = glu_layout(x, dim);
  Shape shape = x.shape();
  shape[dim] /= 2;
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = xc.data<T>();
    T* po = out.data<T>();
    const std::int64_t half = l.half;
    for_each_glu_block(l, [&](std::int64_t o, std::int64_t i0, std::int64_t i1) {
      const T* a = px + o * 2 * half;  // (2, half): a, then b
      T* y = po + o * half;
      for (std::int64_t i = i0; i < i1; ++i) y[i] = a[i] * sigmoid(a[half + i]);
    });
  });
  return out;
}

// gx[o, 0, i] = g sigmoid(b);  gx[o, 1, i] = g a sigmoid(b) (1 - sigmoid(b)).
Tensor glu_backward(const Tensor& grad, const Tensor& x, std::int64_t dim_in) {
  const char* op = "glu";
  SSM_CUDA_DISPATCH(x, cuda::glu_backward(grad, x, dim_in));
  require_cpu(op, {&grad, &x});
  const std::int64_t dim = wrap_dim(dim_in, x.dim(), op);
  const GluLayout l = glu_layout(x, dim);
  SSM_CHECK(grad.numel() == l.outer * l.half, op, "gradient ", grad.desc(),
            " does not match the output of x ", x.desc());
  const Tensor xc = x.contiguous();
  const Tensor gc = grad.contiguous();
  Tensor gx = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = xc.data<T>();
    const T* pg = gc.data<T>();
    T* pgx = gx.data<T>();
    const std::int64_t half = l.half;
    for_each_glu_block(l, [&](std::int64_t o, std::int64_t i0, std::int64_t i1) {
      const T* a = px + o * 2 * half;  // (2, half): a, then b
      const T* g = pg + o * half;
      T* ga = pgx + o * 2 * half;
      for (std::int64_t i = i0; i < i1; ++i) {
        const T s = sigmoid(a[half + i]);
        ga[i] = g[i] * s;
        ga[half + i] = g[i] * a[i] * s * (T(1) - s);
      }
    });
  });
  return gx;
}

}  // namespace ssm::kernels
