// CUDA normalization kernels: layer norm, RMS norm, batch norm (float32).
//
// The same formulas, operation order and saved statistics as
// kernels/cpu/norm.cpp: statistics accumulate in double with the shifted-data
// formulas (k = the first element of the set, s1 = sum (x - k), s2 = sum
// (x - k)^2, mean = k + s1 / n, var = s2 / n - (s1 / n)^2); the saved mean /
// rstd are float32. Inputs that are strided views are first gathered into
// contiguous buffers.
//
// Layer / RMS norm (x as (M, N) rows): one warp per row (N <= kWarpMaxCols)
// or one block per row, lanes striding the row (coalesced), the row sums in
// double through warp_sum / block_sum.
// Weight / bias gradients (sums over the M rows per column) are two passes
// without atomics: pass 1 splits the rows into `chunks` contiguous ranges
// (a number that depends on M and N only) and one thread per (chunk, column)
// adds its rows in order into a double partial; pass 2 adds the partials of a
// column in chunk order. The results are the same bits on every run.
// Batch norm (x as (N, C, L)): one block per channel sums its N * L elements
// (per thread in order, then block_sum), and an elementwise kernel applies
// the per-channel affine map.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/norm.h"

namespace ssm::kernels::cuda {

namespace {

constexpr std::int64_t kWarpMaxCols = 1024;  // rows up to this long: one warp per row
constexpr int kWarpsPerBlock = kThreads / 32;
constexpr std::int64_t kMaxChunks = 256;                        // row chunks of pass 1
constexpr std::int64_t kPartialBudget = std::int64_t{1} << 24;  // doubles of partial sums

const float* data_or_null(const Tensor& t) {
  return t.defined() && t.numel() > 0 ? t.data<float>() : nullptr;
}
float* mutable_or_null(const Tensor& t) {
  return t.defined() && t.numel() > 0 ? t.data<float>() : nullptr;
}

// Rows view of layer / RMS norm: x (M, N) with N the trailing numel.
struct RowsShape {
  Shape stat_shape;   // x.shape()[:-normalized_dims]
  Shape param_shape;  // x.shape()[-normalized_dims:]
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

// The row chunks of the weight / bias gradient sums: 0 for no rows.
std::int64_t row_chunks(std::int64_t rows, std::int64_t n) {
  if (rows == 0) return 0;
  std::int64_t c = std::min(rows, kMaxChunks);
  c = std::min(c, kPartialBudget / std::max<std::int64_t>(n, 1));
  return std::max<std::int64_t>(c, 1);
}

// Grid of a rows kernel.
unsigned row_blocks(std::int64_t rows, bool per_block) {
  return per_block ? blocks_for(rows, 1) : blocks_for(rows, kWarpsPerBlock);
}

// ---------------------------------------------------------------- layer / RMS norm forward

// Layer norm, per row (shifted moments, k = x_0):
//   mean = k + s1 / N, var = max(0, s2 / N - (s1 / N)^2), rstd = 1 / sqrt(var + eps)
//   y_j = (x_j - mean) rstd w_j + b_j   (w, b optional)
// RMS norm (Rms): rstd = 1 / sqrt(sum_j x_j^2 / N + eps), y_j = x_j rstd w_j.
template <bool Rms, bool PerBlock>
__global__ void norm_forward_rows(const float* __restrict__ x, const float* __restrict__ w,
                                  const float* __restrict__ b, std::int64_t rows, std::int64_t n,
                                  double eps, float* __restrict__ y, float* __restrict__ mean,
                                  float* __restrict__ rstd) {
  __shared__ double shared[32];
  const RowGroup<PerBlock> g;
  const double inv_n = n > 0 ? 1.0 / static_cast<double>(n) : 0.0;
  for (std::int64_t r = g.first; r < rows; r += g.step) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    float mu = 0.0f, rs;
    if constexpr (Rms) {
      double s2 = 0.0;
      for (std::int64_t j = g.lane; j < n; j += g.width) {
        s2 += static_cast<double>(xr[j]) * static_cast<double>(xr[j]);
      }
      s2 = g.sum(s2, shared);
      rs = static_cast<float>(1.0 / sqrt(s2 * inv_n + eps));
    } else {
      const double k = n > 0 ? static_cast<double>(xr[0]) : 0.0;
      double s1 = 0.0, s2 = 0.0;
      for (std::int64_t j = g.lane; j < n; j += g.width) {
        const double d = static_cast<double>(xr[j]) - k;
        s1 += d;
        s2 += d * d;
      }
      s1 = g.sum(s1, shared);
      s2 = g.sum(s2, shared);
      double m = 0.0, var = 0.0;  // an empty row: mean 0, var 0 (as the CPU)
      if (n > 0) {
        const double m1 = s1 * inv_n;
        m = k + m1;
        var = fmax(0.0, s2 * inv_n - m1 * m1);
      }
      mu = static_cast<float>(m);
      rs = static_cast<float>(1.0 / sqrt(var + eps));
    }
    if (g.lane == 0) {
      if (mean) mean[r] = mu;
      rstd[r] = rs;
    }
    for (std::int64_t j = g.lane; j < n; j += g.width) {
      float v = Rms ? xr[j] * rs : (xr[j] - mu) * rs;
      if (w) v *= w[j];
      if (b) v += b[j];
      yr[j] = v;
    }
  }
}

template <bool Rms>
void launch_norm_forward(const float* x, const float* w, const float* b, std::int64_t rows,
                         std::int64_t n, double eps, float* y, float* mean, float* rstd) {
  if (n <= kWarpMaxCols) {
    norm_forward_rows<Rms, false>
        <<<row_blocks(rows, false), kThreads>>>(x, w, b, rows, n, eps, y, mean, rstd);
  } else {
    norm_forward_rows<Rms, true>
        <<<row_blocks(rows, true), kThreads>>>(x, w, b, rows, n, eps, y, mean, rstd);
  }
  SSM_CUDA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- layer / RMS norm backward

// gx per row, gy_j = g_j w_j (w = 1 when absent):
//   layer norm: xhat_j = (x_j - mean) rstd, a = sum gy, b = sum gy xhat (double),
//               gx_j = rstd (gy_j - a / N - xhat_j b / N)
//   RMS norm:   a = sum gy x (double), mb = a / N rstd^2, gx_j = rstd (gy_j - x_j mb)
template <bool Rms, bool PerBlock>
__global__ void norm_backward_rows(const float* __restrict__ g, const float* __restrict__ x,
                                   const float* __restrict__ mean, const float* __restrict__ rstd,
                                   const float* __restrict__ w, std::int64_t rows, std::int64_t n,
                                   float* __restrict__ gx) {
  __shared__ double shared[32];
  const RowGroup<PerBlock> grp;
  const double inv_n = n > 0 ? 1.0 / static_cast<double>(n) : 0.0;
  for (std::int64_t r = grp.first; r < rows; r += grp.step) {
    const float* xr = x + r * n;
    const float* gr = g + r * n;
    float* gxr = gx + r * n;
    const float rs = rstd[r];
    if constexpr (Rms) {
      double a = 0.0;
      for (std::int64_t j = grp.lane; j < n; j += grp.width) {
        a += static_cast<double>(w ? gr[j] * w[j] * xr[j] : gr[j] * xr[j]);
      }
      a = grp.sum(a, shared);
      const double rd = static_cast<double>(rs);
      const float mb = static_cast<float>(a * inv_n * rd * rd);
      for (std::int64_t j = grp.lane; j < n; j += grp.width) {
        const float gy = w ? gr[j] * w[j] : gr[j];
        gxr[j] = rs * (gy - xr[j] * mb);
      }
    } else {
      const float mu = mean[r];
      double a = 0.0, b = 0.0;
      for (std::int64_t j = grp.lane; j < n; j += grp.width) {
        const float gy = w ? gr[j] * w[j] : gr[j];
        a += static_cast<double>(gy);
        b += static_cast<double>(gy * ((xr[j] - mu) * rs));
      }
      a = grp.sum(a, shared);
      b = grp.sum(b, shared);
      const float ma = static_cast<float>(a * inv_n), mb = static_cast<float>(b * inv_n);
      for (std::int64_t j = grp.lane; j < n; j += grp.width) {
        const float gy = w ? gr[j] * w[j] : gr[j];
        const float xh = (xr[j] - mu) * rs;
        gxr[j] = rs * (gy - ma - xh * mb);
      }
    }
  }
}

// Pass 1 of the weight / bias gradients: chunk c = blockIdx.y covers rows
// [c M / chunks, (c + 1) M / chunks); one thread per column j adds its rows
// in order:
//   pw[c, j] = sum_rows g_j xhat_j  (layer norm: g (x - mean) rstd; RMS: g x rstd)
//   pb[c, j] = sum_rows g_j
template <bool Rms>
__global__ void param_partials(const float* __restrict__ g, const float* __restrict__ x,
                               const float* __restrict__ mean, const float* __restrict__ rstd,
                               std::int64_t rows, std::int64_t n, std::int64_t chunks,
                               double* __restrict__ pw, double* __restrict__ pb) {
  const std::int64_t c = blockIdx.y;
  const std::int64_t r0 = c * rows / chunks, r1 = (c + 1) * rows / chunks;
  for (std::int64_t j = thread_index(); j < n; j += thread_count()) {
    double aw = 0.0, ab = 0.0;
    for (std::int64_t r = r0; r < r1; ++r) {
      const float gv = g[r * n + j], xv = x[r * n + j];
      if (pw) aw += static_cast<double>(Rms ? gv * xv * rstd[r] : gv * ((xv - mean[r]) * rstd[r]));
      if (pb) ab += static_cast<double>(gv);
    }
    if (pw) pw[c * n + j] = aw;
    if (pb) pb[c * n + j] = ab;
  }
}

// Pass 2: out[j] = sum_c partial[c, j], c in order (0 when there are no chunks).
__global__ void combine_partials(const double* __restrict__ partial, std::int64_t chunks,
                                 std::int64_t n, float* __restrict__ out) {
  for (std::int64_t j = thread_index(); j < n; j += thread_count()) {
    double s = 0.0;
    for (std::int64_t c = 0; c < chunks; ++c) s += partial[c * n + j];
    out[j] = static_cast<float>(s);
  }
}

// The weight / bias gradients (either may be undefined) by the two passes.
template <bool Rms>
void param_grads(const float* g, const float* x, const float* mean, const float* rstd,
                 std::int64_t rows, std::int64_t n, const Tensor& gweight, const Tensor& gbias,
                 Device device) {
  if (n == 0 || (!gweight.defined() && !gbias.defined())) return;
  const std::int64_t chunks = row_chunks(rows, n);
  Tensor part_w, part_b;
  if (gweight.defined()) part_w = Tensor::empty({chunks * n}, DType::Float64, device);
  if (gbias.defined()) part_b = Tensor::empty({chunks * n}, DType::Float64, device);
  double* pw = part_w.defined() && chunks > 0 ? part_w.data<double>() : nullptr;
  double* pb = part_b.defined() && chunks > 0 ? part_b.data<double>() : nullptr;
  if (chunks > 0) {
    const dim3 grid(blocks_for(n), static_cast<unsigned>(chunks));
    param_partials<Rms><<<grid, kThreads>>>(g, x, mean, rstd, rows, n, chunks, pw, pb);
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (gweight.defined()) {
    combine_partials<<<blocks_for(n), kThreads>>>(pw, chunks, n, gweight.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (gbias.defined()) {
    combine_partials<<<blocks_for(n), kThreads>>>(pb, chunks, n, gbias.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
}

template <bool Rms>
void launch_norm_backward(const float* g, const float* x, const float* mean, const float* rstd,
                          const float* w, std::int64_t rows, std::int64_t n, float* gx) {
  if (n <= kWarpMaxCols) {
    norm_backward_rows<Rms, false>
        <<<row_blocks(rows, false), kThreads>>>(g, x, mean, rstd, w, rows, n, gx);
  } else {
    norm_backward_rows<Rms, true>
        <<<row_blocks(rows, true), kThreads>>>(g, x, mean, rstd, w, rows, n, gx);
  }
  SSM_CUDA_CHECK_LAUNCH();
}

}  // namespace

// ================================================================ layer norm

NormForward layer_norm_forward(const Tensor& x_in, std::int64_t normalized_dims,
                               const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "layer_norm";
  require_cuda_float32(op, {&x_in, &weight, &bias});
  const Tensor x = x_in.contiguous(), w = contiguous_if_defined(weight),
               b = contiguous_if_defined(bias);
  const RowsShape rs = rows_shape(x.shape(), x.dim() - normalized_dims);
  const Device device = x.device();
  NormForward out{Tensor::empty(x.shape(), DType::Float32, device),
                  Tensor::empty(rs.stat_shape, DType::Float32, device),
                  Tensor::empty(rs.stat_shape, DType::Float32, device)};
  if (rs.rows == 0) return out;
  launch_norm_forward<false>(data_or_null(x), data_or_null(w), data_or_null(b), rs.rows, rs.n, eps,
                             mutable_or_null(out.y), out.mean.data<float>(),
                             out.rstd.data<float>());
  return out;
}

NormGrads layer_norm_backward(const Tensor& grad, const Tensor& x_in, const Tensor& mean_in,
                              const Tensor& rstd_in, const Tensor& weight, bool need_x,
                              bool need_weight, bool need_bias) {
  const char* op = "layer_norm_backward";
  require_cuda_float32(op, {&grad, &x_in, &mean_in, &rstd_in, &weight});
  SSM_CHECK(!need_weight || weight.defined(), op,
            "a weight gradient was asked for without a weight");
  const Tensor x = x_in.contiguous(), g = grad.contiguous();
  const Tensor mean = mean_in.contiguous(), rstd = rstd_in.contiguous(),
               w = contiguous_if_defined(weight);
  const RowsShape rs = rows_shape(x.shape(), mean.dim());
  const Device device = x.device();
  NormGrads out;
  if (need_x) out.gx = Tensor::empty(x.shape(), DType::Float32, device);
  if (need_weight) out.gweight = Tensor::empty(rs.param_shape, DType::Float32, device);
  if (need_bias) out.gbias = Tensor::empty(rs.param_shape, DType::Float32, device);
  if (need_x && x.numel() > 0) {
    launch_norm_backward<false>(g.data<float>(), x.data<float>(), mean.data<float>(),
                                rstd.data<float>(), data_or_null(w), rs.rows, rs.n,
                                out.gx.data<float>());
  }
  param_grads<false>(data_or_null(g), data_or_null(x), data_or_null(mean), data_or_null(rstd),
                     rs.rows, rs.n, out.gweight, out.gbias, device);
  return out;
}

// ================================================================ RMS norm

NormForward rms_norm_forward(const Tensor& x_in, std::int64_t normalized_dims, const Tensor& weight,
                             double eps) {
  const char* op = "rms_norm";
  require_cuda_float32(op, {&x_in, &weight});
  const Tensor x = x_in.contiguous(), w = contiguous_if_defined(weight);
  const RowsShape rs = rows_shape(x.shape(), x.dim() - normalized_dims);
  const Device device = x.device();
  NormForward out{Tensor::empty(x.shape(), DType::Float32, device), Tensor(),
                  Tensor::empty(rs.stat_shape, DType::Float32, device)};
  if (rs.rows == 0) return out;
  launch_norm_forward<true>(data_or_null(x), data_or_null(w), nullptr, rs.rows, rs.n, eps,
                            mutable_or_null(out.y), nullptr, out.rstd.data<float>());
  return out;
}

NormGrads rms_norm_backward(const Tensor& grad, const Tensor& x_in, const Tensor& rstd_in,
                            const Tensor& weight, bool need_x, bool need_weight) {
  const char* op = "rms_norm_backward";
  require_cuda_float32(op, {&grad, &x_in, &rstd_in, &weight});
  SSM_CHECK(!need_weight || weight.defined(), op,
            "a weight gradient was asked for without a weight");
  const Tensor x = x_in.contiguous(), g = grad.contiguous(), rstd = rstd_in.contiguous();
  const Tensor w = contiguous_if_defined(weight);
  const RowsShape rs = rows_shape(x.shape(), rstd.dim());
  const Device device = x.device();
  NormGrads out;
  if (need_x) out.gx = Tensor::empty(x.shape(), DType::Float32, device);
  if (need_weight) out.gweight = Tensor::empty(rs.param_shape, DType::Float32, device);
  if (need_x && x.numel() > 0) {
    launch_norm_backward<true>(g.data<float>(), x.data<float>(), nullptr, rstd.data<float>(),
                               data_or_null(w), rs.rows, rs.n, out.gx.data<float>());
  }
  param_grads<true>(data_or_null(g), data_or_null(x), nullptr, data_or_null(rstd), rs.rows, rs.n,
                    out.gweight, Tensor(), device);
  return out;
}

// ================================================================ batch norm

namespace {

// One block per channel c of x (N, C, L), summing its m = N L elements
// (element e = (n, l) at (n C + c) L + l), per thread in order then
// block_sum:
//   training: shifted moments (k = x[0, c, 0]) -> mean, biased var,
//             rstd = 1 / sqrt(var + eps); with running stats:
//             running_mean = (1 - momentum) running_mean + momentum mean
//             running_var  = (1 - momentum) running_var + momentum var unbias
//   eval:     mean = running_mean, rstd = 1 / sqrt(running_var + eps)
// new_rm / new_rv may alias rm / rv (each channel is read, then written, by
// thread 0 of its block).
__global__ void batch_norm_stats(const float* __restrict__ x, std::int64_t batch, std::int64_t C,
                                 std::int64_t L, bool training, double eps, double momentum,
                                 double unbias, const float* rm, const float* rv, float* new_rm,
                                 float* new_rv, float* __restrict__ mean,
                                 float* __restrict__ rstd) {
  __shared__ double shared[32];
  const std::int64_t count = batch * L;
  for (std::int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    if (!training) {
      if (threadIdx.x == 0) {
        mean[c] = rm[c];
        rstd[c] = static_cast<float>(1.0 / sqrt(static_cast<double>(rv[c]) + eps));
      }
      continue;
    }
    const double k = count > 0 ? static_cast<double>(x[c * L]) : 0.0;
    double s1 = 0.0, s2 = 0.0;
    for (std::int64_t e = threadIdx.x; e < count; e += blockDim.x) {
      const std::int64_t n = e / L, l = e - n * L;
      const double d = static_cast<double>(x[(n * C + c) * L + l]) - k;
      s1 += d;
      s2 += d * d;
    }
    s1 = block_sum(s1, shared);
    s2 = block_sum(s2, shared);
    if (threadIdx.x == 0) {
      double m = 0.0, var = 0.0;  // no elements: mean 0, var 0 (as the CPU)
      if (count > 0) {
        const double inv = 1.0 / static_cast<double>(count);
        const double m1 = s1 * inv;
        m = k + m1;
        var = fmax(0.0, s2 * inv - m1 * m1);
      }
      mean[c] = static_cast<float>(m);
      rstd[c] = static_cast<float>(1.0 / sqrt(var + eps));
      if (new_rm) {
        const double old_m = static_cast<double>(rm[c]), old_v = static_cast<double>(rv[c]);
        new_rm[c] = static_cast<float>((1.0 - momentum) * old_m + momentum * m);
        new_rv[c] = static_cast<float>((1.0 - momentum) * old_v + momentum * var * unbias);
      }
    }
  }
}

// y = (x - mean_c) (rstd_c w_c) + b_c for every element of x (N, C, L).
__global__ void batch_norm_affine(const float* __restrict__ x, const float* __restrict__ mean,
                                  const float* __restrict__ rstd, const float* __restrict__ w,
                                  const float* __restrict__ b, std::int64_t numel, std::int64_t C,
                                  std::int64_t L, float* __restrict__ y) {
  for (std::int64_t e = thread_index(); e < numel; e += thread_count()) {
    const std::int64_t c = (e / L) % C;
    const float scale = w ? rstd[c] * w[c] : rstd[c];
    const float shift = b ? b[c] : 0.0f;
    y[e] = (x[e] - mean[c]) * scale + shift;
  }
}

// Per channel (one block each, fixed order): sg = sum g, sgx = rstd sum g (x - mean)
// (= sum g xhat), both in double; then gw = sgx, gb = sg, and for the
// training gx the coefficients mg = sg / m, k = rstd sgx / m (m = N L).
__global__ void batch_norm_grad_sums(const float* __restrict__ g, const float* __restrict__ x,
                                     const float* __restrict__ mean, const float* __restrict__ rstd,
                                     std::int64_t batch, std::int64_t C, std::int64_t L,
                                     float* __restrict__ gw, float* __restrict__ gb,
                                     float* __restrict__ mg, float* __restrict__ kc) {
  __shared__ double shared[32];
  const std::int64_t count = batch * L;
  const double inv_m = count > 0 ? 1.0 / static_cast<double>(count) : 0.0;
  for (std::int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    const double mu = static_cast<double>(mean[c]);
    double sg = 0.0, sgx = 0.0;
    for (std::int64_t e = threadIdx.x; e < count; e += blockDim.x) {
      const std::int64_t n = e / L, l = e - n * L;
      const std::int64_t at = (n * C + c) * L + l;
      const double gv = static_cast<double>(g[at]);
      sg += gv;
      sgx += gv * (static_cast<double>(x[at]) - mu);
    }
    sg = block_sum(sg, shared);
    sgx = block_sum(sgx, shared);
    if (threadIdx.x == 0) {
      const double r = static_cast<double>(rstd[c]);
      sgx *= r;
      if (gw) gw[c] = static_cast<float>(sgx);
      if (gb) gb[c] = static_cast<float>(sg);
      if (mg) {
        mg[c] = static_cast<float>(sg * inv_m);
        kc[c] = static_cast<float>(r * sgx * inv_m);
      }
    }
  }
}

// training: gx = scale_c (g - mg_c - (x - mean_c) k_c); eval: gx = g scale_c,
// scale_c = rstd_c w_c.
__global__ void batch_norm_backward_x(const float* __restrict__ g, const float* __restrict__ x,
                                      const float* __restrict__ mean,
                                      const float* __restrict__ rstd, const float* __restrict__ w,
                                      const float* __restrict__ mg, const float* __restrict__ kc,
                                      std::int64_t numel, std::int64_t C, std::int64_t L,
                                      float* __restrict__ gx) {
  for (std::int64_t e = thread_index(); e < numel; e += thread_count()) {
    const std::int64_t c = (e / L) % C;
    const float scale = w ? rstd[c] * w[c] : rstd[c];
    gx[e] = mg ? scale * (g[e] - mg[c] - (x[e] - mean[c]) * kc[c]) : g[e] * scale;
  }
}

struct ChannelsShape {
  std::int64_t n = 0, c = 0, l = 1;
};

ChannelsShape channels_shape(const Shape& s) {
  ChannelsShape r{s[0], s[1], 1};
  for (std::size_t d = 2; d < s.size(); ++d) r.l *= s[d];
  return r;
}

}  // namespace

NormForward batch_norm_forward(const Tensor& x_in, const Tensor& running_mean,
                               const Tensor& running_var, const Tensor& weight, const Tensor& bias,
                               bool training, double momentum, double eps) {
  const char* op = "batch_norm";
  require_cuda_float32(op, {&x_in, &running_mean, &running_var, &weight, &bias});
  SSM_CHECK(x_in.dim() >= 2, op, "expected x of shape (N, C) or (N, C, L...), got ", x_in.desc());
  const Tensor x = x_in.contiguous(), w = contiguous_if_defined(weight),
               b = contiguous_if_defined(bias);
  const ChannelsShape cs = channels_shape(x.shape());
  const std::int64_t C = cs.c, count = cs.n * cs.l;
  const Device device = x.device();
  NormForward out{Tensor::empty(x.shape(), DType::Float32, device),
                  Tensor::empty({C}, DType::Float32, device),
                  Tensor::empty({C}, DType::Float32, device)};
  if (C == 0) return out;
  SSM_CHECK(training || (running_mean.defined() && running_var.defined()), op,
            "eval mode needs running_mean and running_var");
  const bool update = training && running_mean.defined();
  const Tensor rm = contiguous_if_defined(running_mean), rv = contiguous_if_defined(running_var);
  Tensor new_rm, new_rv;
  if (update) {
    new_rm = Tensor::empty({C}, DType::Float32, device);
    new_rv = Tensor::empty({C}, DType::Float32, device);
  }
  const double unbias =
      count > 1 ? static_cast<double>(count) / static_cast<double>(count - 1) : 1.0;
  batch_norm_stats<<<blocks_for(C, 1), kThreads>>>(
      data_or_null(x), cs.n, C, cs.l, training, eps, momentum, unbias, data_or_null(rm),
      data_or_null(rv), mutable_or_null(new_rm), mutable_or_null(new_rv), out.mean.data<float>(),
      out.rstd.data<float>());
  SSM_CUDA_CHECK_LAUNCH();
  const std::int64_t numel = x.numel();
  if (numel > 0) {
    batch_norm_affine<<<blocks_for(numel), kThreads>>>(
        x.data<float>(), out.mean.data<float>(), out.rstd.data<float>(), data_or_null(w),
        data_or_null(b), numel, C, cs.l, out.y.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (update) {  // in place, as the CPU (copy_ handles a strided running stat)
    running_mean.copy_(new_rm);
    running_var.copy_(new_rv);
  }
  return out;
}

NormGrads batch_norm_backward(const Tensor& grad, const Tensor& x_in, const Tensor& mean_in,
                              const Tensor& rstd_in, const Tensor& weight, bool training,
                              bool need_x, bool need_weight, bool need_bias) {
  const char* op = "batch_norm_backward";
  require_cuda_float32(op, {&grad, &x_in, &mean_in, &rstd_in, &weight});
  SSM_CHECK(x_in.dim() >= 2, op, "expected x of shape (N, C) or (N, C, L...), got ", x_in.desc());
  const Tensor x = x_in.contiguous(), g = grad.contiguous();
  const Tensor mean = mean_in.contiguous(), rstd = rstd_in.contiguous(),
               w = contiguous_if_defined(weight);
  const ChannelsShape cs = channels_shape(x.shape());
  const std::int64_t C = cs.c, numel = x.numel();
  const Device device = x.device();
  NormGrads out;
  if (need_x) out.gx = Tensor::empty(x.shape(), DType::Float32, device);
  if (need_weight) out.gweight = Tensor::empty({C}, DType::Float32, device);
  if (need_bias) out.gbias = Tensor::empty({C}, DType::Float32, device);
  if (C == 0) return out;
  const bool need_sums = need_weight || need_bias || (need_x && training);
  Tensor coef;  // (2, C): mg, k of the training gx
  if (need_x && training) coef = Tensor::empty({2, C}, DType::Float32, device);
  float* mg = coef.defined() ? coef.data<float>() : nullptr;
  float* kc = coef.defined() ? coef.data<float>() + C : nullptr;
  if (need_sums) {
    batch_norm_grad_sums<<<blocks_for(C, 1), kThreads>>>(
        data_or_null(g), data_or_null(x), mean.data<float>(), rstd.data<float>(), cs.n, C, cs.l,
        mutable_or_null(out.gweight), mutable_or_null(out.gbias), mg, kc);
    SSM_CUDA_CHECK_LAUNCH();
  }
  if (need_x && numel > 0) {
    batch_norm_backward_x<<<blocks_for(numel), kThreads>>>(
        g.data<float>(), x.data<float>(), mean.data<float>(), rstd.data<float>(), data_or_null(w),
        mg, kc, numel, C, cs.l, out.gx.data<float>());
    SSM_CUDA_CHECK_LAUNCH();
  }
  return out;
}

}  // namespace ssm::kernels::cuda
