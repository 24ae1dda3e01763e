// CUDA reductions (float32). x is read in place through two Indexers, one
// over its kept dims (output row r -> offset of the block) and one over its
// reduced dims (j, row-major over the reduced dims -> offset within the
// block): the same (outer, inner) rows as the CPU's to_rows, without the
// permuted copy.
//
// Determinism: every output is reduced in a fixed order (each lane's strided
// subset in increasing j, then a fixed shuffle tree / fixed shared-memory
// order), never with atomics, so results are bit-identical run to run.
//
// Kernels: rows whose reduced dims are innermost in memory get a warp (short
// rows) or a block (long rows) per row; a sum whose kept dims are innermost
// (a bias gradient: (N, D) -> (D)) reads coalesced with 32 outputs per block
// and 8 lanes over j, the j range optionally split across blocks into
// partial sums that a second kernel adds in order.
#include <cstdint>
#include <limits>

#include "core/shape.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/reduce.h"
#include "kernels/reduce.h"

namespace ssm::kernels::cuda {

namespace {

// Offset of element i through ix; the 0- and 1-dim cases skip the divisions
// (valid for i < numel of the view the indexer was made for).
__device__ __forceinline__ std::int64_t at(const Indexer& ix, std::int64_t i) {
  if (ix.ndim == 0) return 0;
  if (ix.ndim == 1) return i * ix.strides[0];
  return ix(i);
}

// An Indexer for arbitrary (sizes, strides), merged as make_indexer merges a
// view: size-1 dims dropped, d merged into d+1 when stride[d] ==
// stride[d+1] * size[d+1].
Indexer build_indexer(const Shape& sizes, const Shape& strides, const char* op) {
  Indexer ix;
  int n = 0;
  for (std::size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 1) continue;
    if (n > 0 && ix.strides[n - 1] == strides[d] * sizes[d]) {
      ix.sizes[n - 1] *= sizes[d];
      ix.strides[n - 1] = strides[d];
      continue;
    }
    SSM_CHECK(n < kMaxDims, op, "the CUDA kernels index views of at most ", kMaxDims,
              " non-mergeable dims, got sizes ", shape_str(sizes), " strides ", shape_str(strides));
    ix.sizes[n] = sizes[d];
    ix.strides[n] = strides[d];
    ++n;
  }
  ix.ndim = n;
  return ix;
}

// x as (outer, inner) rows: rows(r) is the offset of row r's first element,
// cols(j) the offset of its element j within the row.
struct Geometry {
  Indexer rows, cols;
  std::int64_t outer = 1, inner = 1;
};

Geometry geometry(const Tensor& x, const std::vector<std::int64_t>& dims, const char* op) {
  std::vector<bool> reduced(x.shape().size(), false);
  for (auto d : dims) reduced[static_cast<std::size_t>(d)] = true;
  Shape ks, kst, rs, rst;
  Geometry g;
  for (std::size_t d = 0; d < x.shape().size(); ++d) {
    if (reduced[d]) continue;
    ks.push_back(x.shape()[d]);
    kst.push_back(x.strides()[d]);
    g.outer *= x.shape()[d];
  }
  for (auto d : dims) {
    rs.push_back(x.shape()[static_cast<std::size_t>(d)]);
    rst.push_back(x.strides()[static_cast<std::size_t>(d)]);
    g.inner *= x.shape()[static_cast<std::size_t>(d)];
  }
  g.rows = build_indexer(ks, kst, op);
  g.cols = build_indexer(rs, rst, op);
  return g;
}

bool innermost_unit(const Indexer& ix) { return ix.ndim >= 1 && ix.strides[ix.ndim - 1] == 1; }

// A row reduction runs a warp per row when rows are short, a block per row
// when they are long (or when there are few rows to spread).
bool block_per_row(const Geometry& g) { return g.inner >= 1024 || (g.inner > 64 && g.outer < 512); }
constexpr int kRowsPerWarpBlock = kThreads / 32;

// Rows of the reduction handled by this thread's group (a warp when WIDTH
// is 32, the whole block when WIDTH == blockDim.x): the first row, the step,
// and the lane within the group.
template <int WIDTH>
struct RowLoop {
  std::int64_t first, step;
  int lane;
  __device__ RowLoop() {
    if constexpr (WIDTH == 32) {
      first = static_cast<std::int64_t>(blockIdx.x) * kRowsPerWarpBlock + (threadIdx.x >> 5);
      step = static_cast<std::int64_t>(gridDim.x) * kRowsPerWarpBlock;
      lane = static_cast<int>(threadIdx.x & 31);
    } else {
      first = blockIdx.x;
      step = gridDim.x;
      lane = static_cast<int>(threadIdx.x);
    }
  }
};

template <int WIDTH, class T>
__device__ __forceinline__ T group_sum(T v, T* shared) {
  if constexpr (WIDTH == 32) {
    (void)shared;
    return warp_sum(v);
  } else {
    return block_sum(v, shared);
  }
}
template <int WIDTH>
__device__ __forceinline__ float group_max(float v, float* shared) {
  if constexpr (WIDTH == 32) {
    (void)shared;
    return warp_max(v);
  } else {
    return block_max(v, shared);
  }
}

// ---------------------------------------------------------------- sum

// out[r] = sum_j x[r, j]: lane t of row r's group adds j = t, t + WIDTH, ...
// in double (the CPU accumulates long rows in double too), then the lanes
// are combined by the fixed shuffle tree of warp_sum / block_sum.
template <int WIDTH>
__global__ void sum_rows_kernel(float* out, const float* x, Indexer rows, Indexer cols,
                                std::int64_t outer, std::int64_t inner) {
  __shared__ double shared[32];
  const RowLoop<WIDTH> loop;
  for (std::int64_t r = loop.first; r < outer; r += loop.step) {
    const float* row = x + at(rows, r);
    double acc = 0.0;
    for (std::int64_t j = loop.lane; j < inner; j += WIDTH) acc += row[at(cols, j)];
    acc = group_sum<WIDTH>(acc, shared);
    if (loop.lane == 0) out[r] = static_cast<float>(acc);
  }
}

constexpr int kColOutputs = 32;  // outputs per block (threadIdx.x)
constexpr int kColLanes = 8;     // lanes over j per output (threadIdx.y)

// Column-wise sum for kept dims innermost in memory. Block (32, 8): output
// r = base + threadIdx.x, lane y adds j = j0 + y, j0 + y + 8, ... < j1 in
// double, then the 8 lane sums of a column are added in y order. With
// SPLIT, blockIdx.y covers j in [by * chunk, (by + 1) * chunk) and writes
// its sum to part[by * outer + r] (finished by sum_parts_kernel); else
// chunk >= inner and the sum goes to out[r].
template <bool SPLIT>
__global__ void sum_cols_kernel(float* out, double* part, const float* x, Indexer rows,
                                Indexer cols, std::int64_t outer, std::int64_t inner,
                                std::int64_t chunk) {
  __shared__ double shared[kColLanes][kColOutputs + 1];
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const std::int64_t j0 = static_cast<std::int64_t>(blockIdx.y) * chunk;
  const std::int64_t j1 = j0 + chunk < inner ? j0 + chunk : inner;
  for (std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * kColOutputs; base < outer;
       base += static_cast<std::int64_t>(gridDim.x) * kColOutputs) {
    const std::int64_t r = base + tx;
    double acc = 0.0;
    if (r < outer) {
      const float* p = x + at(rows, r);
      for (std::int64_t j = j0 + ty; j < j1; j += kColLanes) acc += p[at(cols, j)];
    }
    shared[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && r < outer) {
      double s = 0.0;
      for (int k = 0; k < kColLanes; ++k) s += shared[k][tx];
      if constexpr (SPLIT) {
        part[static_cast<std::int64_t>(blockIdx.y) * outer + r] = s;
      } else {
        (void)part;
        out[r] = static_cast<float>(s);
      }
    }
    __syncthreads();
  }
}

// out[r] = sum_s part[s * outer + r], s in increasing order.
__global__ void sum_parts_kernel(float* out, const double* part, std::int64_t outer,
                                 std::int64_t nsplit) {
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < outer;
       r += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    double s = 0.0;
    for (std::int64_t k = 0; k < nsplit; ++k) s += part[k * outer + r];
    out[r] = static_cast<float>(s);
  }
}

// ---------------------------------------------------------------- max

// True when candidate (bv, bi) beats (av, ai) under the CPU's rule, which
// keeps the first NaN if there is one, else the first maximum: NaN beats a
// number, a larger value wins, ties (and two NaNs) go to the lower index.
__device__ __forceinline__ bool beats(float bv, std::int64_t bi, float av, std::int64_t ai) {
  const bool an = isnan(av), bn = isnan(bv);
  if (an || bn) return bn && (!an || bi < ai);
  return bv > av || (bv == av && bi < ai);
}

__device__ __forceinline__ void warp_argmax(float& v, long long& i) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const long long oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (beats(ov, oi, v, i)) {
      v = ov;
      i = oi;
    }
  }
}

// values[r], index[r] = the max of row r and the index of its first maximum
// (first NaN if any). Lane t scans j = t, t + WIDTH, ... keeping its first
// winner; the lanes' winners are combined by `beats`, a strict order (the
// index breaks ties), so the shuffle tree's result does not depend on order.
template <int WIDTH>
__global__ void max_rows_kernel(float* values, std::int64_t* index, const float* x, Indexer rows,
                                Indexer cols, std::int64_t outer, std::int64_t inner) {
  __shared__ float shared_v[32];
  __shared__ long long shared_i[32];
  constexpr long long kNone = std::numeric_limits<long long>::max();
  const RowLoop<WIDTH> loop;
  for (std::int64_t r = loop.first; r < outer; r += loop.step) {
    const float* row = x + at(rows, r);
    float v = -INFINITY;
    long long i = kNone;
    for (std::int64_t j = loop.lane; j < inner; j += WIDTH) {
      const float xv = row[at(cols, j)];
      if (beats(xv, j, v, i)) {
        v = xv;
        i = j;
      }
    }
    warp_argmax(v, i);
    if constexpr (WIDTH != 32) {
      const int lane = loop.lane & 31, warp = loop.lane >> 5;
      __syncthreads();  // the shared arrays may still be read for the previous row
      if (lane == 0) {
        shared_v[warp] = v;
        shared_i[warp] = i;
      }
      __syncthreads();
      const int nwarps = (WIDTH + 31) >> 5;
      v = lane < nwarps ? shared_v[lane] : -INFINITY;
      i = lane < nwarps ? shared_i[lane] : kNone;
      warp_argmax(v, i);
    } else {
      (void)shared_v;
      (void)shared_i;
    }
    if (loop.lane == 0) {
      values[r] = v;
      index[r] = static_cast<std::int64_t>(i);
    }
  }
}

// grad_x[e] = grad[r] where j == argmax[r], else 0, for element e of x (row-
// major over x_shape); r = rsplit(e) (its row: kept coordinates, row-major),
// j = jsplit(e) (its index within the reduced block). Each element is written
// by exactly one thread: no scatter, no atomics.
__global__ void max_grad_kernel(float* out, const float* g, Indexer ig, const std::int64_t* ix,
                                Indexer ii, Indexer rsplit, Indexer jsplit, std::int64_t n) {
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = at(rsplit, e), j = at(jsplit, e);
    out[e] = ix[at(ii, r)] == j ? g[at(ig, r)] : 0.0f;
  }
}

// ---------------------------------------------------------------- logsumexp

// out[r] = m + log sum_j exp(x[r, j] - m), m = max_j x[r, j] (NaN ignored, as
// the CPU's `x > m ? x : m`); m not finite: out = m (all -inf, or a +inf),
// an empty row gives -inf. The exps are summed in double per lane, then by
// the fixed shuffle tree.
template <int WIDTH>
__global__ void logsumexp_rows_kernel(float* out, const float* x, Indexer rows, Indexer cols,
                                      std::int64_t outer, std::int64_t inner) {
  __shared__ float shared_m[32];
  __shared__ double shared_s[32];
  const RowLoop<WIDTH> loop;
  for (std::int64_t r = loop.first; r < outer; r += loop.step) {
    const float* row = x + at(rows, r);
    float m = -INFINITY;
    for (std::int64_t j = loop.lane; j < inner; j += WIDTH) {
      const float v = row[at(cols, j)];
      m = v > m ? v : m;
    }
    m = group_max<WIDTH>(m, shared_m);  // the same in every lane of the group
    if (!isfinite(m)) {
      if (loop.lane == 0) out[r] = m;  // -inf for an empty row too
      continue;
    }
    double acc = 0.0;
    for (std::int64_t j = loop.lane; j < inner; j += WIDTH) acc += expf(row[at(cols, j)] - m);
    const float s = static_cast<float>(group_sum<WIDTH>(acc, shared_s));
    if (loop.lane == 0) out[r] = m + logf(s);
  }
}

// grad_x[e] = exp(x[e] - out[r]) * grad[r], out and grad broadcast back over
// the reduced dims (the CPU's exp(x - out) * grad, in that order).
__global__ void logsumexp_grad_kernel(float* res, const float* x, Indexer ix, const float* out,
                                      Indexer io, const float* g, Indexer ig, std::int64_t n) {
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    res[e] = expf(x[at(ix, e)] - out[at(io, e)]) * g[at(ig, e)];
  }
}

// out[e] = g[e] through a broadcast indexer (the gradient of a sum).
__global__ void broadcast_kernel(float* out, const float* g, Indexer ig, std::int64_t n) {
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    out[e] = g[at(ig, e)];
  }
}

// t (a reduction's output, with or without keepdim) viewed with the kept
// shape (size 1 at the reduced dims), without a copy when it has either
// reduction shape.
Tensor keep_view(const Tensor& t, const Shape& x_shape, const std::vector<std::int64_t>& dims) {
  const Shape keep = reduced_shape(x_shape, dims, true);
  if (t.shape() == keep) return t;
  if (t.shape() == reduced_shape(x_shape, dims, false)) {
    Tensor v = t;
    for (auto d : dims) v = v.unsqueeze(d);  // dims ascending: each lands at its place
    return v;
  }
  return t.reshape(keep);
}

template <class Kernel32, class KernelBlock, class... Args>
void launch_rows(const Geometry& g, Kernel32 k32, KernelBlock kblock, Args... args) {
  if (block_per_row(g)) {
    kblock<<<blocks_for(g.outer, 1), kThreads>>>(args...);
  } else {
    k32<<<blocks_for(g.outer, kRowsPerWarpBlock), kThreads>>>(args...);
  }
  SSM_CUDA_CHECK_LAUNCH();
}

}  // namespace

// ---------------------------------------------------------------- sum

Tensor sum_forward(const Tensor& x, const std::vector<std::int64_t>& dims_in, bool keepdim) {
  SSM_CHECK(x.defined(), "sum", "tensor is undefined");
  require_cuda_float32("sum", {&x});
  const auto dims = normalize_dims(dims_in, x.dim(), "sum");
  Tensor out = Tensor::empty(reduced_shape(x.shape(), dims, keepdim), DType::Float32, x.device());
  if (out.numel() == 0) return out;
  const Geometry g = geometry(x, dims, "sum");
  float* po = out.data<float>();
  const float* px = x.data<float>();
  const bool columns = g.cols.ndim == 0 || (innermost_unit(g.rows) && !innermost_unit(g.cols));
  if (!columns) {
    launch_rows(g, sum_rows_kernel<32>, sum_rows_kernel<kThreads>, po, px, g.rows, g.cols, g.outer,
                g.inner);
    return out;
  }
  // Columns: split j across blocks when there are too few column blocks to
  // fill the GPU and each chunk keeps at least 256 j's.
  const dim3 block(kColOutputs, kColLanes);
  const std::int64_t col_blocks = (g.outer + kColOutputs - 1) / kColOutputs;
  const unsigned gx = blocks_for(g.outer, kColOutputs);
  std::int64_t nsplit = 1;
  if (col_blocks < 512 && g.inner >= 512) {
    const std::int64_t want = 1024 / col_blocks;
    const std::int64_t most = g.inner / 256;
    nsplit = want < most ? want : most;
    if (nsplit > 4096) nsplit = 4096;
    if (nsplit < 1) nsplit = 1;
  }
  const std::int64_t chunk = (g.inner + nsplit - 1) / nsplit;
  nsplit = g.inner > 0 ? (g.inner + chunk - 1) / chunk : 1;
  if (nsplit == 1) {
    sum_cols_kernel<false><<<dim3(gx, 1), block>>>(po, nullptr, px, g.rows, g.cols, g.outer,
                                                   g.inner, g.inner > 0 ? g.inner : 1);
    SSM_CUDA_CHECK_LAUNCH();
    return out;
  }
  Tensor part = Tensor::empty({nsplit * g.outer}, DType::Float64, x.device());
  double* pp = part.data<double>();
  sum_cols_kernel<true><<<dim3(gx, static_cast<unsigned>(nsplit)), block>>>(
      po, pp, px, g.rows, g.cols, g.outer, g.inner, chunk);
  SSM_CUDA_CHECK_LAUNCH();
  sum_parts_kernel<<<blocks_for(g.outer), kThreads>>>(po, pp, g.outer, nsplit);
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

Tensor sum_backward(const Tensor& grad, const Shape& x_shape,
                    const std::vector<std::int64_t>& dims_in, bool keepdim) {
  (void)keepdim;  // grad has the reduced shape either way
  SSM_CHECK(grad.defined(), "sum", "tensor is undefined");
  require_cuda_float32("sum", {&grad});
  const auto dims = normalize_dims(dims_in, static_cast<std::int64_t>(x_shape.size()), "sum");
  const Tensor g = keep_view(grad, x_shape, dims);
  Tensor out = Tensor::empty(x_shape, DType::Float32, grad.device());
  const std::int64_t n = out.numel();
  if (n == 0) return out;
  const Indexer ig = make_indexer(g, x_shape, "sum");
  broadcast_kernel<<<blocks_for(n), kThreads>>>(out.data<float>(), g.data<float>(), ig, n);
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

// ---------------------------------------------------------------- max

std::pair<Tensor, Tensor> max_forward(const Tensor& x, const std::vector<std::int64_t>& dims_in,
                                      bool keepdim) {
  SSM_CHECK(x.defined(), "max", "tensor is undefined");
  require_cuda_float32("max", {&x});
  const auto dims = normalize_dims(dims_in, x.dim(), "max");
  SSM_CHECK(x.numel() > 0, "max", "cannot reduce an empty tensor ", x.desc());
  const Shape out_shape = reduced_shape(x.shape(), dims, keepdim);
  Tensor values = Tensor::empty(out_shape, DType::Float32, x.device());
  Tensor index = Tensor::empty(out_shape, DType::Int64, x.device());
  const Geometry g = geometry(x, dims, "max");
  launch_rows(g, max_rows_kernel<32>, max_rows_kernel<kThreads>, values.data<float>(),
              index.data<std::int64_t>(), x.data<float>(), g.rows, g.cols, g.outer, g.inner);
  return {values, index};
}

Tensor max_backward(const Tensor& grad, const Tensor& argmax, const Shape& x_shape,
                    const std::vector<std::int64_t>& dims_in, bool keepdim) {
  (void)keepdim;
  SSM_CHECK(grad.defined() && argmax.defined(), "max", "tensor is undefined");
  require_cuda_float32("max", {&grad});
  SSM_CHECK(argmax.device() == grad.device(), "max", "argmax ", argmax.desc(),
            " is not on the gradient's device ", grad.desc());
  SSM_CHECK(argmax.dtype() == DType::Int64, "max", "argmax must be int64, got ", argmax.desc());
  const auto dims = normalize_dims(dims_in, static_cast<std::int64_t>(x_shape.size()), "max");
  // Row-major strides of an element's row (kept dims) and of its index
  // within the reduced block (reduced dims); 0 for the other kind.
  std::vector<bool> reduced(x_shape.size(), false);
  for (auto d : dims) reduced[static_cast<std::size_t>(d)] = true;
  Shape rstride(x_shape.size(), 0), jstride(x_shape.size(), 0);
  std::int64_t outer = 1, inner = 1;
  for (std::size_t k = x_shape.size(); k-- > 0;) {
    if (reduced[k]) {
      jstride[k] = inner;
      inner *= x_shape[k];
    } else {
      rstride[k] = outer;
      outer *= x_shape[k];
    }
  }
  SSM_CHECK(grad.numel() == outer && argmax.numel() == outer, "max", "gradient ", grad.desc(),
            " and argmax ", argmax.desc(), " do not match the reduction of ", shape_str(x_shape));
  Tensor out = Tensor::empty(x_shape, DType::Float32, grad.device());
  const std::int64_t n = out.numel();
  if (n == 0) return out;
  const Indexer rsplit = build_indexer(x_shape, rstride, "max");
  const Indexer jsplit = build_indexer(x_shape, jstride, "max");
  const Indexer ig = make_indexer(grad, "max"), ii = make_indexer(argmax, "max");
  max_grad_kernel<<<blocks_for(n), kThreads>>>(out.data<float>(), grad.data<float>(), ig,
                                               argmax.data<std::int64_t>(), ii, rsplit, jsplit, n);
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

// ---------------------------------------------------------------- logsumexp

Tensor logsumexp_forward(const Tensor& x, const std::vector<std::int64_t>& dims_in, bool keepdim) {
  SSM_CHECK(x.defined(), "logsumexp", "tensor is undefined");
  require_cuda_float32("logsumexp", {&x});
  const auto dims = normalize_dims(dims_in, x.dim(), "logsumexp");
  Tensor out = Tensor::empty(reduced_shape(x.shape(), dims, keepdim), DType::Float32, x.device());
  if (out.numel() == 0) return out;
  const Geometry g = geometry(x, dims, "logsumexp");
  launch_rows(g, logsumexp_rows_kernel<32>, logsumexp_rows_kernel<kThreads>, out.data<float>(),
              x.data<float>(), g.rows, g.cols, g.outer, g.inner);
  return out;
}

Tensor logsumexp_backward(const Tensor& grad, const Tensor& x, const Tensor& out,
                          const std::vector<std::int64_t>& dims_in, bool keepdim) {
  (void)keepdim;
  SSM_CHECK(grad.defined() && x.defined() && out.defined(), "logsumexp", "tensor is undefined");
  require_cuda_float32("logsumexp", {&grad, &x, &out});
  const auto dims = normalize_dims(dims_in, x.dim(), "logsumexp");
  const Tensor o = keep_view(out, x.shape(), dims), g = keep_view(grad, x.shape(), dims);
  Tensor res = Tensor::empty(x.shape(), DType::Float32, x.device());
  const std::int64_t n = res.numel();
  if (n == 0) return res;
  const Indexer ix = make_indexer(x, "logsumexp");
  const Indexer io = make_indexer(o, x.shape(), "logsumexp");
  const Indexer ig = make_indexer(g, x.shape(), "logsumexp");
  logsumexp_grad_kernel<<<blocks_for(n), kThreads>>>(res.data<float>(), x.data<float>(), ix,
                                                     o.data<float>(), io, g.data<float>(), ig, n);
  SSM_CUDA_CHECK_LAUNCH();
  return res;
}

}  // namespace ssm::kernels::cuda
