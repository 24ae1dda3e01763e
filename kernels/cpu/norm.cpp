// CPU normalization kernels: layer norm, RMS norm, batch norm.
//
// Gradient rule: every gradient these kernels return is written (=), never
// accumulated; the tape accumulates into .grad.
//
// Statistics use the shifted-data formulas, accumulated in double:
//   k = one element of the set, s1 = sum (x - k), s2 = sum (x - k)^2,
//   mean = k + s1 / n, var = s2 / n - (s1 / n)^2.
// This is one pass over the data. Because k is a sample of the set,
// (mean - k)^2 <= (n - 1) var (Samuelson's inequality), so the cancellation in
// the last subtraction costs at most log2(n) of double's 53 bits.
#include "kernels/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/cuda/norm.h"

namespace ssm::kernels {

namespace {

// Below this many elements the kernels run on one thread.
constexpr std::int64_t kParallelMin = 32768;

// Adds the shifted moments of the contiguous span x[0, n) to s1 and s2.
template <class T>
inline void add_shifted_moments(const T* x, std::int64_t n, double k, double& s1, double& s2) {
  double a1 = 0.0, a2 = 0.0;
#pragma omp simd reduction(+ : a1, a2)
  for (std::int64_t j = 0; j < n; ++j) {
    const double d = static_cast<double>(x[j]) - k;
    a1 += d;
    a2 += d * d;
  }
  s1 += a1;
  s2 += a2;
}

struct Moments {
  double mean = 0.0;
  double var = 0.0;  // biased
};

Moments finish_moments(double k, double s1, double s2, std::int64_t count) {
  if (count == 0) return {};
  const double inv = 1.0 / static_cast<double>(count);
  const double m1 = s1 * inv;
  return {k + m1, std::max(0.0, s2 * inv - m1 * m1)};
}

// The number of row chunks over which weight / bias gradients are summed:
// each chunk keeps its own partial sums (N doubles), and the chunks are
// combined in order. It depends on the problem size only, never on the thread
// count, so the gradients are the same bits on any machine.
std::int64_t row_chunks(std::int64_t rows, std::int64_t n) {
  constexpr std::int64_t kMaxChunks = 64;
  constexpr std::int64_t kPartialBudget = std::int64_t{1} << 20;  // doubles per partial buffer
  std::int64_t c = std::min(rows, kMaxChunks);
  c = std::min(c, kPartialBudget / std::max<std::int64_t>(n, 1));
  return std::max<std::int64_t>(c, 1);
}

// out[j] = sum_c partial[c * n + j], c in order.
template <class T>
void combine_chunks(const std::vector<double>& partial, std::int64_t chunks, std::int64_t n,
                    T* out) {
#pragma omp parallel for schedule(static) if (n * chunks > kParallelMin)
  for (std::int64_t j = 0; j < n; ++j) {
    double s = 0.0;
    for (std::int64_t c = 0; c < chunks; ++c) s += partial[c * n + j];
    out[j] = static_cast<T>(s);
  }
}

// Rows view of layer / RMS norm: x (M, N) with N the trailing numel.
struct RowsShape {
  Shape stat_shape;   // x.shape()[:-normalized_dims]: one statistic per row
  Shape param_shape;  // x.shape()[-normalized_dims:]: weight / bias shape
  std::int64_t rows = 0, n = 0;
};

RowsShape rows_shape(const Shape& x_shape, std::int64_t stat_dims) {
  RowsShape r;
  r.stat_shape.assign(x_shape.begin(), x_shape.begin() + stat_dims);
  r.param_shape.assign(x_shape.begin() + stat_dims, x_shape.end());
  r.rows = shape_numel(r.stat_shape);
  r.n = shape_numel(r.param_shape);
  return r;
}

Tensor contiguous_or_undefined(const Tensor& t) { return t.defined() ? t.contiguous() : Tensor(); }

template <class T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

// ================================================================ layer norm
//
// Ba, Kiros & Hinton 2016, "Layer Normalization"; PyTorch F.layer_norm
// semantics (biased variance, eps inside the square root):
//   mean = sum_j x_j / N,  var = sum_j (x_j - mean)^2 / N,  rstd = 1 / sqrt(var + eps)
//   xhat_j = (x_j - mean) rstd,  y_j = xhat_j w_j + b_j
NormForward layer_norm_forward(const Tensor& x_in, std::int64_t normalized_dims,
                               const Tensor& weight, const Tensor& bias, double eps) {
  SSM_CUDA_DISPATCH(x_in, cuda::layer_norm_forward(x_in, normalized_dims, weight, bias, eps));
  require_cpu("layer_norm", {&x_in, &weight, &bias});
  const Tensor x = x_in.contiguous();
  const RowsShape rs = rows_shape(x.shape(), x.dim() - normalized_dims);
  const std::int64_t M = rs.rows, N = rs.n;
  NormForward out{Tensor::empty(x.shape(), x.dtype()), Tensor::empty(rs.stat_shape, x.dtype()),
                  Tensor::empty(rs.stat_shape, x.dtype())};
  const Tensor w = contiguous_or_undefined(weight), b = contiguous_or_undefined(bias);
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();         // (M, N)
    const T* pw = data_or_null<T>(w);  // (N) or null
    const T* pb = data_or_null<T>(b);  // (N) or null
    T* py = out.y.data<T>();           // (M, N)
    T* pmean = out.mean.data<T>();     // (M)
    T* prstd = out.rstd.data<T>();     // (M)
#pragma omp parallel for schedule(static) if (M * N > kParallelMin && M > 1)
    for (std::int64_t i = 0; i < M; ++i) {
      const T* xr = px + i * N;
      T* yr = py + i * N;
      // Pass 1: the row's moments.
      const double k = N > 0 ? static_cast<double>(xr[0]) : 0.0;
      double s1 = 0.0, s2 = 0.0;
      add_shifted_moments(xr, N, k, s1, s2);
      const Moments m = finish_moments(k, s1, s2, N);
      const T mean = static_cast<T>(m.mean);
      const T rstd = static_cast<T>(1.0 / std::sqrt(m.var + eps));
      pmean[i] = mean;
      prstd[i] = rstd;
      // Pass 2: normalize and apply the affine map.
      if (pw && pb) {
        for (std::int64_t j = 0; j < N; ++j) yr[j] = (xr[j] - mean) * rstd * pw[j] + pb[j];
      } else if (pw) {
        for (std::int64_t j = 0; j < N; ++j) yr[j] = (xr[j] - mean) * rstd * pw[j];
      } else if (pb) {
        for (std::int64_t j = 0; j < N; ++j) yr[j] = (xr[j] - mean) * rstd + pb[j];
      } else {
        for (std::int64_t j = 0; j < N; ++j) yr[j] = (xr[j] - mean) * rstd;
      }
    }
  });
  return out;
}

// With gy_j = g_j w_j (w = 1 when absent):
//   gx_j = rstd (gy_j - mean_k(gy_k) - xhat_j mean_k(gy_k xhat_k))
//   gw_j = sum_rows g_j xhat_j,  gb_j = sum_rows g_j
// Per row: pass 1 sums gy and gy xhat, pass 2 writes gx and adds the row into
// its chunk's weight / bias partial sums.
NormGrads layer_norm_backward(const Tensor& grad, const Tensor& x_in, const Tensor& mean_in,
                              const Tensor& rstd_in, const Tensor& weight, bool need_x,
                              bool need_weight, bool need_bias) {
  SSM_CUDA_DISPATCH(x_in, cuda::layer_norm_backward(grad, x_in, mean_in, rstd_in, weight, need_x,
                                                    need_weight, need_bias));
  require_cpu("layer_norm_backward", {&grad, &x_in, &mean_in, &rstd_in, &weight});
  SSM_CHECK(!need_weight || weight.defined(), "layer_norm_backward",
            "a weight gradient was asked for without a weight");
  const Tensor x = x_in.contiguous(), g = grad.contiguous();
  const Tensor mean = mean_in.contiguous(), rstd = rstd_in.contiguous();
  const Tensor w = contiguous_or_undefined(weight);
  const RowsShape rs = rows_shape(x.shape(), mean.dim());
  const std::int64_t M = rs.rows, N = rs.n;
  NormGrads out;
  if (need_x) out.gx = Tensor::empty(x.shape(), x.dtype());
  if (need_weight) out.gweight = Tensor::empty(rs.param_shape, x.dtype());
  if (need_bias) out.gbias = Tensor::empty(rs.param_shape, x.dtype());
  const std::int64_t chunks = row_chunks(M, N);
  std::vector<double> part_w(need_weight ? chunks * N : 0, 0.0);
  std::vector<double> part_b(need_bias ? chunks * N : 0, 0.0);
  dispatch_float(x.dtype(), "layer_norm_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();                     // (M, N)
    const T* pg = g.data<T>();                     // (M, N)
    const T* pmean = mean.data<T>();               // (M)
    const T* prstd = rstd.data<T>();               // (M)
    const T* pw = data_or_null<T>(w);              // (N) or null
    T* pgx = need_x ? out.gx.data<T>() : nullptr;  // (M, N)
    const double inv_n = N > 0 ? 1.0 / static_cast<double>(N) : 0.0;
#pragma omp parallel for schedule(static) if (M * N > kParallelMin && chunks > 1)
    for (std::int64_t c = 0; c < chunks; ++c) {
      double* qw = need_weight ? part_w.data() + c * N : nullptr;  // (N)
      double* qb = need_bias ? part_b.data() + c * N : nullptr;    // (N)
      const std::int64_t r0 = c * M / chunks, r1 = (c + 1) * M / chunks;
      for (std::int64_t i = r0; i < r1; ++i) {
        const T* xr = px + i * N;
        const T* gr = pg + i * N;
        const T mu = pmean[i], rs_i = prstd[i];
        // Pass 1 (for gx): a = sum gy, b = sum gy xhat.
        double a = 0.0, b = 0.0;
        if (pgx && pw) {
#pragma omp simd reduction(+ : a, b)
          for (std::int64_t j = 0; j < N; ++j) {
            const T gy = gr[j] * pw[j];
            a += static_cast<double>(gy);
            b += static_cast<double>(gy * ((xr[j] - mu) * rs_i));
          }
        } else if (pgx) {
#pragma omp simd reduction(+ : a, b)
          for (std::int64_t j = 0; j < N; ++j) {
            a += static_cast<double>(gr[j]);
            b += static_cast<double>(gr[j] * ((xr[j] - mu) * rs_i));
          }
        }
        const T ma = static_cast<T>(a * inv_n), mb = static_cast<T>(b * inv_n);
        T* gxr = pgx ? pgx + i * N : nullptr;
        // Pass 2: gx, and the row's share of gw and gb. The training case
        // (everything wanted) runs as one loop.
        if (gxr && pw && qw && qb) {
#pragma omp simd
          for (std::int64_t j = 0; j < N; ++j) {
            const T xh = (xr[j] - mu) * rs_i;
            gxr[j] = rs_i * (gr[j] * pw[j] - ma - xh * mb);
            qw[j] += static_cast<double>(gr[j] * xh);
            qb[j] += static_cast<double>(gr[j]);
          }
          continue;
        }
        if (gxr) {
#pragma omp simd
          for (std::int64_t j = 0; j < N; ++j) {
            const T gy = pw ? gr[j] * pw[j] : gr[j];
            gxr[j] = rs_i * (gy - ma - (xr[j] - mu) * rs_i * mb);
          }
        }
        if (qw) {
#pragma omp simd
          for (std::int64_t j = 0; j < N; ++j) {
            qw[j] += static_cast<double>(gr[j] * ((xr[j] - mu) * rs_i));
          }
        }
        if (qb) {
#pragma omp simd
          for (std::int64_t j = 0; j < N; ++j) qb[j] += static_cast<double>(gr[j]);
        }
      }
    }
    if (need_weight) combine_chunks(part_w, chunks, N, out.gweight.data<T>());
    if (need_bias) combine_chunks(part_b, chunks, N, out.gbias.data<T>());
  });
  return out;
}

// ================================================================ RMS norm
//
// Zhang & Sennrich 2019, "Root Mean Square Layer Normalization"; the
// semantics of torch.nn.functional.rms_norm:
//   rstd = 1 / sqrt(sum_j x_j^2 / N + eps),  y_j = x_j rstd w_j
NormForward rms_norm_forward(const Tensor& x_in, std::int64_t normalized_dims, const Tensor& weight,
                             double eps) {
  SSM_CUDA_DISPATCH(x_in, cuda::rms_norm_forward(x_in, normalized_dims, weight, eps));
  require_cpu("rms_norm", {&x_in, &weight});
  const Tensor x = x_in.contiguous();
  const RowsShape rs = rows_shape(x.shape(), x.dim() - normalized_dims);
  const std::int64_t M = rs.rows, N = rs.n;
  NormForward out{Tensor::empty(x.shape(), x.dtype()), Tensor(),
                  Tensor::empty(rs.stat_shape, x.dtype())};
  const Tensor w = contiguous_or_undefined(weight);
  dispatch_float(x.dtype(), "rms_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();         // (M, N)
    const T* pw = data_or_null<T>(w);  // (N) or null
    T* py = out.y.data<T>();           // (M, N)
    T* prstd = out.rstd.data<T>();     // (M)
    const double inv_n = N > 0 ? 1.0 / static_cast<double>(N) : 0.0;
#pragma omp parallel for schedule(static) if (M * N > kParallelMin && M > 1)
    for (std::int64_t i = 0; i < M; ++i) {
      const T* xr = px + i * N;
      T* yr = py + i * N;
      double s2 = 0.0;
#pragma omp simd reduction(+ : s2)
      for (std::int64_t j = 0; j < N; ++j) s2 += static_cast<double>(xr[j]) * xr[j];
      const T rstd = static_cast<T>(1.0 / std::sqrt(s2 * inv_n + eps));
      prstd[i] = rstd;
      if (pw) {
        for (std::int64_t j = 0; j < N; ++j) yr[j] = xr[j] * rstd * pw[j];
      } else {
        for (std::int64_t j = 0; j < N; ++j) yr[j] = xr[j] * rstd;
      }
    }
  });
  return out;
}

// With gy_j = g_j w_j (w = 1 when absent):
//   gx_j = rstd (gy_j - x_j rstd^2 mean_k(gy_k x_k)),  gw_j = sum_rows g_j x_j rstd
NormGrads rms_norm_backward(const Tensor& grad, const Tensor& x_in, const Tensor& rstd_in,
                            const Tensor& weight, bool need_x, bool need_weight) {
  SSM_CUDA_DISPATCH(x_in,
                    cuda::rms_norm_backward(grad, x_in, rstd_in, weight, need_x, need_weight));
  require_cpu("rms_norm_backward", {&grad, &x_in, &rstd_in, &weight});
  SSM_CHECK(!need_weight || weight.defined(), "rms_norm_backward",
            "a weight gradient was asked for without a weight");
  const Tensor x = x_in.contiguous(), g = grad.contiguous(), rstd = rstd_in.contiguous();
  const Tensor w = contiguous_or_undefined(weight);
  const RowsShape rs = rows_shape(x.shape(), rstd.dim());
  const std::int64_t M = rs.rows, N = rs.n;
  NormGrads out;
  if (need_x) out.gx = Tensor::empty(x.shape(), x.dtype());
  if (need_weight) out.gweight = Tensor::empty(rs.param_shape, x.dtype());
  const std::int64_t chunks = row_chunks(M, N);
  std::vector<double> part_w(need_weight ? chunks * N : 0, 0.0);
  dispatch_float(x.dtype(), "rms_norm_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();                     // (M, N)
    const T* pg = g.data<T>();                     // (M, N)
    const T* prstd = rstd.data<T>();               // (M)
    const T* pw = data_or_null<T>(w);              // (N) or null
    T* pgx = need_x ? out.gx.data<T>() : nullptr;  // (M, N)
    const double inv_n = N > 0 ? 1.0 / static_cast<double>(N) : 0.0;
#pragma omp parallel for schedule(static) if (M * N > kParallelMin && chunks > 1)
    for (std::int64_t c = 0; c < chunks; ++c) {
      double* qw = need_weight ? part_w.data() + c * N : nullptr;  // (N)
      const std::int64_t r0 = c * M / chunks, r1 = (c + 1) * M / chunks;
      for (std::int64_t i = r0; i < r1; ++i) {
        const T* xr = px + i * N;
        const T* gr = pg + i * N;
        const T rs_i = prstd[i];
        if (pgx) {
          double a = 0.0;
          if (pw) {
#pragma omp simd reduction(+ : a)
            for (std::int64_t j = 0; j < N; ++j) a += static_cast<double>(gr[j] * pw[j] * xr[j]);
          } else {
#pragma omp simd reduction(+ : a)
            for (std::int64_t j = 0; j < N; ++j) a += static_cast<double>(gr[j] * xr[j]);
          }
          const double r = static_cast<double>(rs_i);
          const T mb = static_cast<T>(a * inv_n * r * r);
          T* gxr = pgx + i * N;
          if (pw) {
            for (std::int64_t j = 0; j < N; ++j) gxr[j] = rs_i * (gr[j] * pw[j] - xr[j] * mb);
          } else {
            for (std::int64_t j = 0; j < N; ++j) gxr[j] = rs_i * (gr[j] - xr[j] * mb);
          }
        }
        if (qw) {
#pragma omp simd
          for (std::int64_t j = 0; j < N; ++j) qw[j] += static_cast<double>(gr[j] * xr[j] * rs_i);
        }
      }
    }
    if (need_weight) combine_chunks(part_w, chunks, N, out.gweight.data<T>());
  });
  return out;
}

// ================================================================ batch norm
//
// Ioffe & Szegedy 2015, "Batch Normalization"; PyTorch BatchNorm1d/2d
// semantics. x is (N, C, L) with L = the product of the dims after C (L = 1
// for a (N, C) input, whose channels are then the contiguous dim). The
// per-channel sums run over blocks of channels on threads; each channel is
// summed by one thread in (n, l) order, so the result does not depend on the
// thread count either.

namespace {

struct ChannelsShape {
  std::int64_t n = 0, c = 0, l = 1;
};

ChannelsShape channels_shape(const Shape& s) {
  ChannelsShape r{s[0], s[1], 1};
  for (std::size_t d = 2; d < s.size(); ++d) r.l *= s[d];
  return r;
}

// Calls f(c0, c1) over blocks of channels, on threads when the work is large.
template <class F>
void for_channel_blocks(const ChannelsShape& cs, F&& f) {
  const std::int64_t threads = num_threads();
  const std::int64_t block = std::max<std::int64_t>(1, (cs.c + 4 * threads - 1) / (4 * threads));
  const std::int64_t blocks = (cs.c + block - 1) / block;
  const bool parallel = cs.n * cs.c * cs.l > kParallelMin && blocks > 1;
#pragma omp parallel for schedule(static) if (parallel)
  for (std::int64_t k = 0; k < blocks; ++k) f(k * block, std::min(cs.c, (k + 1) * block));
}

// y = (x - shift_in_c) * scale_c + shift_out_c for every element of x (N, C, L).
template <class T>
void channel_affine(const ChannelsShape& cs, const T* x, const T* shift_in, const T* scale,
                    const T* shift_out, T* y) {
  const std::int64_t C = cs.c, L = cs.l, NC = cs.n * cs.c;
  const bool parallel = NC * L > kParallelMin;
  if (L == 1) {
#pragma omp parallel for schedule(static) if (parallel && cs.n > 1)
    for (std::int64_t n = 0; n < cs.n; ++n) {
      const T* xr = x + n * C;
      T* yr = y + n * C;
      for (std::int64_t c = 0; c < C; ++c) yr[c] = (xr[c] - shift_in[c]) * scale[c] + shift_out[c];
    }
    return;
  }
#pragma omp parallel for schedule(static) if (parallel && NC > 1)
  for (std::int64_t r = 0; r < NC; ++r) {
    const std::int64_t c = r % C;
    const T a = shift_in[c], s = scale[c], b = shift_out[c];
    const T* xr = x + r * L;
    T* yr = y + r * L;
    for (std::int64_t l = 0; l < L; ++l) yr[l] = (xr[l] - a) * s + b;
  }
}

}  // namespace

NormForward batch_norm_forward(const Tensor& x_in, const Tensor& running_mean,
                               const Tensor& running_var, const Tensor& weight, const Tensor& bias,
                               bool training, double momentum, double eps) {
  SSM_CUDA_DISPATCH(x_in, cuda::batch_norm_forward(x_in, running_mean, running_var, weight, bias,
                                                   training, momentum, eps));
  require_cpu("batch_norm", {&x_in, &running_mean, &running_var, &weight, &bias});
  const Tensor x = x_in.contiguous();
  const ChannelsShape cs = channels_shape(x.shape());
  const std::int64_t C = cs.c, L = cs.l, count = cs.n * cs.l;
  NormForward out{Tensor::empty(x.shape(), x.dtype()), Tensor::empty({C}, x.dtype()),
                  Tensor::empty({C}, x.dtype())};
  const Tensor w = contiguous_or_undefined(weight), b = contiguous_or_undefined(bias);
  const bool update = training && running_mean.defined();
  Tensor new_rm, new_rv;
  if (update) {
    new_rm = Tensor::empty({C}, x.dtype());
    new_rv = Tensor::empty({C}, x.dtype());
  }
  dispatch_float(x.dtype(), "batch_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();      // (N, C, L)
    T* pmean = out.mean.data<T>();  // (C)
    T* prstd = out.rstd.data<T>();  // (C)
    if (training) {
      // Per-channel shifted moments over (n, l), k_c = x[0, c, 0].
      std::vector<double> k(C, 0.0), s1(C, 0.0), s2(C, 0.0);
      if (count > 0) {
        for (std::int64_t c = 0; c < C; ++c) k[c] = static_cast<double>(px[c * L]);
      }
      for_channel_blocks(cs, [&](std::int64_t c0, std::int64_t c1) {
        for (std::int64_t n = 0; n < cs.n; ++n) {
          const T* xs = px + n * C * L;  // (C, L)
          if (L == 1) {
            for (std::int64_t c = c0; c < c1; ++c) {
              const double d = static_cast<double>(xs[c]) - k[c];
              s1[c] += d;
              s2[c] += d * d;
            }
          } else {
            for (std::int64_t c = c0; c < c1; ++c) {
              add_shifted_moments(xs + c * L, L, k[c], s1[c], s2[c]);
            }
          }
        }
      });
      const Tensor rm = update ? running_mean.contiguous() : Tensor();
      const Tensor rv = update ? running_var.contiguous() : Tensor();
      const double unbias =
          count > 1 ? static_cast<double>(count) / static_cast<double>(count - 1) : 1.0;
      for (std::int64_t c = 0; c < C; ++c) {
        const Moments m = finish_moments(k[c], s1[c], s2[c], count);
        pmean[c] = static_cast<T>(m.mean);
        prstd[c] = static_cast<T>(1.0 / std::sqrt(m.var + eps));
        if (update) {
          const double old_m = static_cast<double>(rm.data<T>()[c]);
          const double old_v = static_cast<double>(rv.data<T>()[c]);
          new_rm.data<T>()[c] = static_cast<T>((1.0 - momentum) * old_m + momentum * m.mean);
          new_rv.data<T>()[c] =
              static_cast<T>((1.0 - momentum) * old_v + momentum * m.var * unbias);
        }
      }
    } else {
      const Tensor rm = running_mean.contiguous(), rv = running_var.contiguous();
      for (std::int64_t c = 0; c < C; ++c) {
        pmean[c] = rm.data<T>()[c];
        prstd[c] = static_cast<T>(1.0 / std::sqrt(static_cast<double>(rv.data<T>()[c]) + eps));
      }
    }
    // y = (x - mean_c) (rstd_c w_c) + b_c
    const T* pw = data_or_null<T>(w);  // (C) or null
    const T* pb = data_or_null<T>(b);  // (C) or null
    std::vector<T> scale(C), shift(C);
    for (std::int64_t c = 0; c < C; ++c) {
      scale[c] = pw ? prstd[c] * pw[c] : prstd[c];
      shift[c] = pb ? pb[c] : T(0);
    }
    channel_affine(cs, px, pmean, scale.data(), shift.data(), out.y.data<T>());
  });
  if (update) {
    running_mean.copy_(new_rm);
    running_var.copy_(new_rv);
  }
  return out;
}

// With xhat = (x - mean) rstd, m = N L, per channel:
//   gb = sum g,  gw = sum g xhat
//   training: gx = w rstd (g - gb / m - xhat gw / m)
//   eval:     gx = w rstd g  (mean and rstd are constants)
// Training's gx is channel_affine of g: (g - (gb / m + (x - mean) rstd gw / m))
// needs x too, so it gets its own loop.
NormGrads batch_norm_backward(const Tensor& grad, const Tensor& x_in, const Tensor& mean_in,
                              const Tensor& rstd_in, const Tensor& weight, bool training,
                              bool need_x, bool need_weight, bool need_bias) {
  SSM_CUDA_DISPATCH(x_in, cuda::batch_norm_backward(grad, x_in, mean_in, rstd_in, weight, training,
                                                    need_x, need_weight, need_bias));
  require_cpu("batch_norm_backward", {&grad, &x_in, &mean_in, &rstd_in, &weight});
  const Tensor x = x_in.contiguous(), g = grad.contiguous();
  const Tensor mean = mean_in.contiguous(), rstd = rstd_in.contiguous();
  const Tensor w = contiguous_or_undefined(weight);
  const ChannelsShape cs = channels_shape(x.shape());
  const std::int64_t C = cs.c, L = cs.l, count = cs.n * cs.l;
  NormGrads out;
  if (need_x) out.gx = Tensor::empty(x.shape(), x.dtype());
  if (need_weight) out.gweight = Tensor::empty({C}, x.dtype());
  if (need_bias) out.gbias = Tensor::empty({C}, x.dtype());
  dispatch_float(x.dtype(), "batch_norm_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();         // (N, C, L)
    const T* pg = g.data<T>();         // (N, C, L)
    const T* pmean = mean.data<T>();   // (C)
    const T* prstd = rstd.data<T>();   // (C)
    const T* pw = data_or_null<T>(w);  // (C) or null
    // sg[c] = sum g, sgx[c] = sum g xhat.
    std::vector<double> sg(C, 0.0), sgx(C, 0.0);
    const bool need_sums = need_weight || need_bias || (need_x && training);
    if (need_sums) {
      std::vector<double> mu(C);
      for (std::int64_t c = 0; c < C; ++c) mu[c] = static_cast<double>(pmean[c]);
      for_channel_blocks(cs, [&](std::int64_t c0, std::int64_t c1) {
        for (std::int64_t n = 0; n < cs.n; ++n) {
          const T* xs = px + n * C * L;  // (C, L)
          const T* gs = pg + n * C * L;  // (C, L)
          if (L == 1) {
            for (std::int64_t c = c0; c < c1; ++c) {
              const double gc = static_cast<double>(gs[c]);
              sg[c] += gc;
              sgx[c] += gc * (static_cast<double>(xs[c]) - mu[c]);
            }
            continue;
          }
          for (std::int64_t c = c0; c < c1; ++c) {
            const T* xr = xs + c * L;
            const T* gr = gs + c * L;
            const double m = mu[c];
            double a = 0.0, b = 0.0;
#pragma omp simd reduction(+ : a, b)
            for (std::int64_t l = 0; l < L; ++l) {
              const double gl = static_cast<double>(gr[l]);
              a += gl;
              b += gl * (static_cast<double>(xr[l]) - m);
            }
            sg[c] += a;
            sgx[c] += b;
          }
        }
      });
      for (std::int64_t c = 0; c < C; ++c) sgx[c] *= static_cast<double>(prstd[c]);
    }
    if (need_weight) {
      T* gw = out.gweight.data<T>();
      for (std::int64_t c = 0; c < C; ++c) gw[c] = static_cast<T>(sgx[c]);
    }
    if (need_bias) {
      T* gb = out.gbias.data<T>();
      for (std::int64_t c = 0; c < C; ++c) gb[c] = static_cast<T>(sg[c]);
    }
    if (!need_x) return;
    T* pgx = out.gx.data<T>();  // (N, C, L)
    std::vector<T> scale(C), zero(C, T(0));
    for (std::int64_t c = 0; c < C; ++c) scale[c] = pw ? prstd[c] * pw[c] : prstd[c];
    if (!training) {  // gx = g * scale
      channel_affine(cs, pg, zero.data(), scale.data(), zero.data(), pgx);
      return;
    }
    // gx = scale (g - mg - (x - mean) k), mg = sg / m, k = rstd sgx / m
    const double inv_m = count > 0 ? 1.0 / static_cast<double>(count) : 0.0;
    std::vector<T> mg(C), k(C);
    for (std::int64_t c = 0; c < C; ++c) {
      mg[c] = static_cast<T>(sg[c] * inv_m);
      k[c] = static_cast<T>(static_cast<double>(prstd[c]) * sgx[c] * inv_m);
    }
    const std::int64_t NC = cs.n * C;
    const bool parallel = NC * L > kParallelMin;
    if (L == 1) {
#pragma omp parallel for schedule(static) if (parallel && cs.n > 1)
      for (std::int64_t n = 0; n < cs.n; ++n) {
        const T* xr = px + n * C;
        const T* gr = pg + n * C;
        T* gxr = pgx + n * C;
        for (std::int64_t c = 0; c < C; ++c) {
          gxr[c] = scale[c] * (gr[c] - mg[c] - (xr[c] - pmean[c]) * k[c]);
        }
      }
      return;
    }
#pragma omp parallel for schedule(static) if (parallel && NC > 1)
    for (std::int64_t r = 0; r < NC; ++r) {
      const std::int64_t c = r % C;
      const T s = scale[c], m = mg[c], kc = k[c], mu = pmean[c];
      const T* xr = px + r * L;
      const T* gr = pg + r * L;
      T* gxr = pgx + r * L;
      for (std::int64_t l = 0; l < L; ++l) gxr[l] = s * (gr[l] - m - (xr[l] - mu) * kc);
    }
  });
  return out;
}

}  // namespace ssm::kernels
