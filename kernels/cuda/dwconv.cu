// CUDA depthwise convolutions with "same" zero padding (odd kernels, padding
// k / 2), float32: the semantics, checks and messages of
// kernels/cpu/dwconv.cpp (the oracle). The 1-D conv is the 2-D one on planes
// of height 1 with a (1, K) kernel.
//
// Every output element (y, gx) is computed by one thread, taps in the CPU's
// order; x, weight, bias and grad are read through their strides (any view).
// Weight and bias gradients, without atomics: one block per plane (b, c)
// sums its products in double (thread i takes positions i, i + blockDim, ...,
// then block_sum adds the threads in a fixed tree), and a second pass adds
// the planes' partials over b in order, so the result is the same every run.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/dwconv.h"

namespace ssm::kernels::cuda {

namespace {

__device__ inline std::int64_t global_thread() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline std::int64_t grid_threads() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

// B C planes of H x W, each convolved with its own kh x kw kernel, padding
// (kh / 2, kw / 2). A 1-D conv has H = kh = 1.
struct DwGeometry {
  std::int64_t B = 0, C = 0, H = 1, W = 0;
  std::int64_t kh = 1, kw = 1;
};

// The CPU's dw_geometry, checks and messages included.
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

// A strided (B, C, H, W) view (a 1-D (B, C, L) one with H = 1, sh = 0).
struct Planes {
  const float* p = nullptr;
  std::int64_t sb = 0, sc = 0, sh = 0, sw = 0;
};
Planes planes(const Tensor& t, bool two_d) {
  const Shape& s = t.strides();
  return two_d ? Planes{t.data<float>(), s[0], s[1], s[2], s[3]}
               : Planes{t.data<float>(), s[0], s[1], 0, s[2]};
}

// The weight w[c, p, q] of (C, 1, kh, kw), (C, K) or (C, 1, K) (p = 0 in 1-D).
struct Taps {
  const float* p = nullptr;
  std::int64_t sc = 0, sp = 0, sq = 0;
};
Taps taps(const Tensor& w, bool two_d) {
  const Shape& s = w.strides();
  return two_d ? Taps{w.data<float>(), s[0], s[2], s[3]}
               : Taps{w.data<float>(), s[0], 0, s[static_cast<std::size_t>(w.dim() - 1)]};
}

// y[b, c, i, j] = bias[c] + sum_{p, q} w[c, p, q] x[b, c, i - ph + p, j - pw + q]
// (x = 0 outside), p then q ascending as on the CPU. With `flip` the taps are
// w[c, kh-1-p, kw-1-q]: the conv of the gradient that gives gx. bias null: 0.
// y contiguous (B, C, H, W); total = B C H W.
__global__ void dw_kernel(Planes x, Taps w, bool flip, const float* bias, std::int64_t bs,
                          DwGeometry g, float* y, std::int64_t total) {
  const std::int64_t ph = g.kh / 2, pw = g.kw / 2;
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    std::int64_t r = t;
    const std::int64_t j = r % g.W;
    r /= g.W;
    const std::int64_t i = r % g.H;
    r /= g.H;
    const std::int64_t c = r % g.C, b = r / g.C;
    const float* xp = x.p + b * x.sb + c * x.sc;
    const float* wc = w.p + c * w.sc;
    float acc = bias ? bias[c * bs] : 0.0f;
    for (std::int64_t p = 0; p < g.kh; ++p) {
      const std::int64_t h = i - ph + p;
      if (h < 0 || h >= g.H) continue;
      const std::int64_t wp = flip ? g.kh - 1 - p : p;
      for (std::int64_t q = 0; q < g.kw; ++q) {
        const std::int64_t v = j - pw + q;
        if (v < 0 || v >= g.W) continue;
        const std::int64_t wq = flip ? g.kw - 1 - q : q;
        acc += wc[wp * w.sp + wq * w.sq] * xp[h * x.sh + v * x.sw];
      }
    }
    y[t] = acc;
  }
}

// Per plane r = (b, c), one block:
//   part_w[r, p kw + q] = sum_{i, j} g[b, c, i, j] x[b, c, i - ph + p, j - pw + q]  (inside),
//   part_b[r] = sum_{i, j} g[b, c, i, j],
// in double, block_sum per tap. part_w / part_b null: not wanted.
__global__ void dw_param_partials_kernel(Planes gr, Planes x, DwGeometry g, double* part_w,
                                         double* part_b) {
  __shared__ double shared[32];
  const std::int64_t ph = g.kh / 2, pw = g.kw / 2, P = g.H * g.W, nplanes = g.B * g.C;
  for (std::int64_t r = blockIdx.x; r < nplanes; r += gridDim.x) {
    const std::int64_t b = r / g.C, c = r % g.C;
    const float* gp = gr.p + b * gr.sb + c * gr.sc;
    const float* xp = x.p + b * x.sb + c * x.sc;
    if (part_w) {
      for (std::int64_t p = 0; p < g.kh; ++p) {
        for (std::int64_t q = 0; q < g.kw; ++q) {
          double acc = 0.0;
          for (std::int64_t e = threadIdx.x; e < P; e += blockDim.x) {
            const std::int64_t i = e / g.W, j = e % g.W;
            const std::int64_t h = i - ph + p, v = j - pw + q;
            if (h < 0 || h >= g.H || v < 0 || v >= g.W) continue;
            acc += static_cast<double>(gp[i * gr.sh + j * gr.sw]) *
                   static_cast<double>(xp[h * x.sh + v * x.sw]);
          }
          acc = block_sum(acc, shared);
          if (threadIdx.x == 0) part_w[r * g.kh * g.kw + p * g.kw + q] = acc;
        }
      }
    }
    if (part_b) {
      double acc = 0.0;
      for (std::int64_t e = threadIdx.x; e < P; e += blockDim.x) {
        acc += static_cast<double>(gp[(e / g.W) * gr.sh + (e % g.W) * gr.sw]);
      }
      acc = block_sum(acc, shared);
      if (threadIdx.x == 0) part_b[r] = acc;
    }
  }
}

// out[c, k] = sum_{b<B} part[(b C + c) width + k], b ascending, in double then
// rounded (the ordered second pass).
__global__ void batch_reduce_kernel(const double* part, float* out, std::int64_t B, std::int64_t C,
                                    std::int64_t width) {
  const std::int64_t total = C * width;
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    double acc = 0.0;
    for (std::int64_t b = 0; b < B; ++b) acc += part[b * total + t];
    out[t] = static_cast<float>(acc);
  }
}

Tensor dw_forward(const char* op, bool two_d, const Tensor& x, const Tensor& weight,
                  const Tensor& bias) {
  const DwGeometry g = dw_geometry(op, two_d, x, weight, bias);
  require_cuda_float32(op, {&x, &weight, &bias});
  Tensor y = Tensor::empty(x.shape(), DType::Float32, x.device());  // (B, C, [H,] W)
  const std::int64_t total = y.numel();
  if (total == 0) return y;
  dw_kernel<<<blocks_for(total), kThreads>>>(
      planes(x, two_d), taps(weight, two_d), false, bias.defined() ? bias.data<float>() : nullptr,
      bias.defined() ? bias.strides()[0] : 0, g, y.data<float>(), total);
  SSM_CUDA_CHECK_LAUNCH();
  return y;
}

// gx[h, v] = sum_{p, q} w[kh-1-p, kw-1-q] g[h - ph + p, v - pw + q] (the
// forward kernel on g with the taps flipped); gw and gb by plane partials
// and an ordered pass over the batch.
DwConvGrads dw_backward(const char* op, bool two_d, const Tensor& grad, const Tensor& x,
                        const Tensor& weight, bool need_x, bool need_weight, bool need_bias) {
  const DwGeometry g = dw_geometry(op, two_d, x, weight, Tensor());
  SSM_CHECK(grad.defined() && grad.shape() == x.shape(), op, "gradient ",
            grad.defined() ? grad.desc() : std::string("undefined"), " does not match x ",
            x.desc());
  check_same_device(op, x, grad);
  check_same_dtype(op, x, grad);
  require_cuda_float32(op, {&grad, &x, &weight});
  const Device dev = x.device();
  const std::int64_t total = x.numel(), planes_n = g.B * g.C, ntaps = g.kh * g.kw;
  DwConvGrads out;
  if (need_x) {
    out.x = Tensor::empty(x.shape(), DType::Float32, dev);
    if (total > 0) {
      dw_kernel<<<blocks_for(total), kThreads>>>(planes(grad, two_d), taps(weight, two_d), true,
                                                 nullptr, 0, g, out.x.data<float>(), total);
      SSM_CUDA_CHECK_LAUNCH();
    }
  }
  if (!need_weight && !need_bias) return out;
  if (need_weight) out.weight = Tensor::empty(weight.shape(), DType::Float32, dev);
  if (need_bias) out.bias = Tensor::empty({g.C}, DType::Float32, dev);
  Tensor part_w = need_weight ? Tensor::empty({planes_n * ntaps}, DType::Float64, dev) : Tensor();
  Tensor part_b = need_bias ? Tensor::empty({planes_n}, DType::Float64, dev) : Tensor();
  if (planes_n > 0) {
    const auto blocks = static_cast<unsigned>(std::min<std::int64_t>(planes_n, 65535 * 8));
    dw_param_partials_kernel<<<blocks, kThreads>>>(planes(grad, two_d), planes(x, two_d), g,
                                                   need_weight ? part_w.data<double>() : nullptr,
                                                   need_bias ? part_b.data<double>() : nullptr);
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (need_weight && g.C * ntaps > 0) {
    batch_reduce_kernel<<<blocks_for(g.C * ntaps), kThreads>>>(
        planes_n > 0 ? part_w.data<double>() : nullptr, out.weight.data<float>(), g.B, g.C, ntaps);
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (need_bias && g.C > 0) {
    batch_reduce_kernel<<<blocks_for(g.C), kThreads>>>(
        planes_n > 0 ? part_b.data<double>() : nullptr, out.bias.data<float>(), g.B, g.C, 1);
    SSM_CUDA_CHECK_LAUNCH();
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------- dwconv1d

// y[b, c, t] = bias[c] + sum_{k<K} w[c, k] x[b, c, t - K/2 + k]: dw_kernel with H = kh = 1.
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

}  // namespace ssm::kernels::cuda
