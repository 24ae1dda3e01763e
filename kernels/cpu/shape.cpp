// CPU shape kernels: cat, constant pad, index_select, gather, embedding.
//
// Layout: every kernel views its tensors as (outer, size, inner) around the
// dim it works on (outer = product of the sizes before dim, inner = product
// of the sizes after), so that the innermost loop runs over `inner`
// contiguous elements. Forward copies move bytes (any dtype); backward
// scatter-adds need arithmetic (float32, float64).
//
// Gradient rule: backward kernels return fresh gradient tensors (=); the
// tape does the accumulation. Scatter-adds are deterministic: every output
// element is owned by one thread and sums its contributions in index order
// (no atomics, no races), so repeated indices give the same bits on every run.
#include "kernels/shape.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/dispatch.h"
#include "kernels/common.h"
#include "kernels/cuda/shape.h"

namespace ssm::kernels {

namespace {

// Work (elements) above which a kernel runs its rows on OpenMP threads.
constexpr std::int64_t kParallelWork = 32768;
// Column block of gather's scatter-add: one task owns inner[i0, i1) of a row.
constexpr std::int64_t kBlock = 1024;

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

// The values of an int32/int64 index tensor, row-major, as int64.
std::vector<std::int64_t> read_indices(const Tensor& index, const char* op) {
  const Tensor c = index.contiguous();
  std::vector<std::int64_t> v(static_cast<std::size_t>(c.numel()));
  dispatch_index(c.dtype(), op, [&](auto tag) {
    using I = typename decltype(tag)::type;
    const I* p = c.data<I>();
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::int64_t>(p[i]);
  });
  return v;
}

// Throws "[op] index v is out of range for <where>" unless 0 <= v < size.
// Runs before any parallel loop, so that no thread ever throws.
void check_range(const char* op, const std::vector<std::int64_t>& index, std::int64_t size,
                 const std::string& where) {
  for (const std::int64_t v : index) {
    SSM_CHECK(v >= 0 && v < size, op, "index ", v, " is out of range for ", where);
  }
}

std::string dim_where(std::int64_t dim, std::int64_t size, const Shape& shape) {
  return "dim " + std::to_string(dim) + " of size " + std::to_string(size) + " (input " +
         shape_str(shape) + ")";
}

// The positions j of an index grouped by the row they point at: for row v,
// order[start[v] .. start[v + 1]) lists the j with index[j] = v, ascending
// (a stable counting sort). Entries equal to `skip` are left out. This gives
// the scatter-adds one owner per target row and a fixed summation order.
struct RowGroups {
  std::vector<std::int64_t> start, order;
};

RowGroups group_by_row(const std::vector<std::int64_t>& index, std::int64_t rows,
                       std::int64_t skip) {
  RowGroups g;
  g.start.assign(static_cast<std::size_t>(rows) + 1, 0);
  for (const std::int64_t v : index) {
    if (v != skip) ++g.start[v + 1];
  }
  for (std::int64_t v = 0; v < rows; ++v) g.start[v + 1] += g.start[v];
  g.order.resize(static_cast<std::size_t>(g.start.back()));
  std::vector<std::int64_t> next(g.start.begin(), g.start.end() - 1);
  for (std::size_t j = 0; j < index.size(); ++j) {
    const std::int64_t v = index[j];
    if (v != skip) g.order[next[v]++] = static_cast<std::int64_t>(j);
  }
  return g;
}

// gx[o, v, :] = sum_{k in group v} g[o, order[k], :] for every (o, v): the
// scatter-add of index_select and embedding. g is (outer, n, inner), gx
// (outer, rows, inner), both contiguous; every row of gx is written (zeroed
// by its owner first, so gx may come from Tensor::empty: one pass, not two).
// One task owns one (o, v) row; dynamic scheduling because groups are skewed
// (frequent tokens).
template <class T>
void scatter_rows(const T* g, T* gx, const RowGroups& groups, std::int64_t outer, std::int64_t n,
                  std::int64_t rows, std::int64_t inner) {
  const bool parallel = outer * n * inner > kParallelWork && outer * rows > 1;
#pragma omp parallel for schedule(dynamic, 16) if (parallel)
  for (std::int64_t t = 0; t < outer * rows; ++t) {
    const std::int64_t o = t / rows, v = t % rows;
    T* dst = gx + t * inner;
    std::fill(dst, dst + inner, T(0));
    for (std::int64_t k = groups.start[v]; k < groups.start[v + 1]; ++k) {
      const T* src = g + (o * n + groups.order[k]) * inner;
      for (std::int64_t i = 0; i < inner; ++i) dst[i] += src[i];
    }
  }
}

}  // namespace

// ---------------------------------------------------------------- cat

// out[o, off_k + j, i] = xs[k][o, j, i], off_k = sum_{m < k} xs[m].size(dim).
Tensor cat_forward(const std::vector<Tensor>& xs, std::int64_t dim) {
  SSM_CHECK(!xs.empty(), "cat", "expected at least one tensor");
  SSM_CUDA_DISPATCH(xs[0], cuda::cat_forward(xs, dim));
  for (const Tensor& x : xs) require_cpu("cat", {&x});
  dim = wrap_dim(dim, xs[0].dim(), "cat");
  Shape out_shape = xs[0].shape();
  out_shape[dim] = 0;
  std::vector<Tensor> cs;
  for (const Tensor& x : xs) {
    out_shape[dim] += x.shape()[dim];
    cs.push_back(x.contiguous());
  }
  Tensor out = Tensor::empty(out_shape, xs[0].dtype(), xs[0].device());
  if (out.numel() == 0) return out;
  const Around a = around(out_shape, dim);
  const auto es = static_cast<std::int64_t>(dtype_size(out.dtype()));
  const std::int64_t out_row = a.size * a.inner * es;  // bytes of one outer row of out
  auto* o = static_cast<unsigned char*>(out.raw_data());
#pragma omp parallel for schedule(static) if (out.numel() > kParallelWork && a.outer > 1)
  for (std::int64_t r = 0; r < a.outer; ++r) {
    std::int64_t pos = r * out_row;
    for (const Tensor& c : cs) {
      const std::int64_t row = c.shape()[dim] * a.inner * es;  // bytes of one row of c
      if (row == 0) continue;  // an empty piece (its storage may be null)
      const auto* src = static_cast<const unsigned char*>(c.raw_data()) + r * row;
      std::memcpy(o + pos, src, static_cast<std::size_t>(row));
      pos += row;
    }
  }
  return out;
}

// ---------------------------------------------------------------- pad

// out[..., p] = x[..., p - left] where 0 <= p - left < x.size, else value,
// for every padded dim (PyTorch F.pad, mode "constant").
Tensor pad_forward(const Tensor& x, const std::vector<std::int64_t>& pads, double value) {
  SSM_CUDA_DISPATCH(x, cuda::pad_forward(x, pads, value));
  require_cpu("pad", {&x});
  const std::int64_t nd = x.dim();
  SSM_CHECK(pads.size() % 2 == 0 && static_cast<std::int64_t>(pads.size()) <= 2 * nd, "pad",
            "expected an even number of pads, at most 2 per dim (", 2 * nd, " for ", x.desc(),
            "), got ", pads.size(), ": ", shape_str(pads));
  // lo[d], hi[d]: the pads of dim d (pairs run from the last dim backwards).
  Shape lo(static_cast<std::size_t>(nd), 0), hi(static_cast<std::size_t>(nd), 0);
  for (std::size_t k = 0; k < pads.size() / 2; ++k) {
    lo[nd - 1 - static_cast<std::int64_t>(k)] = pads[2 * k];
    hi[nd - 1 - static_cast<std::int64_t>(k)] = pads[2 * k + 1];
  }
  Shape out_shape = x.shape();
  for (std::int64_t d = 0; d < nd; ++d) {
    out_shape[d] += lo[d] + hi[d];
    SSM_CHECK(out_shape[d] >= 0, "pad", "pads ", shape_str(pads), " give dim ", d, " of ", x.desc(),
              " the negative size ", out_shape[d]);
  }
  // Fill everything, then copy the surviving part of x over the interior:
  // two passes over the interior, but each one a plain strided loop.
  Tensor out = Tensor::full(out_shape, value, x.dtype(), x.device());
  // The part of x that survives cropping, and where it lands in out.
  Tensor src = x, dst = out;
  for (std::int64_t d = 0; d < nd; ++d) {
    const std::int64_t skip_lo = std::max<std::int64_t>(-lo[d], 0);
    const std::int64_t skip_hi = std::max<std::int64_t>(-hi[d], 0);
    const std::int64_t len = std::max<std::int64_t>(x.shape()[d] - skip_lo - skip_hi, 0);
    if (len == 0) return out;  // everything cropped: out is all value
    src = src.narrow(d, skip_lo, len);
    dst = dst.narrow(d, std::max<std::int64_t>(lo[d], 0), len);
  }
  dst.copy_(src);  // strided copy, parallel over rows when large
  return out;
}

// grad_x[..., q] = grad[..., q + left]: padding grad by -pads undoes the pad.
// (No CUDA dispatch needed: pad_forward dispatches.)
Tensor pad_backward(const Tensor& grad, const std::vector<std::int64_t>& pads) {
  std::vector<std::int64_t> neg(pads.size());
  for (std::size_t k = 0; k < pads.size(); ++k) neg[k] = -pads[k];
  return pad_forward(grad, neg, 0.0);
}

// ---------------------------------------------------------------- index_select

// out[o, j, i] = x[o, index[j], i] (torch.index_select).
Tensor index_select_forward(const Tensor& x, std::int64_t dim, const Tensor& index) {
  SSM_CUDA_DISPATCH(x, cuda::index_select_forward(x, dim, index));
  require_cpu("index_select", {&x, &index});
  dim = wrap_dim(dim, x.dim(), "index_select");
  const auto idx = read_indices(index, "index_select");
  const Around a = around(x.shape(), dim);
  check_range("index_select", idx, a.size, dim_where(dim, a.size, x.shape()));
  const auto n = static_cast<std::int64_t>(idx.size());
  Shape out_shape = x.shape();
  out_shape[dim] = n;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (out.numel() == 0) return out;
  const Tensor xc = x.contiguous();
  const auto es = static_cast<std::int64_t>(dtype_size(x.dtype()));
  const auto* px = static_cast<const unsigned char*>(xc.raw_data());
  auto* po = static_cast<unsigned char*>(out.raw_data());
  const std::int64_t row = a.inner * es;  // bytes
#pragma omp parallel for schedule(static) if (out.numel() > kParallelWork && a.outer * n > 1)
  for (std::int64_t t = 0; t < a.outer * n; ++t) {
    const std::int64_t o = t / n, j = t % n;
    std::memcpy(po + t * row, px + (o * a.size + idx[j]) * row, static_cast<std::size_t>(row));
  }
  return out;
}

// gx[o, index[j], i] += grad[o, j, i], summed in order of j for each (o, row).
Tensor index_select_backward(const Tensor& grad, const Shape& x_shape, std::int64_t dim,
                             const Tensor& index) {
  SSM_CUDA_DISPATCH(grad, cuda::index_select_backward(grad, x_shape, dim, index));
  require_cpu("index_select", {&grad, &index});
  dim = wrap_dim(dim, static_cast<std::int64_t>(x_shape.size()), "index_select");
  const auto idx = read_indices(index, "index_select");
  const Around a = around(x_shape, dim);
  check_range("index_select", idx, a.size, dim_where(dim, a.size, x_shape));
  const auto n = static_cast<std::int64_t>(idx.size());
  if (n == 0) return Tensor::zeros(x_shape, grad.dtype(), grad.device());
  Tensor gx = Tensor::empty(x_shape, grad.dtype(), grad.device());  // (outer, size, inner)
  if (gx.numel() == 0) return gx;
  const Tensor g = grad.contiguous();  // (outer, n, inner)
  const RowGroups groups = group_by_row(idx, a.size, -1);
  dispatch_float(grad.dtype(), "index_select", [&](auto tag) {
    using T = typename decltype(tag)::type;
    scatter_rows<T>(g.data<T>(), gx.data<T>(), groups, a.outer, n, a.size, a.inner);
  });
  return gx;
}

// ---------------------------------------------------------------- gather

namespace {

// The geometry of gather: index (outer, n, inner) against x restricted to
// index's extents in every dim but dim, i.e. (outer, size, inner).
struct GatherGeometry {
  Around a;
  std::int64_t n = 0;
  Shape x_region;  // index.shape with x's size at dim
};

GatherGeometry gather_geometry(const Shape& x_shape, std::int64_t dim, const Shape& index_shape) {
  GatherGeometry g;
  g.x_region = index_shape;
  g.x_region[dim] = x_shape[dim];
  g.a = around(g.x_region, dim);
  g.n = index_shape[dim];
  return g;
}

}  // namespace

// out[o, j, i] = x[o, index[o, j, i], i] (torch.gather), over index's extents.
Tensor gather_forward(const Tensor& x, std::int64_t dim, const Tensor& index) {
  SSM_CUDA_DISPATCH(x, cuda::gather_forward(x, dim, index));
  require_cpu("gather", {&x, &index});
  dim = wrap_dim(dim, x.dim(), "gather");
  const auto idx = read_indices(index, "gather");
  const GatherGeometry geo = gather_geometry(x.shape(), dim, index.shape());
  check_range("gather", idx, geo.a.size, dim_where(dim, geo.a.size, x.shape()));
  Tensor out = Tensor::empty(index.shape(), x.dtype(), x.device());
  if (out.numel() == 0) return out;
  // The region of x that index can reach, made contiguous: (outer, size, inner).
  const Tensor xr = make_view(x, geo.x_region, x.strides(), x.offset()).contiguous();
  const Around a = geo.a;
  const std::int64_t n = geo.n;
  dispatch_all(x.dtype(), "gather", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = xr.data<T>();
    T* po = out.data<T>();
#pragma omp parallel for schedule(static) if (out.numel() > kParallelWork && a.outer * n > 1)
    for (std::int64_t t = 0; t < a.outer * n; ++t) {
      const std::int64_t o = t / n;
      const std::int64_t* ix = idx.data() + t * a.inner;
      const T* base = px + o * a.size * a.inner;
      T* dst = po + t * a.inner;
      for (std::int64_t i = 0; i < a.inner; ++i) dst[i] = base[ix[i] * a.inner + i];
    }
  });
  return out;
}

// gx[o, index[o, j, i], i] += grad[o, j, i], j in order; a task owns (o, inner block).
Tensor gather_backward(const Tensor& grad, const Shape& x_shape, std::int64_t dim,
                       const Tensor& index) {
  SSM_CUDA_DISPATCH(grad, cuda::gather_backward(grad, x_shape, dim, index));
  require_cpu("gather", {&grad, &index});
  dim = wrap_dim(dim, static_cast<std::int64_t>(x_shape.size()), "gather");
  const auto idx = read_indices(index, "gather");
  const GatherGeometry geo = gather_geometry(x_shape, dim, index.shape());
  check_range("gather", idx, geo.a.size, dim_where(dim, geo.a.size, x_shape));
  Tensor region = Tensor::zeros(geo.x_region, grad.dtype(), grad.device());
  const Around a = geo.a;
  const std::int64_t n = geo.n;
  if (region.numel() > 0 && n > 0) {
    const Tensor g = grad.contiguous();  // (outer, n, inner)
    dispatch_float(grad.dtype(), "gather", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* pg = g.data<T>();
      T* pr = region.data<T>();
      const std::int64_t blocks = (a.inner + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (g.numel() > kParallelWork && a.outer * blocks > 1)
      for (std::int64_t t = 0; t < a.outer * blocks; ++t) {
        const std::int64_t o = t / blocks;
        const std::int64_t i0 = (t % blocks) * kBlock, i1 = std::min(a.inner, i0 + kBlock);
        T* base = pr + o * a.size * a.inner;
        for (std::int64_t j = 0; j < n; ++j) {
          const std::int64_t row = (o * n + j) * a.inner;
          for (std::int64_t i = i0; i < i1; ++i) base[idx[row + i] * a.inner + i] += pg[row + i];
        }
      }
    });
  }
  if (geo.x_region == x_shape) return region;
  // index is smaller than x in some dim: place the region in a zero gradient.
  Tensor gx = Tensor::zeros(x_shape, grad.dtype(), grad.device());
  make_view(gx, geo.x_region, gx.strides(), 0).copy_(region);
  return gx;
}

// ---------------------------------------------------------------- embedding

namespace {

std::string table_where(const Tensor& weight_or_null, std::int64_t rows) {
  return "an embedding table of " + std::to_string(rows) + " rows" +
         (weight_or_null.defined() ? " (weight " + weight_or_null.desc() + ")" : "");
}

}  // namespace

// out[n, :] = weight[indices[n], :] (torch.nn.functional.embedding).
Tensor embedding_forward(const Tensor& indices, const Tensor& weight) {
  SSM_CUDA_DISPATCH(weight, cuda::embedding_forward(indices, weight));
  require_cpu("embedding", {&indices, &weight});
  const auto idx = read_indices(indices, "embedding");
  const std::int64_t rows = weight.shape()[0], d = weight.shape()[1];
  check_range("embedding", idx, rows, table_where(weight, rows));
  Shape out_shape = indices.shape();
  out_shape.push_back(d);
  Tensor out = Tensor::empty(out_shape, weight.dtype(), weight.device());
  if (out.numel() == 0) return out;
  const Tensor w = weight.contiguous();
  const std::int64_t row = d * static_cast<std::int64_t>(dtype_size(w.dtype()));  // bytes
  const auto* pw = static_cast<const unsigned char*>(w.raw_data());
  auto* po = static_cast<unsigned char*>(out.raw_data());
  const auto n = static_cast<std::int64_t>(idx.size());
#pragma omp parallel for schedule(static) if (out.numel() > kParallelWork && n > 1)
  for (std::int64_t k = 0; k < n; ++k) {
    std::memcpy(po + k * row, pw + idx[k] * row, static_cast<std::size_t>(row));
  }
  return out;
}

// gw[v, :] = sum_{n : indices[n] = v, v != padding_idx} grad[n, :], each row
// summed by one thread in order of n.
Tensor embedding_backward(const Tensor& grad, const Tensor& indices, std::int64_t num_embeddings,
                          std::int64_t padding_idx) {
  SSM_CUDA_DISPATCH(grad, cuda::embedding_backward(grad, indices, num_embeddings, padding_idx));
  require_cpu("embedding", {&grad, &indices});
  const auto idx = read_indices(indices, "embedding");
  check_range("embedding", idx, num_embeddings, table_where(Tensor(), num_embeddings));
  const std::int64_t d = grad.dim() > 0 ? grad.shape().back() : 1;
  const auto n = static_cast<std::int64_t>(idx.size());
  if (n == 0 || d == 0) return Tensor::zeros({num_embeddings, d}, grad.dtype(), grad.device());
  Tensor gw = Tensor::empty({num_embeddings, d}, grad.dtype(), grad.device());  // (V, D)
  const Tensor g = grad.contiguous();                                           // (N, D)
  const RowGroups groups = group_by_row(idx, num_embeddings, padding_idx < 0 ? -1 : padding_idx);
  dispatch_float(grad.dtype(), "embedding", [&](auto tag) {
    using T = typename decltype(tag)::type;
    scatter_rows<T>(g.data<T>(), gw.data<T>(), groups, 1, n, num_embeddings, d);
  });
  return gw;
}

}  // namespace ssm::kernels
