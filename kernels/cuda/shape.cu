// CUDA shape kernels: cat, constant pad, index_select, gather, embedding
// (float32 data; int32 or int64 indices). The semantics, checks and messages
// are kernels/cpu/shape.cpp's, which stays the oracle.
//
// Layout: as on the CPU, every kernel views its tensors as (outer, size,
// inner) around the dim it works on. Inputs may be any view (transposed,
// broadcast, negative strides): they are read through an Indexer of their
// row-major order, never copied to a contiguous buffer. Outputs are fresh
// contiguous tensors; one thread per output element, grid-stride loops.
//
// Index checks: the forward passes find the first out-of-range index on the
// device (an integer atomicMin of its position, so the same one the CPU
// reports) and copy 8 bytes back; the backward passes copy the indices to the
// host anyway (see below) and check them there.
//
// Deterministic scatter-adds, no atomics:
// - index_select / embedding backward: the indices are copied to the host and
//   grouped by the row they point at (a stable counting sort, the CPU's
//   group_by_row: for row v, order[start[v] .. start[v + 1]) lists the
//   positions j with index[j] = v, ascending), uploaded, and one thread per
//   element (o, v, i) of the gradient sums grad[o, order[k], i] over its
//   group in that order.
// - gather backward: one thread per column (o, i) of the gradient walks j in
//   order and adds grad[o, j, i] into gx[o, index[o, j, i], i]; every target
//   of that walk lies in the thread's own column, so nothing races.
// Both sum in the CPU's order, so they match the CPU bit for bit.
#include <climits>
#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/shape.h"

namespace ssm::kernels::cuda {

namespace {

__device__ inline std::int64_t global_thread() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline std::int64_t grid_threads() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

// (outer, size, inner) around dim.
struct Around {
  std::int64_t outer = 1, size = 1, inner = 1;
};

Around around(const Shape& shape, std::int64_t dim) {
  Around a;
  for (std::int64_t d = 0; d < static_cast<std::int64_t>(shape.size()); ++d) {
    if (d < dim)
      a.outer *= shape[d];
    else if (d == dim)
      a.size = shape[d];
    else
      a.inner *= shape[d];
  }
  return a;
}

std::string dim_where(std::int64_t dim, std::int64_t size, const Shape& shape) {
  return "dim " + std::to_string(dim) + " of size " + std::to_string(size) + " (input " +
         shape_str(shape) + ")";
}

std::string table_where(const Tensor& weight_or_null, std::int64_t rows) {
  return "an embedding table of " + std::to_string(rows) + " rows" +
         (weight_or_null.defined() ? " (weight " + weight_or_null.desc() + ")" : "");
}

// A zero-filled contiguous float32 tensor on `device` (a memset on the
// default stream, not a fill staged through the host).
Tensor zeros_f32(const Shape& shape, Device device) {
  Tensor t = Tensor::empty(shape, DType::Float32, device);
  if (t.numel() > 0) {
    SSM_CUDA_CHECK(
        cudaMemsetAsync(t.raw_data(), 0, static_cast<std::size_t>(t.numel()) * sizeof(float)));
  }
  return t;
}

// The index tensor is int32 or int64 (the message of dispatch_index) and on
// the device of `data` (a float32 CUDA tensor already checked).
void check_index(const char* op, const Tensor& index, const Tensor& data) {
  SSM_CHECK(index.defined(), op, "index is undefined");
  SSM_CHECK(index.device() == data.device(), op, "tensors on different devices: ", data.desc(),
            " and ", index.desc());
  SSM_CHECK(index.dtype() == DType::Int32 || index.dtype() == DType::Int64, op,
            "expected an int32 or int64 index tensor, got ", dtype_name(index.dtype()));
}

// ------------------------------------------------------------ index range check

// first = min { i : index[i] outside [0, size) } (stays ULLONG_MAX when none).
// An integer atomicMin: the result does not depend on timing.
template <class I>
__global__ void first_bad_index_kernel(const I* index, Indexer ii, std::int64_t n,
                                       std::int64_t size, unsigned long long* first) {
  for (std::int64_t i = global_thread(); i < n; i += grid_threads()) {
    const auto v = static_cast<std::int64_t>(index[ii(i)]);
    if (v < 0 || v >= size) atomicMin(first, static_cast<unsigned long long>(i));
  }
}

template <class I>
void check_range_device_t(const char* op, const Tensor& index, std::int64_t size,
                          const std::string& where) {
  const std::int64_t n = index.numel();
  if (n == 0) return;
  const Indexer ii = make_indexer(index, op);
  const Tensor first = Tensor::empty({1}, DType::Int64, index.device());
  auto* pf = static_cast<unsigned long long*>(first.raw_data());
  SSM_CUDA_CHECK(cudaMemsetAsync(pf, 0xff, sizeof(unsigned long long)));
  first_bad_index_kernel<I><<<blocks_for(n), kThreads>>>(index.data<I>(), ii, n, size, pf);
  SSM_CUDA_CHECK_LAUNCH();
  unsigned long long pos = 0;
  SSM_CUDA_CHECK(cudaMemcpy(&pos, pf, sizeof(pos), cudaMemcpyDeviceToHost));
  if (pos == ULLONG_MAX) return;
  I v{};
  SSM_CUDA_CHECK(cudaMemcpy(&v, index.data<I>() + ii(static_cast<std::int64_t>(pos)), sizeof(I),
                            cudaMemcpyDeviceToHost));
  fail(op, "index ", static_cast<std::int64_t>(v), " is out of range for ", where);
}

// Throws "[op] index v is out of range for <where>" for the first index (in
// row-major order) outside [0, size), as the CPU does.
void check_range_device(const char* op, const Tensor& index, std::int64_t size,
                        const std::string& where) {
  if (index.dtype() == DType::Int64) {
    check_range_device_t<std::int64_t>(op, index, size, where);
  } else {
    check_range_device_t<std::int32_t>(op, index, size, where);
  }
}

// The same check on host values.
void check_range_host(const char* op, const std::vector<std::int64_t>& index, std::int64_t size,
                      const std::string& where) {
  for (const std::int64_t v : index) {
    SSM_CHECK(v >= 0 && v < size, op, "index ", v, " is out of range for ", where);
  }
}

// ------------------------------------------------------------ row groups (host)

// The CPU's group_by_row: for row v, order[start[v] .. start[v + 1]) lists
// the j with index[j] = v, ascending (a stable counting sort); entries equal
// to `skip` are left out.
struct RowGroups {
  std::vector<std::int64_t> start, order;
};

RowGroups group_by_row(const std::vector<std::int64_t>& index, std::int64_t rows,
                       std::int64_t skip) {
  RowGroups g;
  g.start.assign(static_cast<std::size_t>(rows) + 1, 0);
  for (const std::int64_t v : index) {
    if (v != skip) ++g.start[static_cast<std::size_t>(v) + 1];
  }
  for (std::int64_t v = 0; v < rows; ++v) {
    g.start[static_cast<std::size_t>(v) + 1] += g.start[static_cast<std::size_t>(v)];
  }
  g.order.resize(static_cast<std::size_t>(g.start.back()));
  std::vector<std::int64_t> next(g.start.begin(), g.start.end() - 1);
  for (std::size_t j = 0; j < index.size(); ++j) {
    const std::int64_t v = index[j];
    if (v != skip)
      g.order[static_cast<std::size_t>(next[static_cast<std::size_t>(v)]++)] =
          static_cast<std::int64_t>(j);
  }
  return g;
}

Tensor upload(const std::vector<std::int64_t>& v, Device device) {
  return Tensor::from_vector<std::int64_t>(v, {static_cast<std::int64_t>(v.size())}).to(device);
}

// gx[o, v, i] = sum_{k in [start[v], start[v + 1])} g[o, order[k], i], k ascending:
// the scatter-add of index_select and embedding backward. g is read through
// its indexer as (outer, n, inner); gx (outer, rows, inner) is contiguous and
// every element is written (total = outer rows inner).
__global__ void scatter_rows_kernel(const float* g, Indexer gi, const std::int64_t* start,
                                    const std::int64_t* order, float* gx, std::int64_t total,
                                    std::int64_t n, std::int64_t rows, std::int64_t inner) {
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t i = t % inner, q = t / inner;
    const std::int64_t v = q % rows, o = q / rows;
    float acc = 0.0f;
    for (std::int64_t k = start[v]; k < start[v + 1]; ++k) {
      acc += g[gi((o * n + order[k]) * inner + i)];
    }
    gx[t] = acc;
  }
}

// The same sums with one block per (o, v) row of gx and its threads over the
// inner elements (inner >= 32, g contiguous): no per-element index divisions.
__global__ void scatter_whole_rows_kernel(const float* g, const std::int64_t* start,
                                          const std::int64_t* order, float* gx, std::int64_t outer,
                                          std::int64_t n, std::int64_t rows, std::int64_t inner) {
  for (std::int64_t q = blockIdx.x; q < outer * rows; q += gridDim.x) {
    const std::int64_t v = q % rows, o = q / rows;
    const std::int64_t k0 = start[v], k1 = start[v + 1];
    float* out = gx + q * inner;
    for (std::int64_t i = threadIdx.x; i < inner; i += blockDim.x) {
      float acc = 0.0f;
      for (std::int64_t k = k0; k < k1; ++k) acc += g[(o * n + order[k]) * inner + i];
      out[i] = acc;
    }
  }
}

void launch_scatter_rows(const Tensor& g, const RowGroups& groups, Tensor& gx, std::int64_t outer,
                         std::int64_t n, std::int64_t rows, std::int64_t inner, const char* op) {
  const std::int64_t total = outer * rows * inner;
  if (total == 0) return;
  const Tensor start = upload(groups.start, g.device());
  const Tensor order = upload(groups.order, g.device());
  const std::int64_t* po = groups.order.empty() ? nullptr : order.data<std::int64_t>();
  if (inner >= 32) {
    const Tensor gc = g.contiguous();  // (outer, n, inner)
    scatter_whole_rows_kernel<<<blocks_for(outer * rows, 1), kThreads>>>(
        gc.data<float>(), start.data<std::int64_t>(), po, gx.data<float>(), outer, n, rows, inner);
    SSM_CUDA_CHECK_LAUNCH();
    return;
  }
  const Indexer gi = make_indexer(g, op);
  scatter_rows_kernel<<<blocks_for(total), kThreads>>>(
      g.data<float>(), gi, start.data<std::int64_t>(), po, gx.data<float>(), total, n, rows, inner);
  SSM_CUDA_CHECK_LAUNCH();
}

// ------------------------------------------------------------ kernels

// out[o, off + j, i] = x[o, j, i] for one piece x (outer, s, inner) of out
// (outer, total, inner); s_inner = s inner, out_inner = total inner, off_inner = off inner.
__global__ void cat_piece_kernel(const float* x, Indexer xi, float* out, std::int64_t n,
                                 std::int64_t s_inner, std::int64_t out_inner,
                                 std::int64_t off_inner) {
  for (std::int64_t t = global_thread(); t < n; t += grid_threads()) {
    const std::int64_t o = t / s_inner, r = t - o * s_inner;
    out[o * out_inner + off_inner + r] = x[xi(t)];
  }
}

// The padded geometry: out coordinate c of dim d reads x coordinate c - lo[d]
// when it lies in [0, x_size[d]), else the pad value. Unpadded dims that x
// stores mergeably are merged.
struct PadGeometry {
  int nd = 0;
  std::int64_t out_size[kMaxDims] = {};
  std::int64_t lo[kMaxDims] = {};
  std::int64_t x_size[kMaxDims] = {};
  std::int64_t x_stride[kMaxDims] = {};
};

// out[..., p, ...] = x[..., p - lo, ...] where inside x in every dim, else value.
__global__ void pad_kernel(const float* x, PadGeometry g, float value, float* out, std::int64_t n) {
  for (std::int64_t t = global_thread(); t < n; t += grid_threads()) {
    std::int64_t rem = t, off = 0;
    bool inside = true;
    for (int d = g.nd - 1; d >= 0; --d) {
      const std::int64_t c = rem % g.out_size[d];
      rem /= g.out_size[d];
      const std::int64_t s = c - g.lo[d];
      inside = inside && s >= 0 && s < g.x_size[d];
      off += s * g.x_stride[d];
    }
    out[t] = inside ? x[off] : value;
  }
}

// out[o, j, i] = x[o, index[j], i]; x read through its indexer as (outer, size, inner).
template <class I>
__global__ void index_select_kernel(const float* x, Indexer xi, const I* index, Indexer ii,
                                    float* out, std::int64_t total, std::int64_t n,
                                    std::int64_t size, std::int64_t inner) {
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t i = t % inner, q = t / inner;
    const std::int64_t j = q % n, o = q / n;
    const auto v = static_cast<std::int64_t>(index[ii(j)]);
    out[t] = x[xi((o * size + v) * inner + i)];
  }
}

// out[o, j, i] = x[o, index[o, j, i], i] over index's extents; xr is the
// indexer of x's region (index's shape with x's size at dim).
template <class I>
__global__ void gather_kernel(const float* x, Indexer xr, const I* index, Indexer ii, float* out,
                              std::int64_t total, std::int64_t n, std::int64_t size,
                              std::int64_t inner) {
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t i = t % inner, o = t / inner / n;
    const auto v = static_cast<std::int64_t>(index[ii(t)]);
    out[t] = x[xr((o * size + v) * inner + i)];
  }
}

// One thread per column c = (o, i): for j = 0, 1, ..., n - 1 in order,
// gx[o, index[o, j, i], i] += g[o, j, i]. gx is zeroed; gr is the indexer of
// its region (outer, size, inner). Every write of a thread stays in its own
// column, so the sums need no atomics and run in the CPU's order.
template <class I>
__global__ void gather_backward_kernel(const float* g, Indexer gi, const I* index, Indexer ii,
                                       float* gx, Indexer gr, std::int64_t columns, std::int64_t n,
                                       std::int64_t size, std::int64_t inner) {
  for (std::int64_t c = global_thread(); c < columns; c += grid_threads()) {
    const std::int64_t o = c / inner, i = c % inner;
    for (std::int64_t j = 0; j < n; ++j) {
      const std::int64_t e = (o * n + j) * inner + i;
      const auto v = static_cast<std::int64_t>(index[ii(e)]);
      gx[gr((o * size + v) * inner + i)] += g[gi(e)];
    }
  }
}

// out[k, c] = w[index[k], c]; w read through its indexer as (rows, d).
template <class I>
__global__ void embedding_kernel(const I* index, Indexer ii, const float* w, Indexer wi, float* out,
                                 std::int64_t total, std::int64_t d) {
  for (std::int64_t t = global_thread(); t < total; t += grid_threads()) {
    const std::int64_t k = t / d, c = t % d;
    const auto v = static_cast<std::int64_t>(index[ii(k)]);
    out[t] = w[wi(v * d + c)];
  }
}

template <class I>
void launch_index_select(const Tensor& x, const Tensor& index, Tensor& out, const Around& a,
                         std::int64_t n, const char* op) {
  const Indexer xi = make_indexer(x, op), ii = make_indexer(index, op);
  const std::int64_t total = out.numel();
  index_select_kernel<I><<<blocks_for(total), kThreads>>>(
      x.data<float>(), xi, index.data<I>(), ii, out.data<float>(), total, n, a.size, a.inner);
  SSM_CUDA_CHECK_LAUNCH();
}

template <class I>
void launch_gather(const Tensor& region, const Tensor& index, Tensor& out, const Around& a,
                   std::int64_t n, const char* op) {
  const Indexer xr = make_indexer(region, op), ii = make_indexer(index, op);
  const std::int64_t total = out.numel();
  gather_kernel<I><<<blocks_for(total), kThreads>>>(region.data<float>(), xr, index.data<I>(), ii,
                                                    out.data<float>(), total, n, a.size, a.inner);
  SSM_CUDA_CHECK_LAUNCH();
}

template <class I>
void launch_gather_backward(const Tensor& grad, const Tensor& index, Tensor& gx,
                            const Tensor& gx_region, const Around& a, std::int64_t n,
                            const char* op) {
  const Indexer gi = make_indexer(grad, op), ii = make_indexer(index, op);
  const Indexer gr = make_indexer(gx_region, op);
  const std::int64_t columns = a.outer * a.inner;
  gather_backward_kernel<I>
      <<<blocks_for(columns), kThreads>>>(grad.data<float>(), gi, index.data<I>(), ii,
                                          gx.data<float>(), gr, columns, n, a.size, a.inner);
  SSM_CUDA_CHECK_LAUNCH();
}

// One block per token: its row index read once, the row copied by the
// block's threads (four floats per load when rows are 16-byte aligned).
// weight contiguous (V, d).
template <class I>
__global__ void embedding_rows_kernel(const I* index, Indexer ii, const float* w, float* out,
                                      std::int64_t tokens, std::int64_t d, bool vec) {
  for (std::int64_t k = blockIdx.x; k < tokens; k += gridDim.x) {
    const auto v = static_cast<std::int64_t>(index[ii(k)]);
    const float* src = w + v * d;
    float* dst = out + k * d;
    if (vec) {
      for (std::int64_t j = threadIdx.x; j < d / 4; j += blockDim.x) {
        reinterpret_cast<float4*>(dst)[j] = reinterpret_cast<const float4*>(src)[j];
      }
    } else {
      for (std::int64_t j = threadIdx.x; j < d; j += blockDim.x) dst[j] = src[j];
    }
  }
}

template <class I>
void launch_embedding(const Tensor& indices, const Tensor& weight, Tensor& out, std::int64_t d,
                      const char* op) {
  const Indexer ii = make_indexer(indices, op), wi = make_indexer(weight, op);
  const std::int64_t total = out.numel();
  if (d >= 32 && weight.is_contiguous()) {
    const float* w = weight.data<float>();
    const bool vec = d % 4 == 0 && reinterpret_cast<std::uintptr_t>(w) % 16 == 0;
    const std::int64_t tokens = total / d;
    embedding_rows_kernel<I><<<blocks_for(tokens, 1), kThreads / 2>>>(
        indices.data<I>(), ii, w, out.data<float>(), tokens, d, vec);
    SSM_CUDA_CHECK_LAUNCH();
    return;
  }
  embedding_kernel<I><<<blocks_for(total), kThreads>>>(indices.data<I>(), ii, weight.data<float>(),
                                                       wi, out.data<float>(), total, d);
  SSM_CUDA_CHECK_LAUNCH();
}

// The geometry of gather (the CPU's): index (outer, n, inner) against x
// restricted to index's extents in every dim but dim, i.e. (outer, size, inner).
struct GatherGeometry {
  Around a;
  std::int64_t n = 0;
  Shape x_region;  // index.shape with x's size at dim
};

GatherGeometry gather_geometry(const Shape& x_shape, std::int64_t dim, const Shape& index_shape) {
  GatherGeometry g;
  g.x_region = index_shape;
  g.x_region[static_cast<std::size_t>(dim)] = x_shape[static_cast<std::size_t>(dim)];
  g.a = around(g.x_region, dim);
  g.n = index_shape[static_cast<std::size_t>(dim)];
  return g;
}

}  // namespace

// ---------------------------------------------------------------- cat

// out[o, off_k + j, i] = xs[k][o, j, i]: one launch per non-empty piece.
Tensor cat_forward(const std::vector<Tensor>& xs, std::int64_t dim) {
  const char* op = "cat";
  SSM_CHECK(!xs.empty(), op, "expected at least one tensor");
  for (const Tensor& x : xs) require_cuda_float32(op, {&xs[0], &x});
  dim = wrap_dim(dim, xs[0].dim(), op);
  Shape out_shape = xs[0].shape();
  out_shape[static_cast<std::size_t>(dim)] = 0;
  for (const Tensor& x : xs) out_shape[static_cast<std::size_t>(dim)] += x.shape()[dim];
  Tensor out = Tensor::empty(out_shape, DType::Float32, xs[0].device());
  if (out.numel() == 0) return out;
  const Around a = around(out_shape, dim);
  std::int64_t off = 0;
  for (const Tensor& x : xs) {
    const std::int64_t s = x.shape()[dim], n = x.numel();
    if (n > 0) {
      const Indexer xi = make_indexer(x, op);
      cat_piece_kernel<<<blocks_for(n), kThreads>>>(x.data<float>(), xi, out.data<float>(), n,
                                                    s * a.inner, a.size * a.inner, off * a.inner);
      SSM_CUDA_CHECK_LAUNCH();
    }
    off += s;
  }
  return out;
}

// ---------------------------------------------------------------- pad

// out[..., p] = x[..., p - left] where 0 <= p - left < x.size, else value,
// for every padded dim (PyTorch F.pad, mode "constant"); one pass.
Tensor pad_forward(const Tensor& x, const std::vector<std::int64_t>& pads, double value) {
  const char* op = "pad";
  require_cuda_float32(op, {&x});
  const std::int64_t nd = x.dim();
  SSM_CHECK(pads.size() % 2 == 0 && static_cast<std::int64_t>(pads.size()) <= 2 * nd, op,
            "expected an even number of pads, at most 2 per dim (", 2 * nd, " for ", x.desc(),
            "), got ", pads.size(), ": ", shape_str(pads));
  Shape lo(static_cast<std::size_t>(nd), 0), hi(static_cast<std::size_t>(nd), 0);
  for (std::size_t k = 0; k < pads.size() / 2; ++k) {
    lo[static_cast<std::size_t>(nd - 1) - k] = pads[2 * k];
    hi[static_cast<std::size_t>(nd - 1) - k] = pads[2 * k + 1];
  }
  Shape out_shape = x.shape();
  for (std::int64_t d = 0; d < nd; ++d) {
    const auto u = static_cast<std::size_t>(d);
    out_shape[u] += lo[u] + hi[u];
    SSM_CHECK(out_shape[u] >= 0, op, "pads ", shape_str(pads), " give dim ", d, " of ", x.desc(),
              " the negative size ", out_shape[u]);
  }
  Tensor out = Tensor::empty(out_shape, DType::Float32, x.device());
  const std::int64_t n = out.numel();
  if (n == 0) return out;
  // Drop size-1 unpadded dims; merge an unpadded dim into the previous
  // unpadded one when x stores them as one.
  PadGeometry g;
  std::int64_t prev_hi = 0;
  for (std::int64_t d = 0; d < nd; ++d) {
    const auto u = static_cast<std::size_t>(d);
    const std::int64_t os = out_shape[u], l = lo[u], h = hi[u];
    const std::int64_t xs = x.shape()[u], st = x.strides()[u];
    if (os == 1 && l == 0 && h == 0) continue;
    if (g.nd > 0 && l == 0 && h == 0 && g.lo[g.nd - 1] == 0 && prev_hi == 0 &&
        g.x_stride[g.nd - 1] == st * xs) {
      g.out_size[g.nd - 1] *= os;
      g.x_size[g.nd - 1] *= xs;
      g.x_stride[g.nd - 1] = st;
      continue;
    }
    SSM_CHECK(g.nd < kMaxDims, op, "the CUDA kernel pads views of at most ", kMaxDims,
              " non-mergeable dims, got ", x.desc(), " with pads ", shape_str(pads));
    g.out_size[g.nd] = os;
    g.lo[g.nd] = l;
    g.x_size[g.nd] = xs;
    g.x_stride[g.nd] = st;
    prev_hi = h;
    ++g.nd;
  }
  pad_kernel<<<blocks_for(n), kThreads>>>(x.data<float>(), g, static_cast<float>(value),
                                          out.data<float>(), n);
  SSM_CUDA_CHECK_LAUNCH();
  return out;
}

// ---------------------------------------------------------------- index_select

// out[o, j, i] = x[o, index[j], i] (torch.index_select).
Tensor index_select_forward(const Tensor& x, std::int64_t dim, const Tensor& index) {
  const char* op = "index_select";
  require_cuda_float32(op, {&x});
  check_index(op, index, x);
  dim = wrap_dim(dim, x.dim(), op);
  const Around a = around(x.shape(), dim);
  check_range_device(op, index, a.size, dim_where(dim, a.size, x.shape()));
  const std::int64_t n = index.numel();
  Shape out_shape = x.shape();
  out_shape[static_cast<std::size_t>(dim)] = n;
  Tensor out = Tensor::empty(out_shape, DType::Float32, x.device());
  if (out.numel() == 0) return out;
  if (index.dtype() == DType::Int64) {
    launch_index_select<std::int64_t>(x, index, out, a, n, op);
  } else {
    launch_index_select<std::int32_t>(x, index, out, a, n, op);
  }
  return out;
}

// gx[o, v, i] = sum over the j with index[j] = v of grad[o, j, i], j in order
// (host-built row groups, one thread per element of gx).
Tensor index_select_backward(const Tensor& grad, const Shape& x_shape, std::int64_t dim,
                             const Tensor& index) {
  const char* op = "index_select";
  require_cuda_float32(op, {&grad});
  check_index(op, index, grad);
  dim = wrap_dim(dim, static_cast<std::int64_t>(x_shape.size()), op);
  const std::vector<std::int64_t> idx = index.to_vector<std::int64_t>();
  const Around a = around(x_shape, dim);
  check_range_host(op, idx, a.size, dim_where(dim, a.size, x_shape));
  const auto n = static_cast<std::int64_t>(idx.size());
  if (n == 0) return zeros_f32(x_shape, grad.device());
  Tensor gx = Tensor::empty(x_shape, DType::Float32, grad.device());  // (outer, size, inner)
  if (gx.numel() == 0) return gx;
  const RowGroups groups = group_by_row(idx, a.size, -1);
  launch_scatter_rows(grad, groups, gx, a.outer, n, a.size, a.inner, op);
  return gx;
}

// ---------------------------------------------------------------- gather

// out[o, j, i] = x[o, index[o, j, i], i] (torch.gather), over index's extents.
Tensor gather_forward(const Tensor& x, std::int64_t dim, const Tensor& index) {
  const char* op = "gather";
  require_cuda_float32(op, {&x});
  check_index(op, index, x);
  dim = wrap_dim(dim, x.dim(), op);
  const GatherGeometry geo = gather_geometry(x.shape(), dim, index.shape());
  check_range_device(op, index, geo.a.size, dim_where(dim, geo.a.size, x.shape()));
  Tensor out = Tensor::empty(index.shape(), DType::Float32, x.device());
  if (out.numel() == 0) return out;
  // The region of x that index can reach, as a view: (outer, size, inner).
  const Tensor region = make_view(x, geo.x_region, x.strides(), x.offset());
  if (index.dtype() == DType::Int64) {
    launch_gather<std::int64_t>(region, index, out, geo.a, geo.n, op);
  } else {
    launch_gather<std::int32_t>(region, index, out, geo.a, geo.n, op);
  }
  return out;
}

// gx[o, index[o, j, i], i] += grad[o, j, i], j in order; a thread owns the column (o, i).
Tensor gather_backward(const Tensor& grad, const Shape& x_shape, std::int64_t dim,
                       const Tensor& index) {
  const char* op = "gather";
  require_cuda_float32(op, {&grad});
  check_index(op, index, grad);
  dim = wrap_dim(dim, static_cast<std::int64_t>(x_shape.size()), op);
  const GatherGeometry geo = gather_geometry(x_shape, dim, index.shape());
  check_range_device(op, index, geo.a.size, dim_where(dim, geo.a.size, x_shape));
  Tensor gx = zeros_f32(x_shape, grad.device());
  const Tensor gx_region = make_view(gx, geo.x_region, gx.strides(), 0);
  if (gx_region.numel() == 0 || geo.n == 0) return gx;
  if (index.dtype() == DType::Int64) {
    launch_gather_backward<std::int64_t>(grad, index, gx, gx_region, geo.a, geo.n, op);
  } else {
    launch_gather_backward<std::int32_t>(grad, index, gx, gx_region, geo.a, geo.n, op);
  }
  return gx;
}

// ---------------------------------------------------------------- embedding

// out[n, :] = weight[indices[n], :] (torch.nn.functional.embedding).
Tensor embedding_forward(const Tensor& indices, const Tensor& weight) {
  const char* op = "embedding";
  require_cuda_float32(op, {&weight});
  check_index(op, indices, weight);
  const std::int64_t rows = weight.shape()[0], d = weight.shape()[1];
  check_range_device(op, indices, rows, table_where(weight, rows));
  Shape out_shape = indices.shape();
  out_shape.push_back(d);
  Tensor out = Tensor::empty(out_shape, DType::Float32, weight.device());
  if (out.numel() == 0) return out;
  if (indices.dtype() == DType::Int64) {
    launch_embedding<std::int64_t>(indices, weight, out, d, op);
  } else {
    launch_embedding<std::int32_t>(indices, weight, out, d, op);
  }
  return out;
}

// gw[v, :] = sum_{n : indices[n] = v, v != padding_idx} grad[n, :], n in
// order (host-built row groups, one thread per element of gw).
Tensor embedding_backward(const Tensor& grad, const Tensor& indices, std::int64_t num_embeddings,
                          std::int64_t padding_idx) {
  const char* op = "embedding";
  require_cuda_float32(op, {&grad});
  check_index(op, indices, grad);
  const std::vector<std::int64_t> idx = indices.to_vector<std::int64_t>();
  check_range_host(op, idx, num_embeddings, table_where(Tensor(), num_embeddings));
  const std::int64_t d = grad.dim() > 0 ? grad.shape().back() : 1;
  const auto n = static_cast<std::int64_t>(idx.size());
  if (n == 0 || d == 0) return zeros_f32({num_embeddings, d}, grad.device());
  Tensor gw = Tensor::empty({num_embeddings, d}, DType::Float32, grad.device());  // (V, D)
  const RowGroups groups = group_by_row(idx, num_embeddings, padding_idx < 0 ? -1 : padding_idx);
  launch_scatter_rows(grad, groups, gw, 1, n, num_embeddings, d, op);
  return gw;
}

}  // namespace ssm::kernels::cuda
