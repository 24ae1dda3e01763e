// CUDA softmax and log-softmax along one dim, forward and backward.
//
// The input is made contiguous (a strided gather kernel for views) and seen
// as (outer, C, inner) around the dim, as on the CPU (kernels/cpu/softmax.cpp):
//   inner == 1 (the dim is last): a row of C contiguous classes per warp
//     (C <= kWarpMaxClasses) or per block of kThreads (longer rows); each
//     lane keeps its partial max / sum in registers, combined by warp shuffles
//     (warp_max / warp_sum) or block_max / block_sum. The lanes stride the row,
//     so loads are coalesced.
//   inner > 1: one thread per position (o, i) walks the C classes, stride
//     inner apart; neighbouring threads read neighbouring positions, so loads
//     are coalesced as well.
// Every reduction runs in a fixed order (no atomics): results are the same
// bits on every run. Every exp takes a max-subtracted argument (<= 0).
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/softmax.h"

namespace ssm::kernels::cuda {

namespace {

// Rows of at most this many classes get one warp, longer rows one block.
constexpr std::int64_t kWarpMaxClasses = 1024;
constexpr int kWarpsPerBlock = kThreads / 32;

// (outer, C, inner) around dim; a 0-d tensor is one class.
struct Layout {
  std::int64_t outer = 1, classes = 1, inner = 1;
};
Layout layout_of(const Shape& shape, std::int64_t dim) {
  Layout l;
  if (shape.empty()) return l;
  for (std::int64_t d = 0; d < dim; ++d) l.outer *= shape[d];
  l.classes = shape[dim];
  for (std::size_t d = static_cast<std::size_t>(dim) + 1; d < shape.size(); ++d) {
    l.inner *= shape[d];
  }
  return l;
}

// ---------------------------------------------------------------- forward

// softmax:     y_c = exp(x_c - m) * (1 / s)
// log_softmax: y_c = (x_c - m) - log s
// with m = max_c x_c (NaN skipped, as fmaxf does) and s = sum_c exp(x_c - m).
template <bool Log, bool PerBlock>
__global__ void softmax_forward_rows(const float* __restrict__ x, float* __restrict__ y,
                                     std::int64_t rows, std::int64_t classes) {
  __shared__ float shared[32];
  const RowGroup<PerBlock> g;
  for (std::int64_t r = g.first; r < rows; r += g.step) {
    const float* xr = x + r * classes;
    float* yr = y + r * classes;
    float m = -INFINITY;
    for (std::int64_t c = g.lane; c < classes; c += g.width) m = fmaxf(m, xr[c]);
    m = g.max(m, shared);
    float s = 0.0f;
    for (std::int64_t c = g.lane; c < classes; c += g.width) s += expf(xr[c] - m);
    s = g.sum(s, shared);
    if constexpr (Log) {
      const float log_s = logf(s);
      for (std::int64_t c = g.lane; c < classes; c += g.width) yr[c] = (xr[c] - m) - log_s;
    } else {
      const float inv = 1.0f / s;
      for (std::int64_t c = g.lane; c < classes; c += g.width) yr[c] = expf(xr[c] - m) * inv;
    }
  }
}

// The same with one thread per position (o, i): class c at (o C + c) inner + i.
template <bool Log>
__global__ void softmax_forward_slab(const float* __restrict__ x, float* __restrict__ y,
                                     std::int64_t outer, std::int64_t classes, std::int64_t inner) {
  const std::int64_t n = outer * inner;
  for (std::int64_t p = thread_index(); p < n; p += thread_count()) {
    const std::int64_t o = p / inner, i = p - o * inner;
    const float* xp = x + o * classes * inner + i;
    float* yp = y + o * classes * inner + i;
    float m = -INFINITY;
    for (std::int64_t c = 0; c < classes; ++c) m = fmaxf(m, xp[c * inner]);
    float s = 0.0f;
    for (std::int64_t c = 0; c < classes; ++c) s += expf(xp[c * inner] - m);
    if constexpr (Log) {
      const float log_s = logf(s);
      for (std::int64_t c = 0; c < classes; ++c) yp[c * inner] = (xp[c * inner] - m) - log_s;
    } else {
      const float inv = 1.0f / s;
      for (std::int64_t c = 0; c < classes; ++c) yp[c * inner] = expf(xp[c * inner] - m) * inv;
    }
  }
}

template <bool Log>
Tensor forward_impl(const char* op, const Tensor& x_in, std::int64_t dim_in) {
  require_cuda_float32(op, {&x_in});
  const std::int64_t dim = wrap_dim(dim_in, x_in.dim(), op);
  const Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), DType::Float32, x.device());
  if (x.numel() == 0) return y;
  const Layout l = layout_of(x.shape(), dim);
  const float* px = x.data<float>();  // (outer, C, inner)
  float* py = y.data<float>();        // (outer, C, inner)
  if (l.inner > 1) {
    softmax_forward_slab<Log>
        <<<blocks_for(l.outer * l.inner), kThreads>>>(px, py, l.outer, l.classes, l.inner);
  } else if (l.classes <= kWarpMaxClasses) {
    softmax_forward_rows<Log, false>
        <<<blocks_for(l.outer, kWarpsPerBlock), kThreads>>>(px, py, l.outer, l.classes);
  } else {
    softmax_forward_rows<Log, true>
        <<<blocks_for(l.outer, 1), kThreads>>>(px, py, l.outer, l.classes);
  }
  SSM_CUDA_CHECK_LAUNCH();
  return y;
}

// ---------------------------------------------------------------- backward

// softmax:     gx_c = y_c (g_c - sum_k g_k y_k)
// log_softmax: gx_c = g_c - exp(y_c) sum_k g_k
template <bool Log, bool PerBlock>
__global__ void softmax_backward_rows(const float* __restrict__ g, const float* __restrict__ y,
                                      float* __restrict__ gx, std::int64_t rows,
                                      std::int64_t classes) {
  __shared__ float shared[32];
  const RowGroup<PerBlock> grp;
  for (std::int64_t r = grp.first; r < rows; r += grp.step) {
    const float* gr = g + r * classes;
    const float* yr = y + r * classes;
    float* gxr = gx + r * classes;
    float dot = 0.0f;
    for (std::int64_t c = grp.lane; c < classes; c += grp.width) dot += Log ? gr[c] : gr[c] * yr[c];
    dot = grp.sum(dot, shared);
    for (std::int64_t c = grp.lane; c < classes; c += grp.width) {
      gxr[c] = Log ? gr[c] - expf(yr[c]) * dot : yr[c] * (gr[c] - dot);
    }
  }
}

template <bool Log>
__global__ void softmax_backward_slab(const float* __restrict__ g, const float* __restrict__ y,
                                      float* __restrict__ gx, std::int64_t outer,
                                      std::int64_t classes, std::int64_t inner) {
  const std::int64_t n = outer * inner;
  for (std::int64_t p = thread_index(); p < n; p += thread_count()) {
    const std::int64_t o = p / inner, i = p - o * inner;
    const std::int64_t at = o * classes * inner + i;
    float dot = 0.0f;
    for (std::int64_t c = 0; c < classes; ++c) {
      const std::int64_t k = at + c * inner;
      dot += Log ? g[k] : g[k] * y[k];
    }
    for (std::int64_t c = 0; c < classes; ++c) {
      const std::int64_t k = at + c * inner;
      gx[k] = Log ? g[k] - expf(y[k]) * dot : y[k] * (g[k] - dot);
    }
  }
}

template <bool Log>
Tensor backward_impl(const char* op, const Tensor& grad, const Tensor& y_in, std::int64_t dim_in) {
  require_cuda_float32(op, {&grad, &y_in});
  SSM_CHECK(grad.shape() == y_in.shape() && grad.dtype() == y_in.dtype(), op, "gradient ",
            grad.desc(), " does not match the output ", y_in.desc());
  const std::int64_t dim = wrap_dim(dim_in, y_in.dim(), op);
  const Tensor g = grad.contiguous(), y = y_in.contiguous();
  Tensor gx = Tensor::empty(y.shape(), DType::Float32, y.device());
  if (y.numel() == 0) return gx;
  const Layout l = layout_of(y.shape(), dim);
  const float* pg = g.data<float>();  // (outer, C, inner)
  const float* py = y.data<float>();  // (outer, C, inner)
  float* pgx = gx.data<float>();      // (outer, C, inner)
  if (l.inner > 1) {
    softmax_backward_slab<Log>
        <<<blocks_for(l.outer * l.inner), kThreads>>>(pg, py, pgx, l.outer, l.classes, l.inner);
  } else if (l.classes <= kWarpMaxClasses) {
    softmax_backward_rows<Log, false>
        <<<blocks_for(l.outer, kWarpsPerBlock), kThreads>>>(pg, py, pgx, l.outer, l.classes);
  } else {
    softmax_backward_rows<Log, true>
        <<<blocks_for(l.outer, 1), kThreads>>>(pg, py, pgx, l.outer, l.classes);
  }
  SSM_CUDA_CHECK_LAUNCH();
  return gx;
}

}  // namespace

Tensor softmax_forward(const Tensor& x, std::int64_t dim) {
  return forward_impl<false>("softmax", x, dim);
}

Tensor softmax_backward(const Tensor& grad, const Tensor& y, std::int64_t dim) {
  return backward_impl<false>("softmax", grad, y, dim);
}

Tensor log_softmax_forward(const Tensor& x, std::int64_t dim) {
  return forward_impl<true>("log_softmax", x, dim);
}

Tensor log_softmax_backward(const Tensor& grad, const Tensor& y, std::int64_t dim) {
  return backward_impl<true>("log_softmax", grad, y, dim);
}

}  // namespace ssm::kernels::cuda
