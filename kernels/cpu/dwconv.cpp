// CPU depthwise convolutions with "same" zero padding (odd kernels, padding
// k / 2): PyTorch's conv1d / conv2d with groups = channels, as MambaOut's
// Gated CNN block (Yu & Wang 2024) uses them. The 1-D conv is the 2-D one on
// planes of height 1 with a (1, K) kernel.
//
// Gradient rule: backward kernels return fresh gradient tensors (=); the
// tape does the accumulation. Every output element (y, gx) is computed by one
// thread in a fixed order, and the weight and bias gradients of a channel are
// summed over (batch, position) in a fixed order by one thread, in double, so
// no result depends on the thread count.
#include "kernels/dwconv.h"

#include <algorithm>
#include <vector>

#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/cuda/dwconv.h"

namespace ssm::kernels {

namespace {

// B C planes of H x W, each convolved with its own kh x kw kernel, padding
// (kh / 2, kw / 2). A 1-D conv has H = kh = 1.
struct DwGeometry {
  std::int64_t B = 0, C = 0, H = 1, W = 0;
  std::int64_t kh = 1, kw = 1;
  std::int64_t ph() const { return kh / 2; }
  std::int64_t pw() const { return kw / 2; }
  std::int64_t plane() const { return H * W; }
  std::int64_t taps() const { return kh * kw; }
  // Multiply-adds of one pass; a pass this small runs on one thread.
  std::int64_t work() const { return B * C * plane() * taps(); }
};
constexpr std::int64_t kParallelWork = 65536;

// Checks x, weight and (when defined) bias of dwconv1d / dwconv2d.
// 1-D: x (B, C, L), weight (C, K) or (C, 1, K); 2-D: x (B, C, H, W), weight
// (C, 1, kh, kw); kernel sizes odd; bias (C).
DwGeometry dw_geometry(const char* op, bool two_d, const Tensor& x, const Tensor& weight,
                       const Tensor& bias) {
  SSM_CHECK(x.defined(), op, "x is undefined");
  SSM_CHECK(weight.defined(), op, "weight is undefined");
  check_same_device(op, x, weight);
  check_same_dtype(op, x, weight);
  DwGeometry g;
  if (two_d) {
    SSM_CHECK(x.dim() == 4, op, "x must be (B, C, H, W), got ", x.desc());
    SSM_CHECK(
        weight.dim() == 4 && weight.size(1) == 1 && weight.size(2) >= 1 && weight.size(3) >= 1, op,
        "weight must be (C, 1, kh, kw) with kh, kw >= 1, got ", weight.desc());
    g.H = x.size(2);
    g.W = x.size(3);
    g.kh = weight.size(2);
    g.kw = weight.size(3);
  } else {
    SSM_CHECK(x.dim() == 3, op, "x must be (B, C, L), got ", x.desc());
    const bool two = weight.dim() == 2, three = weight.dim() == 3 && weight.size(1) == 1;
    SSM_CHECK((two || three) && weight.size(-1) >= 1, op,
              "weight must be (C, K) or (C, 1, K) with K >= 1, got ", weight.desc());
    g.W = x.size(2);
    g.kw = weight.size(-1);
  }
  g.B = x.size(0);
  g.C = x.size(1);
  SSM_CHECK(weight.size(0) == g.C, op, "weight has ", weight.size(0), " channels but x has ", g.C,
            ": x ", x.desc(), ", weight ", weight.desc());
  SSM_CHECK(g.kh % 2 == 1 && g.kw % 2 == 1, op,
            "kernel sizes must be odd for same padding (k / 2 on each side), got ", weight.desc());
  if (bias.defined()) {
    check_same_device(op, x, bias);
    check_same_dtype(op, x, bias);
    SSM_CHECK(bias.dim() == 1 && bias.size(0) == g.C, op, "bias must be ", shape_str({g.C}),
              " to match x ", x.desc(), ", got ", bias.desc());
  }
  return g;
}

// The output columns j whose input column j + off lies in [0, W): [lo, hi).
struct ColRange {
  std::int64_t lo, hi;
};
inline ColRange valid_cols(std::int64_t W, std::int64_t off) {
  const std::int64_t lo = std::clamp<std::int64_t>(-off, 0, W);
  const std::int64_t hi = std::clamp<std::int64_t>(W - off, lo, W);
  return {lo, hi};
}

// One plane: y[i, j] = b + sum_{p, q} w[p, q] x[i - ph + p, j - pw + q] (x = 0 outside).
// x, y (H, W); w (kh, kw). Rows of y outer, so each output row stays in cache;
// the inner loop runs over contiguous columns.
template <class T>
void dw_plane(const T* x, const T* w, T b, const DwGeometry& g, T* y) {
  const std::int64_t H = g.H, W = g.W;
  for (std::int64_t i = 0; i < H; ++i) {
    T* yr = y + i * W;
    std::fill(yr, yr + W, b);
    for (std::int64_t p = 0; p < g.kh; ++p) {
      const std::int64_t h = i - g.ph() + p;
      if (h < 0 || h >= H) continue;
      const T* xr = x + h * W;
      for (std::int64_t q = 0; q < g.kw; ++q) {
        const std::int64_t off = q - g.pw();  // yr[j] += w xr[j + off]
        const ColRange jr = valid_cols(W, off);
        const T wv = w[p * g.kw + q];
        for (std::int64_t j = jr.lo; j < jr.hi; ++j) yr[j] += wv * xr[j + off];
      }
    }
  }
}

// Runs dw_plane over the B C planes (OpenMP over planes); weights (C, kh kw),
// bias (C) or null.
template <class T>
void dw_planes(const T* x, const T* w, const T* bias, const DwGeometry& g, T* y) {
  const std::int64_t P = g.plane(), taps = g.taps();
#pragma omp parallel for schedule(static) if (g.work() > kParallelWork)
  for (std::int64_t r = 0; r < g.B * g.C; ++r) {
    const std::int64_t c = r % g.C;
    dw_plane(x + r * P, w + c * taps, bias ? bias[c] : T(0), g, y + r * P);
  }
}

Tensor dw_forward(const char* op, bool two_d, const Tensor& x, const Tensor& weight,
                  const Tensor& bias) {
  const DwGeometry g = dw_geometry(op, two_d, x, weight, bias);
  SSM_CUDA_DISPATCH(
      x, two_d ? cuda::dwconv2d_forward(x, weight, bias) : cuda::dwconv1d_forward(x, weight, bias));
  require_cpu(op, {&x, &weight, &bias});
  const Tensor xc = x.contiguous();                             // (B, C, [H,] W)
  const Tensor wc = weight.contiguous();                        // (C, kh kw)
  const Tensor bc = bias.defined() ? bias.contiguous() : bias;  // (C)
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());   // (B, C, [H,] W)
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    dw_planes<T>(xc.data<T>(), wc.data<T>(), bc.defined() ? bc.data<T>() : nullptr, g, y.data<T>());
  });
  return y;
}

// gx is the forward conv of g with the kernel flipped in both dims (the same
// padding fits, as the kernel sizes are odd):
//   gx[h, v] = sum_{p, q} w[p, q] g[h + ph - p, v + pw - q]
//            = sum_{p, q} w[kh-1-p, kw-1-q] g[h - ph + p, v - pw + q].
// gw[c, p, q] = sum_{b, i, j} g[b, c, i, j] x[b, c, i - ph + p, j - pw + q] and
// gb[c] = sum_{b, i, j} g[b, c, i, j], accumulated in double, one channel per
// thread, batch and positions in order.
DwConvGrads dw_backward(const char* op, bool two_d, const Tensor& grad, const Tensor& x,
                        const Tensor& weight, bool need_x, bool need_weight, bool need_bias) {
  const DwGeometry g = dw_geometry(op, two_d, x, weight, Tensor());
  SSM_CHECK(grad.defined() && grad.shape() == x.shape(), op, "gradient ",
            grad.defined() ? grad.desc() : std::string("undefined"), " does not match x ",
            x.desc());
  check_same_device(op, x, grad);
  check_same_dtype(op, x, grad);
  SSM_CUDA_DISPATCH(
      x, two_d ? cuda::dwconv2d_backward(grad, x, weight, need_x, need_weight, need_bias)
               : cuda::dwconv1d_backward(grad, x, weight, need_x, need_weight, need_bias));
  require_cpu(op, {&grad, &x, &weight});
  const Tensor gc = grad.contiguous();  // (B, C, [H,] W)
  DwConvGrads out;
  if (need_x) out.x = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (need_weight) out.weight = Tensor::empty(weight.shape(), x.dtype(), x.device());
  if (need_bias) out.bias = Tensor::empty({g.C}, x.dtype(), x.device());
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const std::int64_t P = g.plane(), taps = g.taps();
    const T* pg = gc.data<T>();
    if (need_x) {
      const Tensor wc = weight.contiguous();  // (C, kh kw)
      std::vector<T> flipped(static_cast<std::size_t>(g.C * taps));
      for (std::int64_t c = 0; c < g.C; ++c) {
        const T* wr = wc.data<T>() + c * taps;
        std::reverse_copy(wr, wr + taps, flipped.begin() + c * taps);
      }
      dw_planes<T>(pg, flipped.data(), nullptr, g, out.x.data<T>());
    }
    if (!need_weight && !need_bias) return;
    const Tensor xc = need_weight ? x.contiguous() : Tensor();  // (B, C, [H,] W)
    T* gw = need_weight ? out.weight.data<T>() : nullptr;
    T* gb = need_bias ? out.bias.data<T>() : nullptr;
#pragma omp parallel for schedule(static) if (g.work() > kParallelWork)
    for (std::int64_t c = 0; c < g.C; ++c) {
      std::vector<double> acc(static_cast<std::size_t>(need_weight ? taps : 0), 0.0);  // (kh kw)
      double acc_b = 0.0;
      for (std::int64_t b = 0; b < g.B; ++b) {
        const T* gp = pg + (b * g.C + c) * P;  // (H, W)
        if (need_bias) {
          for (std::int64_t k = 0; k < P; ++k) acc_b += static_cast<double>(gp[k]);
        }
        if (!need_weight) continue;
        const T* xp = xc.data<T>() + (b * g.C + c) * P;  // (H, W)
        for (std::int64_t i = 0; i < g.H; ++i) {
          const T* gr = gp + i * g.W;
          for (std::int64_t p = 0; p < g.kh; ++p) {
            const std::int64_t h = i - g.ph() + p;
            if (h < 0 || h >= g.H) continue;
            const T* xr = xp + h * g.W;
            for (std::int64_t q = 0; q < g.kw; ++q) {
              const std::int64_t off = q - g.pw();
              const ColRange jr = valid_cols(g.W, off);
              double s = 0.0;
              for (std::int64_t j = jr.lo; j < jr.hi; ++j) {
                s += static_cast<double>(gr[j]) * static_cast<double>(xr[j + off]);
              }
              acc[p * g.kw + q] += s;
            }
          }
        }
      }
      if (need_weight) {
        for (std::int64_t k = 0; k < taps; ++k) gw[c * taps + k] = static_cast<T>(acc[k]);
      }
      if (need_bias) gb[c] = static_cast<T>(acc_b);
    }
  });
  return out;
}

}  // namespace

// ---------------------------------------------------------------- dwconv1d

// y[b, c, t] = bias[c] + sum_{k<K} w[c, k] x[b, c, t - K/2 + k]: dw_plane with H = kh = 1.
Tensor dwconv1d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  return dw_forward("dwconv1d", false, x, weight, bias);
}

DwConvGrads dwconv1d_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                              bool need_x, bool need_weight, bool need_bias) {
  return dw_backward("dwconv1d", false, grad, x, weight, need_x, need_weight, need_bias);
}

// ---------------------------------------------------------------- dwconv2d

// y[b, c, i, j] = bias[c] + sum_{p, q} w[c, 0, p, q] x[b, c, i - kh/2 + p, j - kw/2 + q].
Tensor dwconv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  return dw_forward("dwconv2d", true, x, weight, bias);
}

DwConvGrads dwconv2d_backward(const Tensor& grad, const Tensor& x, const Tensor& weight,
                              bool need_x, bool need_weight, bool need_bias) {
  return dw_backward("dwconv2d", true, grad, x, weight, need_x, need_weight, need_bias);
}

}  // namespace ssm::kernels
