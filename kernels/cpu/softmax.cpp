// CPU softmax and log-softmax along one dim, forward and backward.
//
// The input is made contiguous and seen as (outer, C, inner) around the dim,
// then walked in independent tasks (rows, tiles of short rows, or slabs of
// positions when the dim is not last; see detail::Walk in kernels/softmax.h),
// split over OpenMP threads. Each kernel has a row form, whose loops run over
// the C classes of one contiguous row, and a slab form, whose loops run over
// w positions at a time with classes `stride` apart.
//
// Every exp takes a max-subtracted argument (<= 0), so nothing overflows and
// exp_nonpositive vectorizes it.
// Gradient rule: activation gradients are written (=), never accumulated.
#include "kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/cuda/softmax.h"

namespace ssm::kernels {

namespace detail {

ClassLayout class_layout(const Shape& shape, std::int64_t dim) {
  ClassLayout l;
  if (shape.empty()) return l;  // a 0-d tensor: one class
  for (std::int64_t d = 0; d < dim; ++d) l.outer *= shape[d];
  l.classes = shape[dim];
  for (std::size_t d = static_cast<std::size_t>(dim) + 1; d < shape.size(); ++d) {
    l.inner *= shape[d];
  }
  return l;
}

}  // namespace detail

namespace {

using namespace detail;

// ---------------------------------------------------------------- forward

// softmax:     y_c = exp(x_c - m) / s
// log_softmax: y_c = (x_c - m) - log s
// with m = max_c x_c and s = sum_c exp(x_c - m) (the stable form; (x - m) -
// log s rather than x - (m + log s) keeps y exact near the max).
template <class T, bool Log>
SSM_SIMD_CLONES void softmax_forward_row(const T* x, T* y, std::int64_t classes) {
  const T m = row_max(x, classes);
  if constexpr (Log) {
    const T log_s = std::log(row_sum_exp(x, classes, m));
#pragma omp simd
    for (std::int64_t c = 0; c < classes; ++c) y[c] = (x[c] - m) - log_s;
  } else {
    T s = T(0);
#pragma omp simd reduction(+ : s)
    for (std::int64_t c = 0; c < classes; ++c) {
      y[c] = exp_nonpositive(x[c] - m);
      s += y[c];
    }
    const T inv = T(1) / s;
#pragma omp simd
    for (std::int64_t c = 0; c < classes; ++c) y[c] *= inv;
  }
}

// The same for w positions: class c of position i is at c * stride + i.
template <class T, bool Log>
SSM_SIMD_CLONES void softmax_forward_slab(const T* x, T* y, std::int64_t classes,
                                          std::int64_t stride, std::int64_t w) {
  T m[kBlock], s[kBlock];
  for (std::int64_t i = 0; i < w; ++i) {
    m[i] = -std::numeric_limits<T>::infinity();
    s[i] = T(0);
  }
  for (std::int64_t c = 0; c < classes; ++c) {
    const T* xc = x + c * stride;
#pragma omp simd
    for (std::int64_t i = 0; i < w; ++i) m[i] = xc[i] > m[i] ? xc[i] : m[i];
  }
  if constexpr (Log) {
    for (std::int64_t c = 0; c < classes; ++c) {
      const T* xc = x + c * stride;
#pragma omp simd
      for (std::int64_t i = 0; i < w; ++i) s[i] += exp_nonpositive(xc[i] - m[i]);
    }
    for (std::int64_t i = 0; i < w; ++i) s[i] = std::log(s[i]);
    for (std::int64_t c = 0; c < classes; ++c) {
      const T* xc = x + c * stride;
      T* yc = y + c * stride;
#pragma omp simd
      for (std::int64_t i = 0; i < w; ++i) yc[i] = (xc[i] - m[i]) - s[i];
    }
  } else {
    for (std::int64_t c = 0; c < classes; ++c) {
      const T* xc = x + c * stride;
      T* yc = y + c * stride;
#pragma omp simd
      for (std::int64_t i = 0; i < w; ++i) {
        yc[i] = exp_nonpositive(xc[i] - m[i]);
        s[i] += yc[i];
      }
    }
    for (std::int64_t i = 0; i < w; ++i) s[i] = T(1) / s[i];
    for (std::int64_t c = 0; c < classes; ++c) {
      T* yc = y + c * stride;
#pragma omp simd
      for (std::int64_t i = 0; i < w; ++i) yc[i] *= s[i];
    }
  }
}

template <bool Log>
Tensor softmax_forward_impl(const char* op, const Tensor& x_in, std::int64_t dim_in) {
  require_cpu(op, {&x_in});
  const std::int64_t dim = wrap_dim(dim_in, x_in.dim(), op);
  const Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  const ClassLayout l = class_layout(x.shape(), dim);
  const Walk walk = walk_of(l);
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();  // (outer, C, inner)
    T* py = y.data<T>();        // (outer, C, inner)
    const std::int64_t C = l.classes;
    parallel_tasks(l, walk, [&](const Task& t) {
      if (walk == Walk::Rows) {
        softmax_forward_row<T, Log>(px + t.outer * C, py + t.outer * C, C);
      } else if (walk == Walk::Tiles) {
        T* xt = scratch_tile<T>(0);  // (C, kBlock)
        T* yt = scratch_tile<T>(1);  // (C, kBlock)
        load_tile(px + t.outer * C, C, t.width, xt);
        softmax_forward_slab<T, Log>(xt, yt, C, kBlock, t.width);
        store_tile(yt, C, t.width, py + t.outer * C);
      } else {
        const std::int64_t at = t.outer * C * l.inner + t.i0;
        softmax_forward_slab<T, Log>(px + at, py + at, C, l.inner, t.width);
      }
    });
  });
  return y;
}

// ---------------------------------------------------------------- backward

// softmax:     gx_c = y_c (g_c - sum_k g_k y_k)
// log_softmax: gx_c = g_c - exp(y_c) sum_k g_k
template <class T, bool Log>
SSM_SIMD_CLONES void softmax_backward_row(const T* g, const T* y, T* gx, std::int64_t classes) {
  T dot = T(0);
  if constexpr (Log) {
#pragma omp simd reduction(+ : dot)
    for (std::int64_t c = 0; c < classes; ++c) dot += g[c];
#pragma omp simd
    for (std::int64_t c = 0; c < classes; ++c) gx[c] = g[c] - exp_nonpositive(y[c]) * dot;
  } else {
#pragma omp simd reduction(+ : dot)
    for (std::int64_t c = 0; c < classes; ++c) dot += g[c] * y[c];
#pragma omp simd
    for (std::int64_t c = 0; c < classes; ++c) gx[c] = y[c] * (g[c] - dot);
  }
}

template <class T, bool Log>
SSM_SIMD_CLONES void softmax_backward_slab(const T* g, const T* y, T* gx, std::int64_t classes,
                                           std::int64_t stride, std::int64_t w) {
  T dot[kBlock];
  for (std::int64_t i = 0; i < w; ++i) dot[i] = T(0);
  for (std::int64_t c = 0; c < classes; ++c) {
    const T* gc = g + c * stride;
    const T* yc = y + c * stride;
#pragma omp simd
    for (std::int64_t i = 0; i < w; ++i) dot[i] += Log ? gc[i] : gc[i] * yc[i];
  }
  for (std::int64_t c = 0; c < classes; ++c) {
    const T* gc = g + c * stride;
    const T* yc = y + c * stride;
    T* gxc = gx + c * stride;
    if constexpr (Log) {
#pragma omp simd
      for (std::int64_t i = 0; i < w; ++i) gxc[i] = gc[i] - exp_nonpositive(yc[i]) * dot[i];
    } else {
#pragma omp simd
      for (std::int64_t i = 0; i < w; ++i) gxc[i] = yc[i] * (gc[i] - dot[i]);
    }
  }
}

template <bool Log>
Tensor softmax_backward_impl(const char* op, const Tensor& grad, const Tensor& y_in,
                             std::int64_t dim_in) {
  require_cpu(op, {&grad, &y_in});
  SSM_CHECK(grad.shape() == y_in.shape() && grad.dtype() == y_in.dtype(), op, "gradient ",
            grad.desc(), " does not match the output ", y_in.desc());
  const std::int64_t dim = wrap_dim(dim_in, y_in.dim(), op);
  const Tensor g = grad.contiguous(), y = y_in.contiguous();
  Tensor gx = Tensor::empty(y.shape(), y.dtype(), y.device());
  const ClassLayout l = class_layout(y.shape(), dim);
  const Walk walk = walk_of(l);
  dispatch_float(y.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pg = g.data<T>();  // (outer, C, inner)
    const T* py = y.data<T>();  // (outer, C, inner)
    T* pgx = gx.data<T>();      // (outer, C, inner)
    const std::int64_t C = l.classes;
    parallel_tasks(l, walk, [&](const Task& t) {
      if (walk == Walk::Rows) {
        const std::int64_t at = t.outer * C;
        softmax_backward_row<T, Log>(pg + at, py + at, pgx + at, C);
      } else if (walk == Walk::Tiles) {
        T* gt = scratch_tile<T>(0);   // (C, kBlock)
        T* yt = scratch_tile<T>(1);   // (C, kBlock)
        T* gxt = scratch_tile<T>(2);  // (C, kBlock)
        load_tile(pg + t.outer * C, C, t.width, gt);
        load_tile(py + t.outer * C, C, t.width, yt);
        softmax_backward_slab<T, Log>(gt, yt, gxt, C, kBlock, t.width);
        store_tile(gxt, C, t.width, pgx + t.outer * C);
      } else {
        const std::int64_t at = t.outer * C * l.inner + t.i0;
        softmax_backward_slab<T, Log>(pg + at, py + at, pgx + at, C, l.inner, t.width);
      }
    });
  });
  return gx;
}

}  // namespace

Tensor softmax_forward(const Tensor& x, std::int64_t dim) {
  SSM_CUDA_DISPATCH(x, cuda::softmax_forward(x, dim));
  return softmax_forward_impl<false>("softmax", x, dim);
}

Tensor softmax_backward(const Tensor& grad, const Tensor& y, std::int64_t dim) {
  SSM_CUDA_DISPATCH(y, cuda::softmax_backward(grad, y, dim));
  return softmax_backward_impl<false>("softmax", grad, y, dim);
}

Tensor log_softmax_forward(const Tensor& x, std::int64_t dim) {
  SSM_CUDA_DISPATCH(x, cuda::log_softmax_forward(x, dim));
  return softmax_forward_impl<true>("log_softmax", x, dim);
}

Tensor log_softmax_backward(const Tensor& grad, const Tensor& y, std::int64_t dim) {
  SSM_CUDA_DISPATCH(y, cuda::log_softmax_backward(grad, y, dim));
  return softmax_backward_impl<true>("log_softmax", grad, y, dim);
}

}  // namespace ssm::kernels
